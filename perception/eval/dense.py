"""Dense-task scoring of a split: BEV map IoU and occupancy (Occ3D mIoU + RayIoU, or OpenOccupancy) in one
mergeable accumulator, :class:`DenseScores`, fed sample by sample (model mode, replay) or from saved
prediction folders (:func:`score_dense_folders`).

GT comes from the data layer's :class:`perception.data.sample.Sample`: ``Sample.bev_map`` (LiDAR frame),
``Sample.occupancy`` (Occ3D, ego frame), or the nuScenes-Occupancy label files (LiDAR frame, read by
:func:`perception.data.openocc_labels.load_openocc_label`). A sample without GT for a task is skipped for it
and counted in ``skipped_no_gt``.
"""

import re
from collections import Counter

from perception.data.openocc_labels import load_openocc_label
from perception.eval.bev_iou import BevIou
from perception.eval.occ_miou import OccMiou
from perception.eval.openocc import OpenOccMetric
from perception.eval.ray_iou import RayIou, sparseocc_origins
from perception.eval.region import bev_region_mask, check_region, occ_region_mask
from perception.eval.results_io import load_bev, load_occ, load_openocc


def scene_lidar_poses(samples):
    """``{scene_name: [lidar2global 4x4, ...]}`` in the order given (time order within a scene)."""
    poses = {}
    for s in samples:
        poses.setdefault(s.scene_name, []).append(s.lidar2global)
    return poses


class DenseScores:
    """The dense-task accumulators of a split (mergeable across ranks)."""

    def __init__(self, with_rays=True, openocc_labels=None, region="all"):
        """``openocc_labels``: ``{token: label file}`` (:func:`perception.eval.runner.openocc_labels`) to score
        occupancy with the OpenOccupancy protocol instead of Occ3D's. ``region``: score only the cells and
        voxels inside it (:mod:`perception.eval.region`; no RayIoU and no OpenOccupancy then)."""
        self.region = check_region(region)
        if region != "all" and openocc_labels is not None:
            raise ValueError(f"region={region!r}: OpenOccupancy scoring has no region variant")
        self.bev = BevIou()
        self.occ = OccMiou()
        self.ray = RayIou() if with_rays and region == "all" else None
        self.occ_region = None if region == "all" else occ_region_mask(region)  # (NX, NY, NZ) on OCC3D_GRID
        self.openocc_labels = openocc_labels
        self.openocc = None if openocc_labels is None else OpenOccMetric()
        self.skipped = {"bev": 0, "occ": 0}
        # Model mode only: samples that ran degraded (a sensor withheld, missing or bad), by reason.
        self.degraded = None

    def count_degraded(self, warnings):
        """Count one inferred sample's ``Prediction.warnings`` (numbers in a reason are replaced by N, so
        that "3 NaN/inf points removed" and "5 NaN/inf points removed" count as one reason)."""
        if self.degraded is None:
            self.degraded = {"samples": 0, "inferred": 0, "reasons": Counter()}
        self.degraded["inferred"] += 1
        if warnings:
            self.degraded["samples"] += 1
            self.degraded["reasons"].update({re.sub(r"\d+", "N", w) for w in warnings})

    def add(self, sample, bev_probs=None, occ_labels=None, scene_poses=()):
        """Score one sample's predictions against its GT (``bev_probs`` LiDAR frame, ``occ_labels`` on the
        occupancy grid: Occ3D ego frame, or OpenOccupancy LiDAR frame)."""
        if bev_probs is not None:
            gt = sample.bev_map
            if gt is None:
                self.skipped["bev"] += 1
            else:
                if self.region != "all":  # cells outside the region are zeroed: they add nothing
                    inside = bev_region_mask(self.region, sample.lidar2ego)  # (NX, NY)
                    bev_probs, gt = bev_probs * inside, gt * inside
                self.bev.update(bev_probs, gt)
        if occ_labels is not None and self.openocc is not None:
            path = self.openocc_labels.get(sample.token)
            if path is None:
                self.skipped["occ"] += 1
            else:
                self.openocc.update(occ_labels, load_openocc_label(path))
        elif occ_labels is not None:
            occ = sample.occupancy
            if occ is None:
                self.skipped["occ"] += 1
            else:
                self.occ.update(occ_labels, occ.semantics, occ.mask_camera, region=self.occ_region)
                if self.ray is not None:
                    origins = sparseocc_origins(sample.lidar2ego, sample.lidar2global, scene_poses)
                    self.ray.update(occ_labels, occ.semantics, origins)

    def merge(self, other):
        self.bev.merge(other.bev)
        self.occ.merge(other.occ)
        if self.ray is not None:
            self.ray.merge(other.ray)
        if self.openocc is not None:
            self.openocc.merge(other.openocc)
        for k in self.skipped:
            self.skipped[k] += other.skipped[k]
        if other.degraded is not None:
            if self.degraded is None:
                self.degraded = {"samples": 0, "inferred": 0, "reasons": Counter()}
            for k in ("samples", "inferred", "reasons"):
                self.degraded[k] += other.degraded[k]

    def compute(self):
        out = {}
        if self.bev.num_samples:
            out["bev_map"] = self.bev.compute()
        if self.occ.num_samples:
            out["occupancy"] = self.occ.compute()
            if self.ray is not None:
                out["occupancy"]["ray"] = self.ray.compute()
        if self.openocc is not None and self.openocc.num_samples:
            out["occupancy_openocc"] = self.openocc.compute()
        out["skipped_no_gt"] = dict(self.skipped)
        out["region"] = self.region
        if self.degraded is not None:
            out["degraded"] = {**self.degraded, "reasons": dict(sorted(self.degraded["reasons"].items()))}
        return out


def score_dense_folders(samples, bev_dir=None, occ_dir=None, tokens_bev=(), tokens_occ=(), with_rays=True,
                        openocc_labels=None):
    """Accumulate saved dense predictions (see :mod:`perception.eval.results_io`) for the given tokens
    (occupancy on the OpenOccupancy grid when ``openocc_labels`` is given, see :class:`DenseScores`)."""
    dense = DenseScores(with_rays, openocc_labels)
    load = load_occ if openocc_labels is None else load_openocc
    poses = scene_lidar_poses(samples)
    bev_set, occ_set = set(tokens_bev), set(tokens_occ)
    for s in samples:
        bev = load_bev(bev_dir, s.token) if bev_dir and s.token in bev_set else None
        occ = load(occ_dir, s.token) if occ_dir and s.token in occ_set else None
        dense.add(s, bev, occ, poses[s.scene_name])
    return dense
