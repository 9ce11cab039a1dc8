"""Camera projection and box wireframes for the visualizations (numpy; LiDAR frame, metres; pixels).

Box corners come from :func:`perception.data.boxes.box_corners` (the one corner function of the project):
corner ``k`` has offsets ``(+-l/2, +-w/2, +-h/2)`` with bits ``(k >> 2, k >> 1, k) & 1`` selecting ``+``.
"""

import numpy as np

# The 12 edges of a box: corner pairs that differ in exactly one of the three sign bits.
BOX_EDGES = tuple((i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1)
# Corners on the front face (+l/2 along the heading): bit 2 set.
FRONT_CORNERS = (4, 5, 6, 7)


def project_points(lidar2img, xyz):
    """Project ``(N, 3)`` LiDAR-frame points with a 4x4 ``lidar2img``.

    Returns ``uv (N, 2)`` pixels (continuous, ``u`` right, ``v`` down) and ``depth (N,)`` metres along the
    camera z axis. ``uv`` is meaningless where ``depth <= 0``: filter with ``depth``.
    """
    T = np.asarray(lidar2img, dtype=np.float64)
    h = np.asarray(xyz, dtype=np.float64).reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]
    depth = h[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = h[:, :2] / depth[:, None]
    return uv, depth


def clip_segments_to_camera(a, b, lidar2cam, near=0.1):
    """Clip 3D segments ``a -> b`` (``(S, 3)`` each, LiDAR frame) to the half-space ``z_cam >= near`` metres.

    Returns ``(a_cam, b_cam, keep)``: endpoints in the CAMERA frame (moved onto the near plane where a segment
    crosses it) and a bool ``(S,)`` mask of segments with any part in front of the camera.
    """
    T = np.asarray(lidar2cam, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]
    b = np.asarray(b, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]
    keep = (a[:, 2] >= near) | (b[:, 2] >= near)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (near - a[:, 2]) / (b[:, 2] - a[:, 2])  # where the segment meets z = near
    cross = a + t[:, None] * (b - a)
    a = np.where((a[:, 2] < near)[:, None] & keep[:, None], cross, a)
    b = np.where((b[:, 2] < near)[:, None] & keep[:, None], cross, b)
    return a, b, keep
