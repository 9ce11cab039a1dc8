"""BEV map segmentation IoU, BEVFusion protocol.

Inputs are ``(6, 200, 200)`` on ``BEV_MAP_GRID`` (LiDAR frame, ``[class, ix, iy]``, classes
``BEV_MAP_CLASSES``): predicted probabilities in [0, 1] and binary GT. For every class and every threshold
``t`` in 0.35, 0.40, ..., 0.65 a cell is predicted positive when ``prob >= t``; TP/FP/FN are summed over the
whole split, IoU = TP / (TP + FP + FN). Each class takes its best threshold; mIoU is the mean of those maxima.

Difference from BEVFusion's code (which divides by ``union + 1e-7``): a class whose union is empty at every
threshold over the whole split (absent from GT and never predicted) gets IoU NaN and is left out of the
mean instead of counting as 0. On nuScenes val every class is present, so the numbers are identical.
"""

import numpy as np

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.eval.confusion import nanmean_or_nan

THRESHOLDS = np.round(np.arange(0.35, 0.651, 0.05), 2)
BEV_SHAPE = (len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape


def check_bev(array, name):
    """Raise ``ValueError`` naming ``name`` unless ``array`` is ``(6, 200, 200)`` with finite values in [0, 1]."""
    array = np.asarray(array)
    if array.shape != BEV_SHAPE:
        raise ValueError(f"{name}: expected shape {BEV_SHAPE}, got {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name}: values must be finite and within [0, 1]")
    return array


class BevIou:
    """Accumulates per-class, per-threshold TP/FP/FN over a split."""

    def __init__(self):
        shape = (len(BEV_MAP_CLASSES), len(THRESHOLDS))
        self.tp = np.zeros(shape, np.int64)
        self.fp = np.zeros(shape, np.int64)
        self.fn = np.zeros(shape, np.int64)
        self.num_samples = 0

    def update(self, probs, gt):
        """Add one sample: ``probs`` float (6, 200, 200) in [0, 1], ``gt`` {0, 1} (6, 200, 200)."""
        probs = check_bev(probs, "bev_probs")
        gt = check_bev(gt, "BEV map ground truth") > 0.5
        c = probs.shape[0]
        pred = probs.reshape(c, 1, -1) >= THRESHOLDS.reshape(1, -1, 1)  # (6, T, cells)
        g = gt.reshape(c, 1, -1)
        self.tp += np.sum(pred & g, axis=2)
        self.fp += np.sum(pred & ~g, axis=2)
        self.fn += np.sum(~pred & g, axis=2)
        self.num_samples += 1

    def merge(self, other):
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.num_samples += other.num_samples

    def compute(self):
        """``{'mIoU', 'per_class': {name: best IoU}, 'best_threshold': {name: t},
        'per_threshold': {name: [IoU at each threshold]}, 'thresholds', 'num_samples'}``."""
        union = self.tp + self.fp + self.fn
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, self.tp / np.maximum(union, 1), np.nan)  # (6, T)
        best = np.array([np.nanmax(r) if not np.isnan(r).all() else np.nan for r in iou])
        best_t = [float(THRESHOLDS[np.nanargmax(r)]) if not np.isnan(r).all() else None for r in iou]
        return {
            "mIoU": nanmean_or_nan(best),
            "per_class": {n: float(v) for n, v in zip(BEV_MAP_CLASSES, best)},
            "best_threshold": dict(zip(BEV_MAP_CLASSES, best_t)),
            "per_threshold": {n: [float(v) for v in r] for n, r in zip(BEV_MAP_CLASSES, iou)},
            "thresholds": [float(t) for t in THRESHOLDS],
            "num_samples": self.num_samples,
        }
