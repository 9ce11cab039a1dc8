"""The training/evaluation dataset: :class:`Sample` list -> per-sample item dicts for :func:`collate`.

Each item holds the per-sample slices (numpy) of the batch in ``docs/architecture.md``: the same keys, without
the leading batch dimension (``points (N, 5)``, ``images (N_cam, 3, H, W)``, ``gt_bev (6, 200, 200)``, ...).

Nothing bad is silently dropped: every removal is counted in :attr:`M3Dataset.stats` and logged.
- missing/unreadable camera image or a camera absent from the sample -> ``cam_mask`` False (image zeros);
- missing or corrupt LiDAR file (e.g. a truncated ``.pcd.bin``) -> ``lidar_mask`` False, empty points;
- NaN/inf points removed; GT boxes with a label outside ``DETECTION_CLASSES``, ``num_lidar_pts == 0`` or a
  centre outside ``point_cloud_range`` (x, y, augmented frame) removed;
- occupancy GT (Occ3D or OpenOccupancy, ``occ_format``) missing -> ``occ_missing``, unreadable or malformed
  -> ``occ_unreadable`` (the message names the file); both ``gt_occ_valid`` False.
With ``DataLoader(num_workers > 0)`` each worker counts in its own copy of ``stats``.

The LiDAR and camera inputs are read by :mod:`perception.data.inputs` (as at inference), the OpenOccupancy
labels by :mod:`perception.data.openocc_labels` (as in evaluation).
"""

import logging
import os
from collections import Counter

import numpy as np
import torch

from perception.config_schema import OCC_FORMATS  # occupancy GT formats ('occ3d', 'openocc'), config data.occ_format
from perception.constants import (
    BEV_MAP_CLASSES,
    BEV_MAP_GRID,
    CAMERA_NAMES,
    DETECTION_CLASSES,
    OCC3D_FREE,
    OCC3D_GRID,
    OPENOCC_GRID,
)
from perception.data import augment
from perception.data.inputs import LOAD_ERRORS, camera_inputs, crop_to_range, read_points, sample_meta
from perception.data.openocc_labels import OPENOCC_FREE, check_openocc_root, load_openocc_label, openocc_label_path

log = logging.getLogger(__name__)


class M3Dataset(torch.utils.data.Dataset):
    """Samples -> augmented, ground-truth-filtered items.

    Args:
        samples: list of :class:`perception.data.sample.Sample`.
        cameras: camera names to use, a subset of ``CAMERA_NAMES``; the item keeps ``CAMERA_NAMES`` order.
        image_aug: :class:`perception.data.augment.ImageAugParams` (its ``final_hw`` is the image size H, W).
        training: draw random augmentations (True) or use the deterministic test-time ones (False).
        bev_aug: :class:`perception.data.augment.BevAugParams` for training (ignored when not training).
        num_sweeps: LiDAR sweeps merged with the keyframe (0 = keyframe only; time lag then 0).
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` metres, augmented LiDAR frame;
            points outside are cropped, boxes whose centre (x, y) is outside are removed.
        load_bev: load the BEV map GT (``gt_bev``); load_occ: load the occupancy GT (``gt_occ``).
        seed: base seed; item ``i`` in epoch ``e`` uses ``numpy.random.default_rng((seed, e, i))``.
        occ_format: occupancy GT to load (config ``data.occ_format``): ``'occ3d'`` (``Sample.occ_path``,
            ``(200, 200, 16)`` ego frame with ``mask_camera``) or ``'openocc'`` (nuScenes-Occupancy label
            ``openocc_label_path(openocc_root, sample.scene_token, sample.lidar_token)`` read by
            :func:`perception.data.openocc_labels.load_openocc_label`: ``(512, 512, 40)`` LiDAR frame, 0 empty, 1-16,
            255 ignore (kept in ``gt_occ``; the head's ``model.head.occ.ignore_index``), ``gt_occ_mask`` all True).
            With ``load_occ`` False the (unused) placeholders are Occ3D-shaped whatever the format.
        openocc_root: folder of the nuScenes-Occupancy labels (config ``data.openocc_root``), for ``'openocc'``.
    """

    def __init__(
        self,
        samples,
        cameras=CAMERA_NAMES,
        image_aug=augment.ImageAugParams(),
        training=False,
        bev_aug=augment.BevAugParams(),
        num_sweeps=10,
        point_cloud_range=(-54.0, -54.0, -5.0, 54.0, 54.0, 3.0),
        load_bev=True,
        load_occ=True,
        seed=0,
        occ_format="occ3d",
        openocc_root=None,
    ):
        unknown = [c for c in cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"M3Dataset: cameras {unknown} not in CAMERA_NAMES {CAMERA_NAMES}")
        pcr = point_cloud_range
        if len(pcr) != 6 or not all(np.asarray(pcr[:3]) < np.asarray(pcr[3:])):
            raise ValueError(f"M3Dataset: point_cloud_range must be (xmin, ymin, zmin, xmax, ymax, zmax), got {pcr}")
        if num_sweeps < 0:
            raise ValueError(f"M3Dataset: num_sweeps must be >= 0, got {num_sweeps}")
        if occ_format not in OCC_FORMATS:
            raise ValueError(f"M3Dataset: occ_format (config data.occ_format) must be one of {OCC_FORMATS}, "
                             f"got {occ_format!r}")
        self.samples = list(samples)
        self.cameras = tuple(c for c in CAMERA_NAMES if c in cameras)
        self.image_aug = image_aug
        self.training = training
        self.bev_aug = bev_aug
        self.num_sweeps = num_sweeps
        self.point_cloud_range = np.asarray(point_cloud_range, dtype=np.float32)
        self.load_bev = load_bev
        self.load_occ = load_occ
        self.seed = seed
        self.occ_format = occ_format
        self.openocc_root = None if openocc_root is None else str(openocc_root)
        self.epoch = 0
        self.stats = Counter()
        if load_occ and occ_format == "openocc":
            check_openocc_root(self.openocc_root, self.samples)

    def set_epoch(self, epoch):
        """Change the augmentation draws (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self):
        return len(self.samples)

    # Filters that every nuScenes-style dataset triggers by design (the devkit drops the same boxes): counted,
    # logged at debug level only. Everything else is a data problem: counted and warned.
    ROUTINE = ("boxes_no_points", "boxes_out_of_range")

    def _count(self, key, n, message):
        if not n:
            return
        first = key not in self.stats
        self.stats[key] += n
        if key in self.ROUTINE or not first:
            log.debug(message)
        else:  # warn once per kind of problem; the totals stay in ``self.stats``
            log.warning("%s (further cases of %r are counted in dataset.stats)", message, key)

    def __getitem__(self, index):
        sample = self.samples[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        A = augment.sample_bev_aug(self.bev_aug, rng) if self.training else augment.identity_bev_aug()

        points, lidar_ok = self._load_points(sample)
        points = crop_to_range(augment.augment_points(A, points), self.point_cloud_range)

        boxes, labels = self._filter_boxes(sample, A)
        cams = self._load_cameras(sample, A, rng)
        gt_bev, bev_valid = self._load_bev(sample)
        gt_occ, gt_occ_mask, occ_valid = self._load_occ(sample)
        return {
            "points": points.astype(np.float32),
            "lidar_mask": lidar_ok,
            **cams,
            "bev_aug": A.astype(np.float32),
            "lidar2ego": np.asarray(sample.lidar2ego, dtype=np.float32),
            "gt_boxes": boxes,
            "gt_labels": labels,
            "gt_bev": gt_bev,
            "gt_bev_valid": bev_valid,
            "gt_occ": gt_occ,
            "gt_occ_mask": gt_occ_mask,
            "gt_occ_valid": occ_valid,
            "meta": sample_meta(sample),
        }

    # ------------------------------------------------------------------------------------------ LiDAR

    def _load_points(self, sample):
        """``(N, 5)`` float32 x, y, z, intensity, time lag in the ORIGINAL LiDAR frame, and a validity flag."""
        points, ok, problems = read_points(sample, self.num_sweeps)
        for key, n, message in problems:
            self._count(key, n, message)
        return points, ok

    def _filter_boxes(self, sample, A):
        """GT boxes in the augmented LiDAR frame with invalid labels, empty and out-of-range boxes removed."""
        boxes = np.asarray(sample.boxes, dtype=np.float32).reshape(-1, 9)
        labels = np.asarray(sample.labels, dtype=np.int64).reshape(-1)
        npts = np.asarray(sample.num_lidar_pts, dtype=np.int64).reshape(-1)
        if len(labels) != len(boxes) or len(npts) not in (0, len(boxes)):
            raise ValueError(f"sample {sample.token}: boxes ({len(boxes)}), labels ({len(labels)}) and "
                             f"num_lidar_pts ({len(npts)}) differ in length")
        keep = (labels >= 0) & (labels < len(DETECTION_CLASSES))
        self._count("boxes_bad_label", int((~keep).sum()),
                    f"sample {sample.token}: {(~keep).sum()} boxes with labels outside DETECTION_CLASSES removed")
        if len(npts):
            empty = keep & (npts == 0)
            self._count("boxes_no_points", int(empty.sum()),
                        f"sample {sample.token}: {empty.sum()} boxes with num_lidar_pts == 0 removed")
            keep &= ~empty
        boxes = augment.augment_boxes(A, boxes) if len(boxes) else boxes
        lo, hi = self.point_cloud_range[:2], self.point_cloud_range[3:5]
        outside = keep & ~np.all((boxes[:, :2] >= lo) & (boxes[:, :2] < hi), axis=1)
        self._count("boxes_out_of_range", int(outside.sum()),
                    f"sample {sample.token}: {outside.sum()} boxes outside point_cloud_range removed")
        keep &= ~outside
        return boxes[keep].astype(np.float32), labels[keep]

    # ------------------------------------------------------------------------------------------ cameras

    def _load_cameras(self, sample, A, rng):
        """Per-camera augmented image and matrices, ``CAMERA_NAMES`` order restricted to ``self.cameras``."""
        out, problems = camera_inputs(sample, self.cameras, self.image_aug, A, rng if self.training else None)
        for key, n, message in problems:
            self._count(key, n, message)
        return out

    # ------------------------------------------------------------------------------------------ dense GT

    def _load_bev(self, sample):
        """``(6, 200, 200)`` float32 on ``BEV_MAP_GRID`` (ORIGINAL LiDAR frame) and a validity flag."""
        shape = (len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape
        if not self.load_bev:
            return np.zeros(shape, np.float32), False
        bev = sample.bev_map
        if bev is None:
            self._count("bev_missing", 1, f"sample {sample.token}: no BEV map GT, gt_bev_valid=False")
            return np.zeros(shape, np.float32), False
        bev = np.asarray(bev, dtype=np.float32)
        if bev.shape != shape:
            raise ValueError(f"sample {sample.token}: bev_map shape {bev.shape}, expected {shape}")
        return bev, True

    def _load_occ(self, sample):
        """Occ3D semantics ``(200, 200, 16)`` int64, ``mask_camera`` bool (ego frame, ORIGINAL), validity flag;
        with ``occ_format='openocc'`` see :meth:`_load_openocc`."""
        shape = OCC3D_GRID.shape
        empty = (np.full(shape, OCC3D_FREE, np.int64), np.zeros(shape, bool), False)
        if not self.load_occ:
            return empty
        if self.occ_format == "openocc":
            return self._load_openocc(sample)
        if sample.occ_path is None:
            self._count("occ_missing", 1, f"sample {sample.token}: no Occ3D GT, gt_occ_valid=False")
            return empty
        try:
            occ = sample.occupancy
        except LOAD_ERRORS as e:
            self._count("occ_unreadable", 1, f"sample {sample.token}: Occ3D GT unreadable, gt_occ_valid=False: {e}")
            return empty
        semantics = np.asarray(occ.semantics, dtype=np.int64)
        if semantics.shape != shape:
            raise ValueError(f"sample {sample.token}: occupancy semantics shape {semantics.shape}, expected {shape}")
        return semantics, np.asarray(occ.mask_camera, dtype=bool), True

    def _load_openocc(self, sample):
        """OpenOccupancy labels ``(512, 512, 40)`` int64 ``[ix, iy, iz]`` (LiDAR frame, ORIGINAL; 0 empty, 1-16
        semantic, 255 ignore), mask all True (no visibility mask: 255 is left to the head's ignore index),
        validity flag. The evaluation reads them with the same reader, so training and scoring see the same labels."""
        shape = OPENOCC_GRID.shape
        empty = (np.full(shape, OPENOCC_FREE, np.int64), np.zeros(shape, bool), False)
        path = openocc_label_path(self.openocc_root, sample.scene_token, sample.lidar_token)
        if not os.path.isfile(path):
            self._count("occ_missing", 1,
                        f"sample {sample.token}: no OpenOccupancy label file {path}, gt_occ_valid=False")
            return empty
        try:
            labels = load_openocc_label(path, shape)
        except (*LOAD_ERRORS, EOFError) as e:
            why = str(e) if path in str(e) else f"{path}: {e}"  # np.load's own errors do not name the file
            self._count("occ_unreadable", 1, f"sample {sample.token}: OpenOccupancy label file unreadable, "
                                             f"gt_occ_valid=False: {why}")
            return empty
        return labels.astype(np.int64), np.ones(shape, bool), True
