"""OpenOccupancy (nuScenes-Occupancy) protocol: geometry IoU + semantic mIoU over 16 classes.

Follows OpenOccupancy (JeffWang987/OpenOccupancy): the label loader ``LoadOccupancy`` +
``nb_process_label`` in ``projects/occ_plugin/datasets/pipelines/loading.py`` (commit 32cb2a0) and the scoring
of ``OccNet.evaluation_semantic`` (``projects/occ_plugin/occupancy/detectors/occnet.py``), ``cm_to_ious`` and
``format_SSC_results`` (``projects/occ_plugin/utils/formating.py``), summed over the split as
``NuScenesOcc.evaluate``.

Label files and their reading (noise -> 255, clamping, majority vote over repeated voxels) are in
:mod:`perception.data.openocc_labels`, shared with training.

Dense volumes here are ``uint8 [ix, iy, iz]`` with 0 = empty, 1-16 semantic, 255 = ignore.
Scoring: voxels whose GT is 255 are ignored; no visibility mask. Geometry IoU (the reference's "SC"):
occupied (label 1-16) vs empty over the split. Semantic ("SSC"): one 17 x 17 confusion matrix over the split,
IoU of classes 1-16.

- ``mIoU`` (the leaderboard number): the reference's ``sum(ious[1:]) / 16``. A class with an empty union over
  the split (absent from GT and prediction) has IoU NaN (0 / 0) there, which makes this mean NaN; the output
  then says so in ``mIoU_note`` and names the classes in ``absent_classes``.
- ``mIoU_present`` (ours, an extra): the NaN-mean, leaving such classes out.
"""

import numpy as np

from perception.constants import OPENOCC_CLASSES, OPENOCC_GRID
from perception.data.openocc_labels import IGNORE, NUM_CLASSES
from perception.eval.confusion import (
    ConfusionCounts,
    binary_iou,
    confusion_matrix,
    geometry_counts,
    iou_from_confusion,
    nanmean_or_nan,
)
from perception.eval.occ_miou import check_volume

PROTOCOL = {
    "reference": "JeffWang987/OpenOccupancy occnet.py evaluation_semantic + utils/formating.py "
                 "(cm_to_ious, format_SSC_results) + datasets/pipelines/loading.py LoadOccupancy (32cb2a0)",
    "mIoU": "leaderboard number: sum of the IoU of classes 1-16 / 16 (NaN when a class has an empty union)",
    "mIoU_present": "not the leaderboard's: NaN-mean over classes 1-16 (classes with an empty union left out)",
    "geometry_IoU": "occupied vs empty over the non-noise voxels (the reference's SC IoU)",
}


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
        """``{'geometry_IoU', 'mIoU', 'mIoU_present', 'mIoU_note', 'per_class': {name: IoU},
        'absent_classes', 'num_samples', 'protocol'}`` (classes 1-16).

        ``mIoU``: the reference's ``sum(IoU 1-16) / 16``, NaN when a class has an empty union over the split
        (``absent_classes``; ``mIoU_note`` then explains it, else it is None). ``mIoU_present``: NaN-mean over
        the other classes. ``per_class``: NaN for the absent classes. ``geometry_IoU``: occupied vs empty
        (NaN when both are always empty). ``protocol``: text labels of these choices and the reference followed.
        """
        iou = iou_from_confusion(self.hist)[1:]
        absent = [n for n, v in zip(OPENOCC_CLASSES[1:], iou, strict=True) if np.isnan(v)]
        miou = sum(float(v) for v in iou) / len(iou)  # python sum, NaN if any class is NaN (as the reference)
        note = None
        if absent:
            note = (f"NaN: {len(absent)} class(es) ({', '.join(absent)}) have an empty union over the split (absent "
                    f"from GT and prediction), so their IoU is 0/0 = NaN and the reference's sum(IoU)/16 is NaN; "
                    f"mIoU_present leaves them out")
        return {
            "geometry_IoU": binary_iou(*self.geo),
            "mIoU": miou,
            "mIoU_present": nanmean_or_nan(iou),
            "mIoU_note": note,
            "per_class": {n: float(v) for n, v in zip(OPENOCC_CLASSES[1:], iou, strict=True)},
            "absent_classes": absent,
            "num_samples": self.num_samples,
            "protocol": dict(PROTOCOL),
        }
