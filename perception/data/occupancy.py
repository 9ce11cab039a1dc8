"""Occ3D-nuScenes occupancy ground truth (``gts/<scene_name>/<sample_token>/labels.npz``).

Grid: ``perception.constants.OCC3D_GRID`` (200 x 200 x 16 voxels of 0.4 m over x, y in [-40, 40] m and
z in [-1, 5.4] m, EGO frame at the LiDAR keyframe timestamp), indexed ``[ix, iy, iz]``.
Labels: ``OCC3D_CLASSES`` (0..16 semantic, 17 = free).
"""

import os
from dataclasses import dataclass

import numpy as np

from perception.constants import OCC3D_CLASSES, OCC3D_GRID

OCC3D_FIELDS = ("semantics", "mask_lidar", "mask_camera")


@dataclass
class Occupancy:
    """One Occ3D sample: ``semantics`` uint8 ``(200, 200, 16)`` in 0..17; ``mask_lidar`` and ``mask_camera``
    bool ``(200, 200, 16)`` (voxel observed by the LiDAR / visible from a camera; evaluation uses
    ``mask_camera``). Ego frame, ``OCC3D_GRID``, indexed ``[ix, iy, iz]``."""

    semantics: np.ndarray
    mask_lidar: np.ndarray
    mask_camera: np.ndarray
    path: str = ""

    def class_counts(self):
        """``(18,)`` int64 voxel count per label value (index = ``OCC3D_CLASSES`` position)."""
        return np.bincount(self.semantics.ravel(), minlength=len(OCC3D_CLASSES))


def load_occ3d(path):
    """Read and validate an Occ3D ``labels.npz``. Errors name the file and the offending field."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Occ3D file not found: {path}")
    shape = OCC3D_GRID.shape
    arrays = {}
    with np.load(path) as npz:
        for name in OCC3D_FIELDS:
            if name not in npz.files:
                raise ValueError(f"Occ3D file {path}: missing field {name!r} (has {sorted(npz.files)})")
            arr = npz[name]
            if arr.shape != shape:
                raise ValueError(f"Occ3D file {path}: field {name!r} has shape {arr.shape}, expected {shape}")
            if arr.dtype != np.uint8:
                raise ValueError(f"Occ3D file {path}: field {name!r} has dtype {arr.dtype}, expected uint8")
            arrays[name] = arr
    top = len(OCC3D_CLASSES) - 1
    if arrays["semantics"].max() > top:
        raise ValueError(
            f"Occ3D file {path}: field 'semantics' has value {int(arrays['semantics'].max())} > {top}"
        )
    for name in ("mask_lidar", "mask_camera"):
        if arrays[name].max() > 1:
            raise ValueError(f"Occ3D file {path}: field {name!r} is not a 0/1 mask (max {arrays[name].max()})")
    return Occupancy(
        semantics=arrays["semantics"],
        mask_lidar=arrays["mask_lidar"].astype(bool),
        mask_camera=arrays["mask_camera"].astype(bool),
        path=path,
    )


def most_frequent_labels(occupancies):
    """``((200, 200, 16) uint8, count)``: each voxel's most frequent label among the ``occupancies``
    (:class:`Occupancy`, ``None`` entries skipped) that see it from a camera (``mask_camera``, the voxels the Occ3D
    protocol scores), free where none does; ``count`` is the number of occupancies used. The no-input prior
    (``perception.eval.prior``) and the ground fill of frames without LiDAR (``perception.runtime.occ_prior``)
    are this, fitted on training labels. Ego frame, ``OCC3D_GRID``. Ties go to the lower label."""
    counts = np.zeros(OCC3D_GRID.shape + (len(OCC3D_CLASSES),), np.int32)  # (NX, NY, NZ, 18) seen-voxel counts
    used = 0
    for occ in occupancies:
        if occ is None:
            continue
        ix, iy, iz = np.nonzero(occ.mask_camera)
        np.add.at(counts, (ix, iy, iz, occ.semantics[ix, iy, iz]), 1)
        used += 1
    labels = counts.argmax(-1).astype(np.uint8)  # (NX, NY, NZ)
    labels[counts.sum(-1) == 0] = len(OCC3D_CLASSES) - 1  # never seen: free
    return labels, used
