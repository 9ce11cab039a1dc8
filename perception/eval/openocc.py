"""OpenOccupancy (nuScenes-Occupancy) protocol: geometry IoU + semantic mIoU over 16 classes.

Label files (as published by nuScenes-Occupancy / OpenOccupancy, checked against OpenOccupancy's
``load_nuscenes_occupancy`` loader): ``<occ_root>/scene_<scene_token>/occupancy/<lidar_token>.npy``, a sparse
``(N, 4)`` integer array of the occupied voxels, columns ``[z, y, x, label]`` (voxel indices on
``OPENOCC_GRID``: 512 x 512 x 40 voxels of 0.2 m over [-51.2, 51.2]^2 x [-5, 3] m, LiDAR frame). Label 0 is
"noise" and becomes IGNORE (255); voxels not listed are empty (0). Labels 1-16 follow ``OPENOCC_CLASSES``.

Dense volumes here are ``uint8 [ix, iy, iz]`` with 0 = empty, 1-16 semantic, 255 = ignore.
Scoring (OpenOccupancy ``SSCMetrics``): voxels whose GT is 255 are ignored; no visibility mask.
Geometry IoU: occupied (label 1-16) vs empty over the split. Semantic mIoU: one 17 x 17 confusion matrix
over the split, IoU of classes 1-16, mean over them (a class absent from GT and prediction is NaN and
excluded).
"""

import os

import numpy as np

from perception.constants import OPENOCC_CLASSES, OPENOCC_GRID
from perception.eval.confusion import (ConfusionCounts, binary_iou, confusion_matrix, geometry_counts,
                                       iou_from_confusion, nanmean_or_nan)
from perception.eval.occ_miou import check_volume

IGNORE = 255
NUM_CLASSES = len(OPENOCC_CLASSES)  # 17: 0 empty + 16 semantic


def openocc_label_path(occ_root, scene_token, lidar_token):
    """Path of a nuScenes-Occupancy label file (``lidar_token`` = LIDAR_TOP sample_data token)."""
    return os.path.join(occ_root, f"scene_{scene_token}", "occupancy", f"{lidar_token}.npy")


def load_openocc_label(path, grid_shape=OPENOCC_GRID.shape):
    """Sparse ``[z, y, x, label]`` ``.npy`` -> dense uint8 ``[ix, iy, iz]`` (0 empty, 1-16, 255 ignore)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"OpenOccupancy label file not found: {path}")
    sparse = np.load(path)
    if sparse.ndim != 2 or sparse.shape[1] != 4 or not np.issubdtype(sparse.dtype, np.integer):
        raise ValueError(f"{path}: expected an (N, 4) integer array [z, y, x, label], got {sparse.shape} "
                         f"{sparse.dtype}")
    z, y, x, label = (sparse[:, i].astype(np.int64) for i in range(4))
    for name, v, n in (("x", x, grid_shape[0]), ("y", y, grid_shape[1]), ("z", z, grid_shape[2])):
        if v.size and (v.min() < 0 or v.max() >= n):
            raise ValueError(f"{path}: {name} index outside [0, {n})")
    if label.size and (label.min() < 0 or label.max() >= NUM_CLASSES):
        raise ValueError(f"{path}: labels must lie in [0, {NUM_CLASSES - 1}]")
    dense = np.zeros(grid_shape, np.uint8)
    dense[x, y, z] = np.where(label == 0, IGNORE, label).astype(np.uint8)
    return dense


class OpenOccMetric(ConfusionCounts):
    """Accumulates OpenOccupancy geometry and semantic counts over a split (no visibility mask)."""

    def __init__(self, grid_shape=OPENOCC_GRID.shape):
        super().__init__(NUM_CLASSES)
        self.grid_shape = tuple(grid_shape)

    def update(self, pred, gt):
        """``pred`` uint8 (512, 512, 40) in 0-16; ``gt`` same shape in 0-16 or 255 (ignored)."""
        pred = check_volume(pred, "OpenOccupancy prediction", self.grid_shape, NUM_CLASSES - 1)
        gt = np.asarray(gt)
        if gt.shape != self.grid_shape:
            raise ValueError(f"OpenOccupancy ground truth: expected shape {self.grid_shape}, got {gt.shape}")
        valid = gt != IGNORE
        p, g = pred[valid], gt[valid]
        self.hist += confusion_matrix(p, g, NUM_CLASSES)
        self.geo += geometry_counts(p > 0, g > 0)
        self.num_samples += 1

    def compute(self):
        """``{'geometry_IoU', 'mIoU', 'per_class': {name: IoU}, 'num_samples'}`` (classes 1-16)."""
        iou = iou_from_confusion(self.hist)[1:]
        return {
            "geometry_IoU": binary_iou(*self.geo),
            "mIoU": nanmean_or_nan(iou),
            "per_class": {n: float(v) for n, v in zip(OPENOCC_CLASSES[1:], iou)},
            "num_samples": self.num_samples,
        }
