"""Occ3D-nuScenes occupancy mIoU (the CVPR 2023 challenge protocol) and geometry IoU.

Volumes are ``(200, 200, 16)`` on ``OCC3D_GRID`` (ego frame, indexed ``[ix, iy, iz]``) with labels
``OCC3D_CLASSES`` (0-16 semantic, 17 = free).

- mIoU: ONE 18 x 18 confusion matrix accumulated over the whole split from the voxels where the GT
  ``mask_camera`` is set; IoU per class 0-16 (free excluded). A class absent from both GT and prediction over
  the whole split has IoU NaN and is excluded from the mean (``np.nanmean``, as the official script).
- Geometry IoU (extra, not in the challenge): occupied (label != 17) vs free over ALL voxels (no mask).
"""

import numpy as np

from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.eval.confusion import (ConfusionCounts, binary_iou, confusion_matrix, geometry_counts,
                                       iou_from_confusion, nanmean_or_nan)

NUM_CLASSES = len(OCC3D_CLASSES)  # 18 including free


def check_volume(volume, name, shape=OCC3D_GRID.shape, max_label=OCC3D_FREE):
    """Raise ``ValueError`` naming ``name`` unless ``volume`` has ``shape`` and integer labels <= max_label."""
    volume = np.asarray(volume)
    if volume.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {volume.shape}")
    if not np.issubdtype(volume.dtype, np.integer):
        raise ValueError(f"{name}: expected integer labels, got dtype {volume.dtype}")
    if volume.size and (volume.min() < 0 or volume.max() > max_label):
        raise ValueError(f"{name}: labels must lie in [0, {max_label}], got [{volume.min()}, {volume.max()}]")
    return volume


class OccMiou(ConfusionCounts):
    """Accumulates the Occ3D confusion matrix (masked voxels) and geometry counts (all voxels) over a split."""

    def __init__(self):
        super().__init__(NUM_CLASSES)

    def update(self, pred, gt, mask_camera):
        """Add one sample: ``pred``, ``gt`` ``(200, 200, 16)`` labels, ``mask_camera`` same shape {0, 1}."""
        pred = check_volume(pred, "occ prediction")
        gt = check_volume(gt, "occ ground truth")
        mask = np.asarray(mask_camera).astype(bool)
        if mask.shape != gt.shape:
            raise ValueError(f"mask_camera: expected shape {gt.shape}, got {mask.shape}")
        self.hist += confusion_matrix(pred[mask], gt[mask], NUM_CLASSES)
        self.geo += geometry_counts(pred != OCC3D_FREE, gt != OCC3D_FREE)
        self.num_samples += 1

    def compute(self):
        """``{'mIoU', 'per_class': {name: IoU}, 'geometry_IoU', 'confusion', 'num_samples'}`` (IoU in [0, 1])."""
        iou = iou_from_confusion(self.hist)[:OCC3D_FREE]
        return {
            "mIoU": nanmean_or_nan(iou),
            "per_class": {name: float(v) for name, v in zip(OCC3D_CLASSES[:OCC3D_FREE], iou)},
            "geometry_IoU": binary_iou(*self.geo),
            "confusion": self.hist.tolist(),
            "num_samples": self.num_samples,
        }
