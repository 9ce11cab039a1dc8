"""Occ3D-format occupancy labels of a synthetic keyframe.

Grid: ``perception.constants.OCC3D_GRID`` (200 x 200 x 16 voxels of 0.4 m over x, y in [-40, 40] m and
z in [-1, 5.4] m) in the EGO frame at the LiDAR keyframe timestamp, indexed ``[ix, iy, iz]``. Labels follow
``OCC3D_CLASSES`` (17 = free). ``mask_lidar`` marks voxels the keyframe LiDAR rays pass through or end in;
``mask_camera`` voxels seen by the six cameras: along each camera ray up to and including the first
occupied voxel (inside the camera frustum by construction).
"""

import io
import zipfile

import numpy as np

from perception.constants import OCC3D_FREE, OCC3D_GRID
from perception.geometry import invert, transform_points
from perception.synth.camera import pixel_rays
from perception.synth.raycast import fill_boxes, pack_boxes, traverse

CAMERA_RAY_STEP = 4  # cast one mask_camera ray per 4 x 4 pixels


def semantics(scene, boxes_global, box_labels, ego2global):
    """``(200, 200, 16)`` uint8 Occ3D semantics around the ego.

    Args:
        boxes_global: ``(M, 7)`` boxes (centre x, y, z, l, w, h, yaw) in the global frame at the keyframe.
        box_labels: ``(M,)`` Occ3D class per box.
        ego2global: 4x4 ego pose at the keyframe.
    """
    lower = np.asarray(OCC3D_GRID.lower)
    size = np.asarray(OCC3D_GRID.size)
    sem = np.full(OCC3D_GRID.shape, OCC3D_FREE, dtype=np.uint8)
    # Ground: fills the voxel layers whose centres are at or below it (v1: the plane z = 0; v2: the terrain).
    xs, ys = np.meshgrid(OCC3D_GRID.centers(0), OCC3D_GRID.centers(1), indexing="ij")
    xy_ego = np.stack([xs, ys, np.zeros_like(xs)], axis=-1).reshape(-1, 3)
    xy_global = transform_points(ego2global, xy_ego)[:, :2]
    ground = scene.ground_class(xy_global).reshape(xs.shape)
    if hasattr(scene, "ground_height"):  # world v2: the layers at or below the terrain (ego z, level ego pose)
        h = scene.ground_height(xy_global).reshape(xs.shape) - ego2global[2, 3]
        below = np.asarray(OCC3D_GRID.centers(2))[None, None, :] <= h[:, :, None] + 1e-6
        sem[below] = np.broadcast_to(ground[:, :, None], sem.shape)[below]
    else:
        n_ground = int(np.sum(np.asarray(OCC3D_GRID.centers(2)) <= 1e-6))
        sem[:, :, :n_ground] = ground[:, :, None]
    # Boxes: expressed in the ego frame (yaw-only rotations compose with the ego's yaw).
    boxes_ego = np.asarray(boxes_global, dtype=np.float64).copy()
    global2ego = invert(ego2global)
    boxes_ego[:, :3] = transform_points(global2ego, boxes_ego[:, :3])
    boxes_ego[:, 6] -= np.arctan2(ego2global[1, 0], ego2global[0, 0])
    fill_boxes(sem, pack_boxes(boxes_ego), np.asarray(box_labels, dtype=np.uint8), lower, size)
    return sem


def lidar_mask(sem, lidar2ego, dirs_lidar, ranges):
    """``mask_lidar``: voxels traversed by (or holding the end of) LiDAR rays ``dirs_lidar`` (N, 3, LiDAR
    frame, unit) of length ``ranges`` (N,) metres from the LiDAR origin."""
    mask = np.zeros(sem.shape, dtype=np.uint8)
    dirs = np.ascontiguousarray(dirs_lidar @ lidar2ego[:3, :3].T)
    traverse(mask, sem, OCC3D_FREE, lidar2ego[:3, 3].copy(), dirs, np.ascontiguousarray(ranges, dtype=np.float64),
             np.asarray(OCC3D_GRID.lower), np.asarray(OCC3D_GRID.size), False)
    return mask


def camera_mask(sem, cams):
    """``mask_camera``: voxels seen by the cameras ``cams`` = list of ``(cam2ego 4x4, K 3x3, width, height)``."""
    mask = np.zeros(sem.shape, dtype=np.uint8)
    for c2e, K, width, height in cams:
        dirs = pixel_rays(K, width, height, CAMERA_RAY_STEP).reshape(-1, 3) @ c2e[:3, :3].T
        far = np.full(len(dirs), 200.0)
        traverse(mask, sem, OCC3D_FREE, c2e[:3, 3].copy(), np.ascontiguousarray(dirs), far,
                 np.asarray(OCC3D_GRID.lower), np.asarray(OCC3D_GRID.size), True)
    return mask


def save_labels(path, semantics, mask_lidar, mask_camera):
    """Write an Occ3D ``labels.npz`` byte-for-byte deterministically (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in (("semantics", semantics), ("mask_lidar", mask_lidar), ("mask_camera", mask_camera)):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr, dtype=np.uint8), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
