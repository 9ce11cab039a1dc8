"""The no-input baseline: what a "model" scores that sees no sensor at all, only the training labels.

A learning benchmark reports it next to the models (``benchmarks/learn_synthetic.py``) so that a score is
read against what the label statistics alone give:

- BEV map: the per-cell mean of the training rasters, used as the probability of every sample
  (``BEV_MAP_GRID``, LiDAR frame; the BEVFusion protocol then picks each class's best threshold, as it does
  for a model);
- occupancy: the per-voxel most frequent training label among the voxels the cameras see (``mask_camera``,
  the voxels the Occ3D protocol scores; ``OCC3D_GRID``, ego frame), free where no training sample sees it;
- detection: no boxes (every metric of a detector without input is 0).

:func:`write_prior_results` writes these in the saved-results format of :mod:`perception.eval.results_io`,
scored by ``perception eval --results/--bev-results/--occ-results`` like any submission.
"""

import os
from dataclasses import dataclass

import numpy as np

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.data.occupancy import most_frequent_labels
from perception.eval.detection import make_submission, write_submission
from perception.eval.results_io import save_bev, save_occ


@dataclass
class NoInputPrior:
    """``bev_probs (6, 200, 200)`` float32 in [0, 1] or None; ``occ_labels (200, 200, 16)`` uint8 or None;
    the numbers of training samples each was fitted on."""

    bev_probs: np.ndarray = None
    occ_labels: np.ndarray = None
    bev_samples: int = 0
    occ_samples: int = 0


def fit_prior(samples, tasks=("map", "occ")) -> NoInputPrior:
    """Fit on training :class:`perception.data.sample.Sample` objects (those without a task's labels are
    skipped for that task)."""
    prior = NoInputPrior()
    if "map" in tasks:
        total = np.zeros((len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape, np.float64)  # (6, NX, NY)
        for s in samples:
            bev = s.bev_map
            if bev is not None:
                total += bev > 0
                prior.bev_samples += 1
        if prior.bev_samples:
            prior.bev_probs = (total / prior.bev_samples).astype(np.float32)
    if "occ" in tasks:
        labels, prior.occ_samples = most_frequent_labels(s.occupancy for s in samples)
        if prior.occ_samples:
            prior.occ_labels = labels
    return prior


def write_prior_results(prior: NoInputPrior, tokens, out_dir) -> dict:
    """Write the prior's predictions for ``tokens`` under ``out_dir``; returns the ``perception eval``
    arguments: ``{'results': json, 'bev_results': folder, 'occ_results': folder}`` (the ones present)."""
    os.makedirs(out_dir, exist_ok=True)
    no_sensor = {"use_camera": False, "use_lidar": False, "use_radar": False, "use_map": False, "use_external": False}
    paths = {"results": write_submission(os.path.join(out_dir, "results_nusc.json"),
                                         make_submission({t: [] for t in tokens}, no_sensor))}
    if prior.bev_probs is not None:
        paths["bev_results"] = os.path.join(out_dir, "bev")
        for t in tokens:
            save_bev(paths["bev_results"], t, prior.bev_probs)
    if prior.occ_labels is not None:
        paths["occ_results"] = os.path.join(out_dir, "occ")
        for t in tokens:
            save_occ(paths["occ_results"], t, prior.occ_labels)
    return paths
