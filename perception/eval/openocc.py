"""OpenOccupancy (nuScenes-Occupancy) protocol: geometry IoU + semantic mIoU over 16 classes.

Follows OpenOccupancy (JeffWang987/OpenOccupancy): the label loader ``LoadOccupancy`` +
``nb_process_label`` in ``projects/occ_plugin/datasets/pipelines/loading.py`` (commit 32cb2a0) and the scoring
of ``OccNet.evaluation_semantic`` (``projects/occ_plugin/occupancy/detectors/occnet.py``), ``cm_to_ious`` and
``format_SSC_results`` (``projects/occ_plugin/utils/formating.py``), summed over the split as
``NuScenesOcc.evaluate``.

Label files: ``<occ_root>/scene_<scene_token>/occupancy/<lidar_token>.npy``, a sparse ``(N, 4)`` integer array
of the occupied voxels, columns ``[z, y, x, label]`` (voxel indices on ``OPENOCC_GRID``: 512 x 512 x 40 voxels
of 0.2 m over [-51.2, 51.2]^2 x [-5, 3] m, LiDAR frame). As the reference loader: label 0 is "noise" and
becomes IGNORE (255); indices outside the grid are clamped to its border voxels; several rows naming the same
voxel are resolved by majority vote over their labels (noise counting as 255; a tie goes to the smaller label,
so a real class beats noise on a tie), except that rows clamped up from below the grid vote apart from the
border voxel's own rows and the vote that comes later in the reference's (z, y, x) order wins; voxels not
listed are empty (0). Labels 1-16 follow ``OPENOCC_CLASSES``.

Dense volumes here are ``uint8 [ix, iy, iz]`` with 0 = empty, 1-16 semantic, 255 = ignore.
Scoring: voxels whose GT is 255 are ignored; no visibility mask. Geometry IoU (the reference's "SC"):
occupied (label 1-16) vs empty over the split. Semantic ("SSC"): one 17 x 17 confusion matrix over the split,
IoU of classes 1-16.

- ``mIoU`` (the leaderboard number): the reference's ``sum(ious[1:]) / 16``. A class with an empty union over
  the split (absent from GT and prediction) has IoU NaN (0 / 0) there, which makes this mean NaN; the output
  then says so in ``mIoU_note`` and names the classes in ``absent_classes``.
- ``mIoU_present`` (ours, an extra): the NaN-mean, leaving such classes out.
"""

import os

import numpy as np

from perception.constants import OPENOCC_CLASSES, OPENOCC_GRID
from perception.eval.confusion import (ConfusionCounts, binary_iou, confusion_matrix, geometry_counts,
                                       iou_from_confusion, nanmean_or_nan)
from perception.eval.occ_miou import check_volume

IGNORE = 255
NUM_CLASSES = len(OPENOCC_CLASSES)  # 17: 0 empty + 16 semantic

PROTOCOL = {
    "reference": "JeffWang987/OpenOccupancy occnet.py evaluation_semantic + utils/formating.py "
                 "(cm_to_ious, format_SSC_results) + datasets/pipelines/loading.py LoadOccupancy (32cb2a0)",
    "mIoU": "leaderboard number: sum of the IoU of classes 1-16 / 16 (NaN when a class has an empty union)",
    "mIoU_present": "not the leaderboard's: NaN-mean over classes 1-16 (classes with an empty union left out)",
    "geometry_IoU": "occupied vs empty over the non-noise voxels (the reference's SC IoU)",
}


def openocc_label_path(occ_root, scene_token, lidar_token):
    """Path of a nuScenes-Occupancy label file (``lidar_token`` = LIDAR_TOP sample_data token)."""
    return os.path.join(occ_root, f"scene_{scene_token}", "occupancy", f"{lidar_token}.npy")


def load_openocc_label(path, grid_shape=OPENOCC_GRID.shape):
    """Sparse ``[z, y, x, label]`` ``.npy`` -> dense uint8 ``[ix, iy, iz]`` (0 empty, 1-16, 255 ignore).

    As OpenOccupancy's ``LoadOccupancy``: label 0 (noise) -> 255, indices clamped into the grid, repeated
    voxels -> the most frequent label among their rows (ties: the smaller label, noise counting as 255).
    Raises ``ValueError`` naming the file unless it is an ``(N, 4)`` integer array with labels in 0-16 or 255.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"OpenOccupancy label file not found: {path}")
    sparse = np.load(path)
    if sparse.ndim != 2 or sparse.shape[1] != 4 or not np.issubdtype(sparse.dtype, np.integer):
        raise ValueError(f"{path}: expected an (N, 4) integer array [z, y, x, label], got {sparse.shape} "
                         f"{sparse.dtype}")
    shape = tuple(int(n) for n in grid_shape)
    z, y, x, label = (sparse[:, i].astype(np.int64) for i in range(4))
    if np.any((label < 0) | ((label >= NUM_CLASSES) & (label != IGNORE))):
        raise ValueError(f"{path}: labels must lie in [0, {NUM_CLASSES - 1}] (or be {IGNORE})")
    label = np.where(label == 0, IGNORE, label)
    dense = np.zeros(shape, np.uint8)
    if not label.size:
        return dense
    # The reference sorts the rows by their voxel-centre coordinates clipped into [0, n - 1] (z, then y, then x)
    # and votes over each run of consecutive rows that name the same voxel. A centre i + 0.5 inside the grid
    # keeps its place; one below the grid becomes 0 (a run apart from voxel 0's own rows, at 0.5), one in or
    # above the last voxel becomes n - 1. Runs are written in sorted order, so a later run overwrites.
    keys, index = [], []
    for v, n in ((x, shape[0]), (y, shape[1]), (z, shape[2])):
        keys.append(np.where(v < 0, 0.0, np.where(v >= n - 1, n - 1.0, v + 0.5)))
        index.append(np.clip(v, 0, n - 1))
    order = np.lexsort((keys[0], keys[1], keys[2]))
    voxel = np.ravel_multi_index(tuple(i[order] for i in index), shape)
    label = label[order]
    run = np.concatenate([[0], np.cumsum(voxel[1:] != voxel[:-1])])
    run_voxel = voxel[np.concatenate([[0], np.flatnonzero(voxel[1:] != voxel[:-1]) + 1])]
    pairs, votes = np.unique(run * 256 + label, return_counts=True)
    run_id, run_label = pairs // 256, pairs % 256
    pick = np.lexsort((run_label, -votes, run_id))  # per run: most votes first, then the smaller label
    run_id, run_label = run_id[pick], run_label[pick]
    first = np.concatenate([[True], run_id[1:] != run_id[:-1]])
    winner = run_label[first]  # one per run, runs in sorted order
    last = len(run_voxel) - 1 - np.unique(run_voxel[::-1], return_index=True)[1]  # the last run of each voxel
    dense.reshape(-1)[run_voxel[last]] = winner[last].astype(np.uint8)
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
        """``{'geometry_IoU', 'mIoU', 'mIoU_present', 'mIoU_note', 'per_class': {name: IoU},
        'absent_classes', 'num_samples', 'protocol'}`` (classes 1-16).

        ``mIoU``: the reference's ``sum(IoU 1-16) / 16``, NaN when a class has an empty union over the split
        (``absent_classes``; ``mIoU_note`` then explains it, else it is None). ``mIoU_present``: NaN-mean over
        the other classes. ``per_class``: NaN for the absent classes. ``geometry_IoU``: occupied vs empty
        (NaN when both are always empty). ``protocol``: text labels of these choices and the reference followed.
        """
        iou = iou_from_confusion(self.hist)[1:]
        absent = [n for n, v in zip(OPENOCC_CLASSES[1:], iou) if np.isnan(v)]
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
            "per_class": {n: float(v) for n, v in zip(OPENOCC_CLASSES[1:], iou)},
            "absent_classes": absent,
            "num_samples": self.num_samples,
            "protocol": dict(PROTOCOL),
        }
