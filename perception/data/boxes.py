"""Box conventions: one function, :func:`convert_boxes`, converts between every convention we meet.

The project convention (``'lidar'``, used everywhere inside the stack, see ``perception/data/sample.py``):
``(M, 7)`` or ``(M, 9)`` rows ``x, y, z, l, w, h, yaw[, vx, vy]`` in the keyframe LiDAR frame; ``x, y, z`` the
gravity centre (m); ``l, w, h`` along the box's own x (heading), y, z axes (m); ``yaw`` radians CCW about +z
from LiDAR x; ``vx, vy`` m/s in the LiDAR frame. This is also mmdet3d >= 1.0 (``'mmdet3d'``).

Other conventions (rows, frame, units):

- ``'mmdet3d'``: identical to ``'lidar'`` (mmdet3d >= 1.0 ``LiDARInstance3DBoxes``, info files v1.1/v2).
- ``'mmdet3d_legacy'``: mmdet3d < 1.0 info files (``gt_boxes`` of the legacy pickles, and the v2 test
  fixture ``nus_info.pkl`` that kept them): ``x, y, z, w, l, h, yaw_legacy[, vx, vy]``, LiDAR frame, ``z`` the
  GRAVITY centre as stored in the info file (the 0.x dataset shifted it to the bottom only when building
  ``LiDARInstance3DBoxes``: checked on the legacy pickle, car bottoms ``z - h/2`` sit on the ground at
  about -1.84 m), dims ``w, l, h``, ``yaw_legacy = -yaw - pi/2``.
- ``'surroundocc'``: SurroundOcc's own-data ``bbox*.npy``: ``x, y, z_bottom, dx, dy, dz, yaw``, LiDAR frame;
  ``dx`` (the width for vehicles) along the axis at ``yaw``, ``dy`` (the length) along ``yaw + pi/2``.
  Checked against the per-point semantics (see its README and ``tests/test_data_boxes.py``).
- ``'nuscenes_global'``: nuScenes annotations: ``x, y, z, w, l, h, qw, qx, qy, qz[, vx, vy, vz]``, GLOBAL
  frame, geometric centre, size ``w, l, h``, rotation quaternion ``[w, x, y, z]``, velocity m/s global.
  Needs ``lidar2global`` (4x4, keyframe LiDAR -> global).
- ``'camera'``: mmdet3d's mono3d annotations (``bbox_cam3d`` of ``nus_infos_mono3d.coco.json``):
  ``x, y, z, w, l, h, yaw[, vx, vz]`` in the CAMERA frame (x right, y down, z forward); ``x, y, z`` the
  gravity centre (it projects exactly onto the json's ``center2d``); the length axis points along
  ``(cos yaw, 0, sin yaw)`` in the camera frame (chosen on the real json: the projected corners match
  its 2D boxes, IoU > 0.9, the opposite sign scores clearly lower); ``vx, vz`` m/s in the camera x-z
  plane. Needs ``lidar2cam`` (4x4, keyframe LiDAR -> camera).

Boxes are assumed upright (rotation about the vertical only); for ``'nuscenes_global'`` the residual
pitch/roll of the LiDAR mount is dropped by taking the yaw of the rotated heading.
"""

import numpy as np

from perception.geometry import invert, quat_to_rotmat, rotmat_to_quat, wrap_angle, yaw_to_quat

BOX_CONVENTIONS = ("lidar", "mmdet3d", "mmdet3d_legacy", "surroundocc", "nuscenes_global", "camera")


def _check_convention(name):
    if name not in BOX_CONVENTIONS:
        raise ValueError(f"unknown box convention {name!r}; allowed: {', '.join(BOX_CONVENTIONS)}")


def _check_rows(boxes, widths, convention):
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim == 1 and boxes.size == 0:
        boxes = boxes.reshape(0, widths[0])
    if boxes.ndim != 2 or boxes.shape[1] not in widths:
        raise ValueError(
            f"boxes in convention {convention!r} must have shape (M, k) with k in {widths}, got {boxes.shape}"
        )
    return boxes


def _need(matrix, name, convention):
    if matrix is None:
        raise ValueError(f"convert_boxes: convention {convention!r} needs the parameter {name!r} (4x4)")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise ValueError(f"convert_boxes: {name!r} must be 4x4, got {matrix.shape}")
    return matrix


def _heading_yaw(vectors):
    """Yaw (CCW about +z) of heading vectors ``(M, 3)`` expressed in the LiDAR frame."""
    return np.arctan2(vectors[:, 1], vectors[:, 0])


def _to_lidar(b, src, lidar2global, lidar2cam):
    """Rows of ``src`` -> ``(M, 9)`` float64 project rows (velocity NaN where ``src`` has none)."""
    out = np.full((len(b), 9), np.nan)
    if src in ("lidar", "mmdet3d"):
        b = _check_rows(b, (7, 9), src)
        out[:, : b.shape[1]] = b
    elif src == "mmdet3d_legacy":
        b = _check_rows(b, (7, 9), src)
        out[:, :3] = b[:, :3]
        out[:, 3], out[:, 4], out[:, 5] = b[:, 4], b[:, 3], b[:, 5]
        out[:, 6] = -b[:, 6] - np.pi / 2
        out[:, 7:] = b[:, 7:9] if b.shape[1] == 9 else np.nan
    elif src == "surroundocc":
        b = _check_rows(b, (7,), src)
        out[:, :2] = b[:, :2]
        out[:, 2] = b[:, 2] + b[:, 5] / 2  # bottom -> gravity centre
        out[:, 3], out[:, 4], out[:, 5] = b[:, 4], b[:, 3], b[:, 5]  # length is dy
        out[:, 6] = b[:, 6] + np.pi / 2  # the length axis lies along yaw + pi/2
    elif src == "nuscenes_global":
        b = _check_rows(b, (10, 13), src)
        global2lidar = invert(_need(lidar2global, "lidar2global", src))
        out[:, :3] = b[:, :3] @ global2lidar[:3, :3].T + global2lidar[:3, 3]
        out[:, 3], out[:, 4], out[:, 5] = b[:, 4], b[:, 3], b[:, 5]
        heading_global = np.array([quat_to_rotmat(q)[:, 0] for q in b[:, 6:10]]).reshape(-1, 3)  # M may be 0
        out[:, 6] = _heading_yaw(heading_global @ global2lidar[:3, :3].T)
        if b.shape[1] == 13:
            out[:, 7:9] = (b[:, 10:13] @ global2lidar[:3, :3].T)[:, :2]
    else:  # camera
        b = _check_rows(b, (7, 9), src)
        cam2lidar = invert(_need(lidar2cam, "lidar2cam", src))
        out[:, :3] = b[:, :3] @ cam2lidar[:3, :3].T + cam2lidar[:3, 3]
        out[:, 3], out[:, 4], out[:, 5] = b[:, 4], b[:, 3], b[:, 5]
        yaw = b[:, 6]
        heading_cam = np.stack([np.cos(yaw), np.zeros_like(yaw), np.sin(yaw)], axis=1)
        out[:, 6] = _heading_yaw(heading_cam @ cam2lidar[:3, :3].T)
        if b.shape[1] == 9:
            vel_cam = np.stack([b[:, 7], np.zeros(len(b)), b[:, 8]], axis=1)
            out[:, 7:9] = (vel_cam @ cam2lidar[:3, :3].T)[:, :2]
    out[:, 6] = wrap_angle(out[:, 6])
    return out


def _from_lidar(b, dst, lidar2global, lidar2cam):
    """``(M, 9)`` project rows -> rows of ``dst``."""
    if dst in ("lidar", "mmdet3d"):
        return b.copy()
    if dst == "mmdet3d_legacy":
        out = b[:, [0, 1, 2, 4, 3, 5, 6, 7, 8]].copy()
        out[:, 6] = wrap_angle(-b[:, 6] - np.pi / 2)
        return out
    if dst == "surroundocc":
        out = b[:, [0, 1, 2, 4, 3, 5, 6]].copy()
        out[:, 2] = b[:, 2] - b[:, 5] / 2
        out[:, 6] = wrap_angle(b[:, 6] - np.pi / 2)
        return out
    if dst == "nuscenes_global":
        lidar2global = _need(lidar2global, "lidar2global", dst)
        out = np.zeros((len(b), 13))
        out[:, :3] = b[:, :3] @ lidar2global[:3, :3].T + lidar2global[:3, 3]
        out[:, 3], out[:, 4], out[:, 5] = b[:, 4], b[:, 3], b[:, 5]
        for i, yaw in enumerate(b[:, 6]):
            out[i, 6:10] = rotmat_to_quat(lidar2global[:3, :3] @ quat_to_rotmat(yaw_to_quat(yaw)))
        vel = np.stack([b[:, 7], b[:, 8], np.zeros(len(b))], axis=1)
        out[:, 10:13] = vel @ lidar2global[:3, :3].T
        return out
    # camera
    lidar2cam = _need(lidar2cam, "lidar2cam", dst)
    out = np.zeros((len(b), 9))
    out[:, :3] = b[:, :3] @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
    out[:, 3], out[:, 4], out[:, 5] = b[:, 4], b[:, 3], b[:, 5]
    heading = np.stack([np.cos(b[:, 6]), np.sin(b[:, 6]), np.zeros(len(b))], axis=1) @ lidar2cam[:3, :3].T
    out[:, 6] = np.arctan2(heading[:, 2], heading[:, 0])
    vel = np.stack([b[:, 7], b[:, 8], np.zeros(len(b))], axis=1) @ lidar2cam[:3, :3].T
    out[:, 7], out[:, 8] = vel[:, 0], vel[:, 2]
    return out


def convert_boxes(boxes, src, dst="lidar", lidar2global=None, lidar2cam=None):
    """Convert boxes between conventions (see the module docstring for each one's rows, frame and units).

    Args:
        boxes: ``(M, k)`` array in convention ``src``.
        src, dst: names from :data:`BOX_CONVENTIONS`; unknown names raise ``ValueError``.
        lidar2global: 4x4 keyframe LiDAR -> global, needed when either side is ``'nuscenes_global'``.
        lidar2cam: 4x4 keyframe LiDAR -> camera, needed when either side is ``'camera'``.

    Returns:
        float64 array in ``dst``: ``(M, 9)`` for ``lidar``/``mmdet3d``/``mmdet3d_legacy``/``camera``,
        ``(M, 7)`` for ``surroundocc``, ``(M, 13)`` for ``nuscenes_global``. Yaw is wrapped to
        ``[-pi, pi)``; velocities a source lacks are NaN.
    """
    _check_convention(src)
    _check_convention(dst)
    rows = _to_lidar(np.asarray(boxes, dtype=np.float64), src, lidar2global, lidar2cam)
    return _from_lidar(rows, dst, lidar2global, lidar2cam)


def box_corners(boxes):
    """``(M, 8, 3)`` corners of project-convention boxes (LiDAR frame, m).

    Corner ``k`` has offsets ``(+-l/2, +-w/2, +-h/2)`` with bits ``(k >> 2, k >> 1, k) & 1`` selecting ``+``.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    signs = np.array([[(k >> 2) & 1, (k >> 1) & 1, k & 1] for k in range(8)], dtype=np.float64) - 0.5
    local = signs[None] * boxes[:, None, 3:6]  # (M, 8, 3)
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
    y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]


def points_in_boxes(xyz, boxes):
    """Boolean ``(N, M)``: point ``n`` lies inside project-convention box ``m`` (same frame, metres)."""
    xyz = np.asarray(xyz, dtype=np.float64)[:, :3]
    boxes = np.asarray(boxes, dtype=np.float64)
    d = xyz[:, None, :] - boxes[None, :, :3]  # (N, M, 3)
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    local_x = d[..., 0] * c + d[..., 1] * s  # rotate by -yaw into the box frame
    local_y = -d[..., 0] * s + d[..., 1] * c
    return (
        (np.abs(local_x) <= boxes[:, 3] / 2)
        & (np.abs(local_y) <= boxes[:, 4] / 2)
        & (np.abs(d[..., 2]) <= boxes[:, 5] / 2)
    )
