"""Scoring restricted to a region around the ego: what the withheld-sensor rows compare on.

With the three rear cameras withheld, a model can only see ahead; comparing it with the full rig over the
whole grid measures mostly what it cannot see. ``region='front'`` scores only what lies ahead of the ego
(ego frame x > 0, the half the three front cameras cover), the same way for every row:

- detection: GT and predicted boxes whose centre is ahead (the devkit's boxes in the global frame, rotated
  into the ego frame of their sample's LIDAR_TOP keyframe; matching and metrics stay the devkit's);
- BEV map: cells whose centre is ahead (``BEV_MAP_GRID`` is in the LiDAR frame: moved with ``lidar2ego``);
  outside cells are zeroed in prediction and GT, so they add nothing to TP, FP or FN;
- Occ3D: voxels ahead (``OCC3D_GRID`` is in the ego frame), ANDed into ``mask_camera`` for the mIoU; the
  geometry IoU (all voxels, no camera mask) counts the voxels ahead only. RayIoU and
  OpenOccupancy have no region variant here and are refused with a region.
"""

import numpy as np
from pyquaternion import Quaternion

from perception.constants import BEV_MAP_GRID, OCC3D_GRID

REGIONS = ("all", "front")


def check_region(region):
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    return region


def bev_region_mask(region, lidar2ego):
    """``(NX, NY)`` bool on ``BEV_MAP_GRID`` (LiDAR frame): the cells inside ``region``."""
    xs, ys = (np.asarray(BEV_MAP_GRID.centers(a)) for a in (0, 1))
    if region == "all":
        return np.ones((len(xs), len(ys)), bool)
    x, y = np.meshgrid(xs, ys, indexing="ij")  # (NX, NY) LiDAR frame, metres
    ego_x = lidar2ego[0, 0] * x + lidar2ego[0, 1] * y + lidar2ego[0, 3]  # the cell centre at z = 0, ego x
    return ego_x > 0


def occ_region_mask(region):
    """``(NX, NY, NZ)`` bool on ``OCC3D_GRID`` (ego frame): the voxels inside ``region``."""
    shape = OCC3D_GRID.shape
    if region == "all":
        return np.ones(shape, bool)
    ahead = np.asarray(OCC3D_GRID.centers(0)) > 0  # (NX,)
    return np.broadcast_to(ahead[:, None, None], shape).copy()


def keep_region_boxes(nusc, eval_boxes, region):
    """``eval_boxes`` (devkit ``EvalBoxes``, global frame) with only the boxes inside ``region`` (in place)."""
    if region == "all":
        return eval_boxes
    for token in eval_boxes.sample_tokens:
        lidar = nusc.get("sample_data", nusc.get("sample", token)["data"]["LIDAR_TOP"])
        pose = nusc.get("ego_pose", lidar["ego_pose_token"])
        to_ego = Quaternion(pose["rotation"]).inverse.rotation_matrix  # global -> ego rotation
        keep = [b for b in eval_boxes[token]
                if (to_ego @ (np.asarray(b.translation) - np.asarray(pose["translation"])))[0] > 0]
        eval_boxes.boxes[token] = keep
    return eval_boxes
