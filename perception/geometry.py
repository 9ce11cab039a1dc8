"""Rigid transforms and rotations (numpy, float64).

A transform ``a2b`` is a 4x4 homogeneous matrix that maps a point expressed in frame ``a`` to frame ``b``:
``p_b = a2b @ p_a``. Chains compose right to left: ``lidar2global = ego2global @ lidar2ego``.
Quaternions follow the nuScenes convention ``[w, x, y, z]``.
"""

import numpy as np


def quat_to_rotmat(q):
    """Unit quaternion ``[w, x, y, z]`` -> 3x3 rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_quat(R):
    """3x3 rotation matrix -> unit quaternion ``[w, x, y, z]`` with ``w >= 0``."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = np.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2]) * 2
        q = [(R[2, 1] - R[1, 2]) / s, 0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s]
    elif R[1, 1] > R[2, 2]:
        s = np.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2]) * 2
        q = [(R[0, 2] - R[2, 0]) / s, (R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s]
    else:
        s = np.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1]) * 2
        q = [(R[1, 0] - R[0, 1]) / s, (R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def yaw_to_quat(yaw):
    """Rotation by ``yaw`` radians counter-clockwise about +z -> quaternion ``[w, x, y, z]``."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(q):
    """Yaw (radians, counter-clockwise about +z) of the rotation ``q``: the heading of its x axis."""
    R = quat_to_rotmat(q)
    return float(np.arctan2(R[1, 0], R[0, 0]))


def make_transform(rotation, translation):
    """4x4 transform from a quaternion ``[w, x, y, z]`` (or 3x3 matrix) and a translation (metres)."""
    T = np.eye(4)
    rotation = np.asarray(rotation, dtype=np.float64)
    T[:3, :3] = quat_to_rotmat(rotation) if rotation.shape == (4,) else rotation
    T[:3, 3] = np.asarray(translation, dtype=np.float64)
    return T


def invert(T):
    """Inverse of a rigid 4x4 transform (exact, without a general matrix inverse)."""
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def transform_points(T, xyz):
    """Apply a 4x4 transform to ``(N, 3)`` points; returns ``(N, 3)`` in the target frame, same dtype."""
    xyz = np.asarray(xyz)
    out = xyz @ T[:3, :3].T.astype(xyz.dtype) + T[:3, 3].astype(xyz.dtype)
    return out.astype(xyz.dtype, copy=False)


def wrap_angle(a):
    """Wrap angles to ``[-pi, pi)``."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi
