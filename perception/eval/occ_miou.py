"""Occ3D-nuScenes occupancy mIoU (the CVPR 2023 challenge protocol) and geometry IoU.

Follows the Occ3D challenge code (CVPR2023-3D-Occupancy-Prediction/CVPR2023-3D-Occupancy-Prediction)
``projects/mmdet3d_plugin/datasets/occ_metrics.py`` ``Metric_mIoU`` (commit a952973: ``add_batch`` /
``hist_info`` / ``per_class_iu`` / ``count_miou``) as ``nuscenes_occ.py`` ``evaluate_miou`` runs it
(``use_image_mask=True``, ``mask_camera.astype(bool)``).

Volumes are ``(200, 200, 16)`` on ``OCC3D_GRID`` (ego frame, indexed ``[ix, iy, iz]``) with labels
``OCC3D_CLASSES`` (0-16 semantic, 17 = free).

- ``mIoU`` (the leaderboard number): ONE 18 x 18 confusion matrix accumulated over the whole split from the
  voxels where the GT ``mask_camera`` is set; IoU per class 0-16 (free excluded). A class absent from both GT
  and prediction over the whole split has IoU NaN (0 / 0) and is excluded from the mean (``np.nanmean``, as
  the official script).
- Geometry IoU (occupied = label != 17 vs free; not part of the challenge), reported both ways:
  ``geometry_IoU`` over ALL voxels (no mask) and ``geometry_IoU_camera_mask`` over the ``mask_camera`` voxels
  (the variant most papers print, e.g. the geometry histogram of the Occ3D-style ``Metric_mIoU`` derivatives
  with ``use_image_mask=True``).
"""

import numpy as np

from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.eval.confusion import (
    ConfusionCounts,
    binary_iou,
    confusion_matrix,
    geometry_counts,
    iou_from_confusion,
    nanmean_or_nan,
)

NUM_CLASSES = len(OCC3D_CLASSES)  # 18 including free

PROTOCOL = {
    "reference": "CVPR2023-3D-Occupancy-Prediction/CVPR2023-3D-Occupancy-Prediction "
                 "projects/mmdet3d_plugin/datasets/occ_metrics.py Metric_mIoU (a952973), use_image_mask=True",
    "mIoU": "leaderboard number: camera-mask voxels, one confusion matrix over the split, NaN-mean over classes "
            "0-16 (a class absent from GT and prediction is NaN and left out)",
    "geometry_IoU": "occupied vs free over ALL voxels (no camera mask); not a challenge metric",
    "geometry_IoU_camera_mask": "occupied vs free over the mask_camera voxels (the variant papers usually print)",
}


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

    def update(self, pred, gt, mask_camera, region=None):
        """Add one sample: ``pred``, ``gt`` ``(200, 200, 16)`` labels, ``mask_camera`` same shape {0, 1}.

        ``region``: optional bool volume of the same shape (:mod:`perception.eval.region`); only the voxels
        inside it count, for the mIoU (ANDed into the camera mask) and for the geometry IoU alike."""
        pred = check_volume(pred, "occ prediction")
        gt = check_volume(gt, "occ ground truth")
        mask = np.asarray(mask_camera).astype(bool)
        if mask.shape != gt.shape:
            raise ValueError(f"mask_camera: expected shape {gt.shape}, got {mask.shape}")
        if region is not None:
            region = np.asarray(region, bool)
            if region.shape != gt.shape:
                raise ValueError(f"region: expected shape {gt.shape}, got {region.shape}")
            mask = mask & region
        self.hist += confusion_matrix(pred[mask], gt[mask], NUM_CLASSES)
        occupied_pred, occupied_gt = pred != OCC3D_FREE, gt != OCC3D_FREE
        if region is not None:
            occupied_pred, occupied_gt = occupied_pred[region], occupied_gt[region]
        self.geo += geometry_counts(occupied_pred, occupied_gt)
        self.num_samples += 1

    def compute(self):
        """``{'mIoU', 'per_class': {name: IoU}, 'geometry_IoU', 'geometry_IoU_camera_mask', 'confusion',
        'num_samples', 'protocol'}`` (IoU in [0, 1]).

        ``mIoU``/``per_class``: the challenge's numbers (camera mask; NaN for a class absent from GT and
        prediction). ``geometry_IoU``: occupied vs free over all voxels; ``geometry_IoU_camera_mask``: the same
        over the camera-mask voxels (from the masked confusion matrix). ``confusion``: the masked 18 x 18 matrix
        (rows GT, columns prediction). ``protocol``: text labels of these choices and the reference followed.
        """
        iou = iou_from_confusion(self.hist)[:OCC3D_FREE]
        occ = slice(0, OCC3D_FREE)
        masked_geo = (self.hist[occ, occ].sum(), self.hist[OCC3D_FREE, occ].sum(), self.hist[occ, OCC3D_FREE].sum())
        return {
            "mIoU": nanmean_or_nan(iou),
            "per_class": {name: float(v) for name, v in zip(OCC3D_CLASSES[:OCC3D_FREE], iou, strict=True)},
            "geometry_IoU": binary_iou(*self.geo),
            "geometry_IoU_camera_mask": binary_iou(*(int(v) for v in masked_geo)),
            "confusion": self.hist.tolist(),
            "num_samples": self.num_samples,
            "protocol": dict(PROTOCOL),
        }
