"""RayIoU (SparseOcc, Liu et al. 2024) for Occ3D volumes, with numba ray marching.

Follows SparseOcc (MCG-NJU/SparseOcc): ``loaders/ray_metrics.py`` (``generate_lidar_rays``,
``process_one_sample``, ``calc_rayiou``, ``main_rayiou``; commit ce36e0f), ``loaders/ego_pose_dataset.py``
(origins; commit fe9a966) and the TEST phase of the ``lib/dvr/dvr.cu`` ray-marching kernel (commit cb18cd4).

- Rays: the SparseOcc pseudo-LiDAR pattern (:func:`lidar_ray_directions`, float32 like the reference): pitch
  angles ``-(pi/2 - atan(k))`` for k = 1..10, continued with the last step until above 0.21 rad, times 360
  azimuths at 1 degree (39 x 360 = 14,040 rays).
- Origins (ego frame of the evaluated sample, metres): the LiDAR positions of the frames of the scene
  expressed in this sample's ego frame, kept where ``|x| < 39`` and ``|y| < 39``, at most 8 picked evenly
  (:func:`sparseocc_origins`). For a single frame this is the LiDAR origin = ``lidar2ego`` translation.
- Marching (:func:`cast_rays`), as the reference feeds its kernel: origin and ray end point (origin + unit
  direction) are converted to voxel units in float32, ``(p - grid.lower) / float32(voxel size)``; the kernel
  walks the voxels in float64 (Amanatides & Woo) from the voxel ``int()`` of the origin, and on an exact tie
  between axes steps along the LATER axis (Y before X, Z before both). A ray's depth is the distance at which
  it LEAVES the first non-free voxel (a voxel containing the origin gives the distance to that voxel's exit
  face), its class the class of that voxel. A ray that finds no non-free voxel gets the class of the last voxel
  it crossed (free) and the distance at which it leaves the grid. Depths are float32 voxel units times
  float32(0.4), as the reference.
- Rays whose GT class is free are dropped. For class c: GT count = rays with GT class c, prediction
  count = kept rays with predicted class c, TP = rays where both are c and ``|depth_pred - depth_gt| < thr``
  (float32 difference). RayIoU_c(thr) = TP / (GT + pred - TP), counts summed over the split; thresholds 1,
  2, 4 m. RayIoU is the NaN-mean over the 17 classes (free excluded) and the three thresholds; a class with no
  GT and no prediction rays is NaN (0 / 0 in the reference) and excluded.
"""

import math
import sys

import numba
import numpy as np

from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.eval.confusion import nanmean_or_nan
from perception.eval.occ_miou import check_volume

THRESHOLDS = (1.0, 2.0, 4.0)  # metres
NUM_SEMANTIC = OCC3D_FREE  # classes 0-16
MAX_STEP = 1000  # the reference kernel's traversal limit (voxel steps per ray)
_DBL_MAX = sys.float_info.max

PROTOCOL = {
    "reference": "MCG-NJU/SparseOcc loaders/ray_metrics.py (ce36e0f) + lib/dvr/dvr.cu TEST phase (cb18cd4)",
    "depth": "distance at which the ray leaves the first non-free voxel (as the reference kernel)",
    "RayIoU": "leaderboard number: NaN-mean over classes 0-16 and thresholds 1, 2, 4 m",
}


def lidar_ray_directions():
    """``(R, 3)`` float32 unit directions (ego axes) of SparseOcc's pseudo-LiDAR, R = n_pitch * 360."""
    pitch = [-(math.pi / 2 - math.atan(k + 1)) for k in range(10)]
    while pitch[-1] < 0.21:  # nuScenes LiDAR upper field of view (rad)
        pitch.append(pitch[-1] + (pitch[-1] - pitch[-2]))
    pitch = np.asarray(pitch)[:, None]
    azimuth = np.deg2rad(np.arange(0, 360, 1))[None, :]
    dirs = np.stack(
        [np.cos(pitch) * np.cos(azimuth), np.cos(pitch) * np.sin(azimuth), np.sin(pitch) + 0 * azimuth], -1
    )
    return dirs.reshape(-1, 3).astype(np.float32)


def sparseocc_origins(lidar2ego, lidar2global, scene_lidar2globals=(), max_origins=8, max_xy=39.0):
    """Ray origins ``(T, 3)`` in the evaluated sample's ego frame (metres).

    ``lidar2ego``, ``lidar2global``: 4x4 of the evaluated sample. ``scene_lidar2globals``: 4x4 LiDAR poses of
    every frame of its scene in time order, the sample itself included (empty: only the sample's LiDAR).
    As the reference, another frame's LiDAR position is rounded to float32 in the sample's LiDAR frame; the
    sample's own frame is exactly the LiDAR origin.
    """
    lidar2ego = np.asarray(lidar2ego, np.float64)
    poses = list(scene_lidar2globals) or [lidar2global]
    global2ref = np.linalg.inv(np.asarray(lidar2global, np.float64))
    origins = []
    for pose in poses:
        if np.array_equal(np.asarray(pose), np.asarray(lidar2global)):
            in_ref_lidar = np.zeros(3)
        else:
            in_ref_lidar = (global2ref @ np.asarray(pose, np.float64))[:3, 3].astype(np.float32)
        in_ego = lidar2ego[:3] @ np.append(in_ref_lidar.astype(np.float64), 1.0)
        if abs(in_ego[0]) < max_xy and abs(in_ego[1]) < max_xy:
            origins.append(in_ego)
    if len(origins) > max_origins:
        pick = np.round(np.linspace(0, len(origins) - 1, max_origins)).astype(np.int64)
        origins = [origins[i] for i in pick]
    return np.asarray(origins, dtype=np.float64).reshape(-1, 3)


@numba.njit(cache=True, error_model="numpy")  # numpy model: x / 0 gives inf/NaN as in C
def _march(occupied, origin, ends):
    """The reference kernel's TEST phase. ``occupied`` bool ``[ix, iy, iz]``; ``origin`` (3,) and ``ends``
    (R, 3) in voxel units (float32 values). Returns the distance (R,) in voxel units (-1: the ray never
    entered the grid) and the voxel (R, 3) that gives the ray's class ((0, 0, 0) when it never entered)."""
    nx, ny, nz = occupied.shape
    n = ends.shape[0]
    dist = np.empty(n, np.float64)
    coord = np.zeros((n, 3), np.int64)
    xo, yo, zo = origin[0], origin[1], origin[2]
    for r in range(n):
        rx, ry, rz = ends[r, 0] - xo, ends[r, 1] - yo, ends[r, 2] - zo
        norm = math.sqrt(rx * rx + ry * ry + rz * rz)
        dx, dy, dz = rx / norm, ry / norm, rz / norm
        sx = 1 if dx >= 0 else -1
        sy = 1 if dy >= 0 else -1
        sz = 1 if dz >= 0 else -1
        vx, vy, vz = int(xo), int(yo), int(zo)  # truncation toward zero, as C's int()
        tx = (vx + (0 if sx < 0 else 1) - xo) / dx if dx != 0 else _DBL_MAX
        ty = (vy + (0 if sy < 0 else 1) - yo) / dy if dy != 0 else _DBL_MAX
        tz = (vz + (0 if sz < 0 else 1) - zo) / dz if dz != 0 else _DBL_MAX
        ddx = sx / dx if dx != 0 else _DBL_MAX
        ddy = sy / dy if dy != 0 else _DBL_MAX
        ddz = sz / dz if dz != 0 else _DBL_MAX
        count = 0
        steps = 0
        was_inside = False
        cx, cy, cz = 0, 0, 0
        d_exit = -1.0
        while True:
            inside = 0 <= vx < nx and 0 <= vy < ny and 0 <= vz < nz
            if inside:
                was_inside = True
                cx, cy, cz = vx, vy, vz
            elif was_inside:
                break
            # next voxel; ties go to the later axis (the reference's strict comparisons)
            if tx < ty:
                if tx < tz:
                    d = tx
                    vx += sx
                    tx += ddx
                else:
                    d = tz
                    vz += sz
                    tz += ddz
            else:
                if ty < tz:
                    d = ty
                    vy += sy
                    ty += ddy
                else:
                    d = tz
                    vz += sz
                    tz += ddz
            if inside:
                count += 1
                d_exit = d  # where the ray leaves voxel (cx, cy, cz)
                if occupied[cx, cy, cz]:
                    break
            steps += 1
            if steps > MAX_STEP:
                break
        if count == 0:
            dist[r] = -1.0
        else:
            dist[r] = d_exit
            coord[r, 0], coord[r, 1], coord[r, 2] = cx, cy, cz
    return dist, coord


def cast_rays(volume, origin, dirs, grid=OCC3D_GRID, free_label=OCC3D_FREE):
    """Class and depth of each ray, as SparseOcc's ``process_one_sample`` (see the module docstring).

    ``volume``: labels ``[ix, iy, iz]`` on ``grid`` (ego frame, cubic voxels); ``origin`` (3,) metres;
    ``dirs`` (R, 3) unit vectors (used as float32, as the reference's rays). Returns ``labels`` (R,) int64
    (``free_label`` or the last voxel's free label when nothing is hit) and ``depth`` (R,) float32 metres: the
    distance at which the ray leaves the voxel that gives its class (-voxel size when the ray never enters
    the grid, whose class is then the voxel ``[0, 0, 0]``'s, as the reference).
    """
    volume = np.asarray(volume)
    size = np.float32(grid.size[0])
    if any(np.float32(s) != size for s in grid.size):
        raise ValueError(f"cast_rays: the reference marches cubic voxels, got sizes {grid.size}")
    lower = np.asarray(grid.lower, np.float32).astype(np.float64)
    scale = np.float64(size)
    origin = np.asarray(origin, np.float64).reshape(3)
    dirs32 = np.asarray(dirs).astype(np.float32).reshape(-1, 3)
    origin_vox = ((origin - lower) / scale).astype(np.float32).astype(np.float64)
    ends_vox = (((dirs32.astype(np.float64) + origin) - lower) / scale).astype(np.float32).astype(np.float64)
    dist, coord = _march(volume != free_label, origin_vox, ends_vox)
    labels = volume[coord[:, 0], coord[:, 1], coord[:, 2]].astype(np.int64)
    depth = dist.astype(np.float32) * size  # float32 product, as ``pred_dist *= _voxel_size``
    return labels, depth


class RayIou:
    """Accumulates SparseOcc RayIoU counts over a split (see module docstring)."""

    def __init__(self, dirs=None):
        self.dirs = lidar_ray_directions() if dirs is None else np.asarray(dirs).astype(np.float32).reshape(-1, 3)
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
            n = OCC3D_FREE + 1
            self.gt_cnt += np.bincount(gl, minlength=n)[:NUM_SEMANTIC]
            self.pred_cnt += np.bincount(pl, minlength=n)[:NUM_SEMANTIC]
            err = np.abs(pd - gd)  # float32, as the reference
            for j, thr in enumerate(THRESHOLDS):
                match = (pl == gl) & (err < np.float32(thr))
                self.tp_cnt[j] += np.bincount(gl[match], minlength=n)[:NUM_SEMANTIC]
        self.num_samples += 1

    def merge(self, other):
        self.gt_cnt += other.gt_cnt
        self.pred_cnt += other.pred_cnt
        self.tp_cnt += other.tp_cnt
        self.num_samples += other.num_samples

    def compute(self):
        """``{'RayIoU', 'RayIoU@1', 'RayIoU@2', 'RayIoU@4', 'per_class': {name: [IoU@1, @2, @4]},
        'num_samples', 'protocol'}``.

        ``RayIoU`` (the leaderboard number) is SparseOcc's ``np.nanmean`` over the 3 x 17 class/threshold
        cells; ``RayIoU@k`` the same over one threshold; ``per_class`` NaN where a class has neither GT nor
        prediction rays. ``protocol``: text labels of these choices and the reference followed.
        """
        denom = self.gt_cnt[None] + self.pred_cnt[None] - self.tp_cnt
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(denom > 0, self.tp_cnt / np.maximum(denom, 1), np.nan)  # (3, 17)
        out = {"RayIoU": nanmean_or_nan(iou)}
        for j, thr in enumerate(THRESHOLDS):
            out[f"RayIoU@{int(thr)}"] = nanmean_or_nan(iou[j])
        out["per_class"] = {n: [float(v) for v in iou[:, c]] for c, n in enumerate(OCC3D_CLASSES[:NUM_SEMANTIC])}
        out["num_samples"] = self.num_samples
        out["protocol"] = dict(PROTOCOL)
        return out
