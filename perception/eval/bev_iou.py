"""BEV map segmentation IoU, BEVFusion protocol.

Follows BEVFusion (mit-han-lab/bevfusion) ``mmdet3d/datasets/nuscenes_dataset.py``
``NuScenesDataset.evaluate_map`` (commit d0152cf), number for number:

Inputs are ``(6, 200, 200)`` on ``BEV_MAP_GRID`` (LiDAR frame, ``[class, ix, iy]``, classes
``BEV_MAP_CLASSES``): predicted probabilities in [0, 1] and GT (a cell is GT-positive when non-zero). For every
class and every threshold ``t`` in 0.35, 0.40, ..., 0.65 a cell is predicted positive when ``prob >= t``,
compared in float32 (a probability exactly at float32(0.35) is positive). TP/FP/FN are summed over the whole
split and IoU = TP / (TP + FP + FN + 1e-7), all in float32 like the reference (its float32 running sums are
replayed sample by sample in split order, so they round exactly as the reference's do past 2^24 cells). Each
class takes its best threshold.

- ``mIoU`` (the leaderboard number, BEVFusion's ``map/mean/iou@max``): the mean of the 6 per-class maxima; a
  class absent from the GT and never predicted over the whole split has IoU 0 there (the ``+ 1e-7``
  denominator) and pulls the mean down.
- ``mIoU_present`` (ours, an extra): the same mean over the classes whose union is not empty
  (``absent_classes`` lists the others). On nuScenes val every class is present and the two are equal.
"""

import numpy as np

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID

THRESHOLDS = np.array([0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65], np.float32)  # float32, as the reference's tensor
BEV_SHAPE = (len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape
_EPS = np.float32(1e-7)

PROTOCOL = {
    "reference": "mit-han-lab/bevfusion mmdet3d/datasets/nuscenes_dataset.py evaluate_map (d0152cf)",
    "mIoU": "leaderboard number (BEVFusion map/mean/iou@max): mean over all 6 classes of the best-threshold "
            "IoU; a class absent from GT and prediction counts as 0",
    "mIoU_present": "not the leaderboard's: the same mean over the classes present in GT or prediction",
}


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
    """Accumulates per-class, per-threshold TP/FP/FN over a split.

    ``tp``, ``fp``, ``fn``: exact int64 totals ``(6, 7)``. ``counts``: the per-sample ``(3, 6, 7)`` counts in
    update order (merged ranks append theirs in rank order, which is split order for contiguous shards), from
    which :meth:`compute` replays the reference's float32 sums.
    """

    def __init__(self):
        shape = (len(BEV_MAP_CLASSES), len(THRESHOLDS))
        self.tp = np.zeros(shape, np.int64)
        self.fp = np.zeros(shape, np.int64)
        self.fn = np.zeros(shape, np.int64)
        self.counts = []
        self.num_samples = 0

    def update(self, probs, gt):
        """Add one sample: ``probs`` float (6, 200, 200) in [0, 1], ``gt`` (6, 200, 200), positive where != 0."""
        probs = check_bev(probs, "bev_probs")
        gt = check_bev(gt, "BEV map ground truth") != 0
        c, nt = probs.shape[0], len(THRESHOLDS)
        # per cell, how many thresholds t satisfy prob >= t (float32 comparisons): positive at threshold j
        # exactly when that number exceeds j
        k = np.searchsorted(THRESHOLDS, probs.reshape(c, -1), side="right")
        k += (np.arange(c) * (nt + 1))[:, None]
        g = gt.reshape(c, -1)
        above_all = np.bincount(k.ravel(), minlength=c * (nt + 1)).reshape(c, nt + 1)
        above_gt = np.bincount(k[g], minlength=c * (nt + 1)).reshape(c, nt + 1)
        positive = np.cumsum(above_all[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (6, T): cells with k > j
        tp = np.cumsum(above_gt[:, ::-1], axis=1)[:, ::-1][:, 1:]
        fp = positive - tp
        fn = g.sum(axis=1)[:, None] - tp
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.counts.append(np.stack([tp, fp, fn]).astype(np.int32))
        self.num_samples += 1

    def merge(self, other):
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.counts.extend(other.counts)
        self.num_samples += other.num_samples

    def reference_iou(self):
        """``(6, 7)`` float32 IoU exactly as BEVFusion computes it (float32 running sums in sample order)."""
        acc = np.zeros((3, len(BEV_MAP_CLASSES), len(THRESHOLDS)), np.float32)
        for counts in self.counts:
            acc = acc + counts.astype(np.float32)  # float32 + float32 -> float32, one rounding per sum
        tp, fp, fn = acc
        return tp / (((tp + fp) + fn) + _EPS)

    def compute(self):
        """``{'mIoU', 'mIoU_present', 'per_class': {name: best IoU}, 'best_threshold': {name: t},
        'per_threshold': {name: [IoU at each threshold]}, 'absent_classes', 'thresholds', 'num_samples',
        'protocol'}``.

        ``mIoU``, ``per_class``, ``per_threshold``: BEVFusion's numbers (a class whose union is empty has IoU
        0). ``mIoU_present``: mean over the classes not in ``absent_classes`` (NaN when all are absent).
        ``best_threshold``: the first threshold reaching the class's best IoU (None for an absent class).
        ``protocol``: text labels of these choices and the reference followed.
        """
        iou = self.reference_iou()  # (6, T) float32
        best = iou.max(axis=1)
        absent = (self.tp + self.fp + self.fn).sum(axis=1) == 0
        miou = np.float32(0.0)
        for v in best:  # float32 mean of the maxima
            miou = np.float32(miou + v)
        miou = np.float32(miou / np.float32(len(best)))
        present = best[~absent].astype(np.float64)
        return {
            "mIoU": float(miou),
            "mIoU_present": float(present.mean()) if present.size else float("nan"),
            "per_class": {n: float(v) for n, v in zip(BEV_MAP_CLASSES, best, strict=True)},
            "best_threshold": {n: None if a else round(float(THRESHOLDS[np.argmax(r)]), 2)
                               for n, r, a in zip(BEV_MAP_CLASSES, iou, absent, strict=True)},
            "per_threshold": {n: [float(v) for v in r] for n, r in zip(BEV_MAP_CLASSES, iou, strict=True)},
            "absent_classes": [n for n, a in zip(BEV_MAP_CLASSES, absent, strict=True) if a],
            "thresholds": [round(float(t), 2) for t in THRESHOLDS],
            "num_samples": self.num_samples,
            "protocol": dict(PROTOCOL),
        }
