"""Confusion matrices and IoU from them (shared by the Occ3D and OpenOccupancy protocols)."""

import numpy as np


def confusion_matrix(pred, gt, num_classes):
    """``(num_classes, num_classes)`` int64 counts, rows = ground truth, columns = prediction.

    ``pred`` and ``gt`` are integer arrays of the same shape with values in ``[0, num_classes)``.
    """
    pred = np.asarray(pred).astype(np.int64).ravel()
    gt = np.asarray(gt).astype(np.int64).ravel()
    if pred.shape != gt.shape:
        raise ValueError(f"confusion_matrix: pred has {pred.size} elements, gt has {gt.size}")
    for name, a in (("pred", pred), ("gt", gt)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} values must lie in [0, {num_classes}), got "
                             f"[{a.min()}, {a.max()}]")
    return np.bincount(gt * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def iou_from_confusion(hist):
    """Per-class IoU ``TP / (TP + FP + FN)``; NaN for a class absent from both GT and prediction."""
    hist = np.asarray(hist, dtype=np.float64)
    tp = np.diag(hist)
    union = hist.sum(0) + hist.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def binary_iou(tp, fp, fn):
    """IoU from counts; NaN when the union is empty."""
    union = tp + fp + fn
    return float(tp / union) if union > 0 else float("nan")


def nanmean_or_nan(values):
    """``np.nanmean`` (the reference scripts' mean, same summation order), NaN without a warning when all
    entries are NaN."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(values)) if (~np.isnan(values)).any() else float("nan")


def geometry_counts(occupied_pred, occupied_gt):
    """``[TP, FP, FN]`` int64 of the boolean "occupied" arrays (for geometry / completion IoU)."""
    p, g = np.asarray(occupied_pred, bool), np.asarray(occupied_gt, bool)
    return np.array([np.sum(p & g), np.sum(p & ~g), np.sum(~p & g)], np.int64)


class ConfusionCounts:
    """A split's ``num_classes`` confusion matrix ``hist`` (rows GT, columns prediction) and the geometry
    counts ``geo`` (TP, FP, FN of "occupied"); :meth:`merge` adds another rank's counts."""

    def __init__(self, num_classes):
        self.hist = np.zeros((num_classes, num_classes), np.int64)
        self.geo = np.zeros(3, np.int64)
        self.num_samples = 0

    def merge(self, other):
        """Add the counts of another accumulator (e.g. from another rank)."""
        self.hist += other.hist
        self.geo += other.geo
        self.num_samples += other.num_samples

