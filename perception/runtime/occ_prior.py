"""The ground under a fusion model that lost its LiDAR: training labels fill what its occupancy calls free.

Why. Without LiDAR the fusion model of ``tiny`` still places objects, but it loses the ground: on val its
driveable surface, sidewalk and terrain IoU fall below the no-input prior's (the per-voxel most frequent training
label), while its geometry IoU beats the prior's (docs/benchmarks.md, "A camera occupancy loss"). The ground
around a vehicle is where it usually is in its own frame, so the prior knows it better than a model that has to
find its height from images it was never trained to read alone.

What. ``perception calibrate-norms`` fits the prior on the training split (:func:`fit_occ_prior`; never the set a
result is reported on) and stores it in the checkpoint under ``OCC_PRIOR_KEY``. With ``model.occ_prior_fill``
set, the :class:`perception.runtime.Predictor` fills, on the frames a fusion model runs without LiDAR, each
voxel its occupancy calls free with the prior's label where that label is one of the fill's classes
(:func:`fill_free`); voxels the model calls occupied keep the model's label. Frames with LiDAR, and models
without a LiDAR branch, are untouched. Grid: ``OCC3D_GRID``, ego frame, labels ``OCC3D_CLASSES``.
"""

import warnings

import numpy as np
import torch

from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.data.occupancy import most_frequent_labels

OCC_PRIOR_KEY = "occ_prior"

# model.occ_prior_fill -> the prior's labels that fill a free voxel
FILL_CLASSES = {
    "ground": ("driveable_surface", "other_flat", "sidewalk", "terrain"),
    "all": OCC3D_CLASSES[:OCC3D_FREE],  # every occupied class
}


def fill_classes(mode, where="model.occ_prior_fill"):
    """``(K,)`` int64: the label values a fill ``mode`` (a :data:`FILL_CLASSES` key) takes from the prior."""
    if mode not in FILL_CLASSES:
        raise ValueError(f"{where} must be None or one of {sorted(FILL_CLASSES)}, got {mode!r}")
    return np.array([OCC3D_CLASSES.index(name) for name in FILL_CLASSES[mode]], np.int64)


def fit_occ_prior(samples, split="train"):
    """The checkpoint entry ``{'labels': (200, 200, 16) uint8 tensor, 'samples': int, 'split': str}`` fitted on
    the Occ3D labels of ``samples`` (:class:`perception.data.sample.Sample`; those without labels skipped).
    ``ValueError`` when none has labels."""
    labels, used = most_frequent_labels(s.occupancy for s in samples)
    if used == 0:
        raise ValueError(f"occupancy prior: no sample of the {split} split has Occ3D labels (gts/)")
    return {"labels": torch.from_numpy(labels), "samples": used, "split": split}


def check_occ_prior(entry, where="the checkpoint"):
    """The prior's labels ``(200, 200, 16) uint8`` of a checkpoint entry, or a ``ValueError`` naming the field."""
    labels = entry.get("labels") if isinstance(entry, dict) else None
    if not torch.is_tensor(labels):
        raise ValueError(f"{where}: '{OCC_PRIOR_KEY}' must be a dict with a 'labels' tensor")
    if tuple(labels.shape) != OCC3D_GRID.shape or labels.dtype != torch.uint8:
        raise ValueError(f"{where}: {OCC_PRIOR_KEY}.labels must be uint8 {OCC3D_GRID.shape} (Occ3D grid), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if int(labels.max()) > OCC3D_FREE:
        raise ValueError(f"{where}: {OCC_PRIOR_KEY}.labels has value {int(labels.max())} > {OCC3D_FREE}")
    return labels.numpy()


def fill_free(occ_labels, prior_labels, classes):
    """``occ_labels`` (uint8 ``(200, 200, 16)``, a prediction) with each free voxel whose ``prior_labels`` value
    is in ``classes`` (:func:`fill_classes`) set to it; a new array, the number of voxels filled."""
    fill = (occ_labels == OCC3D_FREE) & np.isin(prior_labels, classes)  # (NX, NY, NZ) bool
    out = occ_labels.copy()
    out[fill] = prior_labels[fill]
    return out, int(fill.sum())


def load_fill(mode, checkpoint, occ_task, where="the checkpoint"):
    """``(prior labels (200, 200, 16) uint8, classes)`` for a Predictor with ``model.occ_prior_fill`` = ``mode``
    (None: no fill, returns None), its loaded ``checkpoint`` dict (or None) and its model's occupancy task (None
    without one: nothing to fill, as the map memory of a model without a map). A mode on a model whose occupancy
    is not on the Occ3D grid is a ``ValueError``; a checkpoint without the prior is a warning, and frames without
    LiDAR keep the model's occupancy."""
    if mode is None or occ_task is None:
        return None
    classes = fill_classes(mode)
    if tuple(occ_task.grid.shape) != OCC3D_GRID.shape or occ_task.frame != "ego":
        raise ValueError(f"model.occ_prior_fill={mode!r} needs the occupancy task on the Occ3D grid (ego frame)")
    if checkpoint is None:  # random weights (tests), or an ONNX export that brings its own prior file
        return None
    if checkpoint.get(OCC_PRIOR_KEY) is None:
        warnings.warn(f"model.occ_prior_fill={mode!r}: {where} has no '{OCC_PRIOR_KEY}' (perception calibrate-norms "
                      "adds it): frames without LiDAR keep the model's occupancy", stacklevel=3)
        return None
    return check_occ_prior(checkpoint[OCC_PRIOR_KEY], where), classes
