"""RayIoU (SparseOcc, Liu et al. 2024) for Occ3D volumes, with numba ray marching.

Definition implemented (as SparseOcc's ``ray_metrics.py``):
- Rays: the SparseOcc pseudo-LiDAR pattern (:func:`lidar_ray_directions`): pitch angles
  ``-(pi/2 - atan(k))`` for k = 1..10, continued with the last step until above 0.21 rad, times 360
  azimuths at 1 degree.
- Origins (ego frame of the evaluated sample, metres): the LiDAR positions of the frames of the scene
  expressed in this sample's ego frame, kept where ``|x| < 39`` and ``|y| < 39``, at most 8 picked evenly
  (:func:`sparseocc_origins`). For a single frame this is the LiDAR origin = ``lidar2ego`` translation.
- Each ray is marched through the GT volume and through the predicted volume (voxel traversal,
  Amanatides & Woo). The first non-free voxel gives the ray's class and its depth (metres from the origin
  to where the ray enters that voxel). A ray that leaves the grid without a hit has class "free".
- Rays whose GT class is free are dropped. For class c: GT count = rays with GT class c, prediction
  count = kept rays with predicted class c, TP = rays where both are c and ``|depth_pred - depth_gt| < thr``.
  RayIoU_c(thr) = TP / (GT + pred - TP), summed over the split; thresholds 1, 2, 4 m. RayIoU is the
  NaN-mean over the 17 classes (free excluded) and the three thresholds; a class with no GT and no
  prediction rays is NaN and excluded.
"""

import math

import numba
import numpy as np

from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.eval.confusion import nanmean_or_nan
from perception.eval.occ_miou import check_volume
from perception.geometry import invert

THRESHOLDS = (1.0, 2.0, 4.0)  # metres
NUM_SEMANTIC = OCC3D_FREE  # classes 0-16


def lidar_ray_directions():
    """``(R, 3)`` float64 unit directions (ego axes) of SparseOcc's pseudo-LiDAR, R = n_pitch * 360."""
    pitch = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    while pitch[-1] < 0.21:  # nuScenes LiDAR upper field of view (rad)
        pitch.append(pitch[-1] + (pitch[-1] - pitch[-2]))
    pitch = np.asarray(pitch)[:, None]
    azimuth = np.deg2rad(np.arange(0, 360, 1))[None, :]
    dirs = np.stack(
        [np.cos(pitch) * np.cos(azimuth), np.cos(pitch) * np.sin(azimuth), np.sin(pitch) + 0 * azimuth], -1
    )
    return dirs.reshape(-1, 3)


def sparseocc_origins(lidar2ego, lidar2global, scene_lidar2globals=(), max_origins=8, max_xy=39.0):
    """Ray origins ``(T, 3)`` in the evaluated sample's ego frame (metres).

    ``lidar2ego``, ``lidar2global``: 4x4 of the evaluated sample. ``scene_lidar2globals``: 4x4 LiDAR poses of
    every frame of its scene in time order, the sample itself included (empty: only the sample's LiDAR).
    """
    poses = list(scene_lidar2globals) or [lidar2global]
    global2ref = invert(lidar2global)
    origins = []
    for pose in poses:
        in_ref_lidar = (global2ref @ np.asarray(pose))[:3, 3]
        in_ego = lidar2ego[:3, :3] @ in_ref_lidar + lidar2ego[:3, 3]
        if abs(in_ego[0]) < max_xy and abs(in_ego[1]) < max_xy:
            origins.append(in_ego)
    if len(origins) > max_origins:
        pick = np.round(np.linspace(0, len(origins) - 1, max_origins)).astype(np.int64)
        origins = [origins[i] for i in pick]
    return np.asarray(origins, dtype=np.float64).reshape(-1, 3)


@numba.njit(cache=True)
def _march(occupied, origin_vox, dirs, voxel_size):
    """Voxel traversal. ``origin_vox``: origin in voxel units (cell i covers [i, i+1)); ``dirs`` unit (R, 3)
    in metres; ``voxel_size`` per axis (metres). Returns depth (R,) metres and hit index (R, 3) (-1: none)."""
    nx, ny, nz = occupied.shape
    shape = (nx, ny, nz)
    n = dirs.shape[0]
    depth = np.empty(n, np.float64)
    hit = np.full((n, 3), -1, np.int64)
    for r in range(n):
        idx = np.empty(3, np.int64)
        step = np.empty(3, np.int64)
        t_max = np.empty(3, np.float64)
        t_delta = np.empty(3, np.float64)
        for a in range(3):
            idx[a] = int(math.floor(origin_vox[a]))
            d = dirs[r, a] / voxel_size[a]  # voxels per metre along axis a
            if d > 0:
                step[a] = 1
                t_max[a] = (idx[a] + 1 - origin_vox[a]) / d
                t_delta[a] = 1.0 / d
            elif d < 0:
                step[a] = -1
                t_max[a] = (origin_vox[a] - idx[a]) / -d
                t_delta[a] = -1.0 / d
            else:
                step[a] = 0
                t_max[a] = np.inf
                t_delta[a] = np.inf
        t = 0.0
        while True:
            inside = True
            for a in range(3):
                if idx[a] < 0 or idx[a] >= shape[a]:
                    inside = False
            if not inside:
                break
            if occupied[idx[0], idx[1], idx[2]]:
                hit[r, 0] = idx[0]
                hit[r, 1] = idx[1]
                hit[r, 2] = idx[2]
                break
            a = 0
            if t_max[1] < t_max[a]:
                a = 1
            if t_max[2] < t_max[a]:
                a = 2
            t = t_max[a]
            idx[a] += step[a]
            t_max[a] += t_delta[a]
        depth[r] = t
    return depth, hit


def cast_rays(volume, origin, dirs, grid=OCC3D_GRID, free_label=OCC3D_FREE):
    """Class and depth of the first non-free voxel along each ray.

    ``volume``: labels ``[ix, iy, iz]`` on ``grid`` (ego frame); ``origin`` (3,) metres, inside the grid;
    ``dirs`` (R, 3) unit vectors. Returns ``labels`` (R,) int64 (``free_label`` when nothing is hit) and
    ``depth`` (R,) metres.
    """
    lower, size = np.asarray(grid.lower, np.float64), np.asarray(grid.size, np.float64)
    origin_vox = (np.asarray(origin, np.float64) - lower) / size
    if np.any(origin_vox < 0) or np.any(origin_vox >= np.asarray(grid.shape)):
        raise ValueError(f"ray origin {list(origin)} (metres) lies outside the grid {grid}")
    depth, hit = _march(np.asarray(volume) != free_label, origin_vox, np.asarray(dirs, np.float64), size)
    labels = np.full(len(dirs), free_label, np.int64)
    ok = hit[:, 0] >= 0
    labels[ok] = np.asarray(volume)[hit[ok, 0], hit[ok, 1], hit[ok, 2]]
    return labels, depth


class RayIou:
    """Accumulates SparseOcc RayIoU counts over a split (see module docstring)."""

    def __init__(self, dirs=None):
        self.dirs = lidar_ray_directions() if dirs is None else np.asarray(dirs, np.float64)
        self.gt_cnt = np.zeros(NUM_SEMANTIC, np.int64)
        self.pred_cnt = np.zeros(NUM_SEMANTIC, np.int64)
        self.tp_cnt = np.zeros((len(THRESHOLDS), NUM_SEMANTIC), np.int64)
        self.num_samples = 0

    def update(self, pred, gt, origins):
        """Add one sample: ``pred``, ``gt`` Occ3D label volumes; ``origins`` (T, 3) ego-frame metres."""
        pred = check_volume(pred, "occ prediction")
        gt = check_volume(gt, "occ ground truth")
        origins = np.asarray(origins, np.float64).reshape(-1, 3)
        if len(origins) == 0:
            raise ValueError("RayIou.update: origins is empty (no LiDAR origin inside the grid)")
        for origin in origins:
            gl, gd = cast_rays(gt, origin, self.dirs)
            pl, pd = cast_rays(pred, origin, self.dirs)
            keep = gl != OCC3D_FREE
            gl, gd, pl, pd = gl[keep], gd[keep], pl[keep], pd[keep]
            self.gt_cnt += np.bincount(gl, minlength=OCC3D_FREE + 1)[:NUM_SEMANTIC]
            self.pred_cnt += np.bincount(pl, minlength=OCC3D_FREE + 1)[:NUM_SEMANTIC]
            err = np.abs(pd - gd)
            for j, thr in enumerate(THRESHOLDS):
                match = (pl == gl) & (err < thr)
                self.tp_cnt[j] += np.bincount(gl[match], minlength=OCC3D_FREE + 1)[:NUM_SEMANTIC]
        self.num_samples += 1

    def merge(self, other):
        self.gt_cnt += other.gt_cnt
        self.pred_cnt += other.pred_cnt
        self.tp_cnt += other.tp_cnt
        self.num_samples += other.num_samples

    def compute(self):
        """``{'RayIoU', 'RayIoU@1', 'RayIoU@2', 'RayIoU@4', 'per_class': {name: [IoU@1, @2, @4]}, 'num_samples'}``."""
        denom = self.gt_cnt[None] + self.pred_cnt[None] - self.tp_cnt
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(denom > 0, self.tp_cnt / np.maximum(denom, 1), np.nan)  # (3, 17)
        out = {"RayIoU": nanmean_or_nan(iou)}
        for j, thr in enumerate(THRESHOLDS):
            out[f"RayIoU@{int(thr)}"] = nanmean_or_nan(iou[j])
        out["per_class"] = {n: [float(v) for v in iou[:, c]] for c, n in enumerate(OCC3D_CLASSES[:NUM_SEMANTIC])}
        out["num_samples"] = self.num_samples
        return out
