"""Poses, transforms and odometry <-> 4x4 homogeneous matrices (float64).

Quaternions are (x, y, z, w), the ROS order (nuScenes files store w, x, y, z: reorder before calling).
A 4x4 ``T_a_from_b`` maps points in frame b to frame a: ``p_a = T @ p_b``. Readers are duck-typed.
"""

import numpy as np

from perception.geometry import quat_to_rotmat, rotmat_to_quat
from perception.ros.errors import MessageError
from perception.ros.stamps import make_header, stamp_to_ns


def quaternion_to_rotation(q):
    """(x, y, z, w) -> 3x3 rotation. ``ValueError`` for a non-finite or zero quaternion; normalised."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (4,) or not np.isfinite(q).all():
        raise ValueError(f"quaternion must be 4 finite numbers (x, y, z, w), got {q.tolist()}")
    if np.linalg.norm(q) < 1e-12:
        raise ValueError(f"quaternion {q.tolist()} has zero norm")
    return quat_to_rotmat(q[[3, 0, 1, 2]])  # the project's rotation code takes (w, x, y, z)


def rotation_to_quaternion(R):
    """3x3 rotation -> unit quaternion (x, y, z, w) with w >= 0."""
    return rotmat_to_quat(R)[[1, 2, 3, 0]]


def yaw_to_quaternion(yaw):
    """Rotation by ``yaw`` (rad, counter-clockwise about +z) -> (x, y, z, w)."""
    return np.array([0.0, 0.0, np.sin(yaw / 2.0), np.cos(yaw / 2.0)])


def matrix_from_pose(translation, quaternion):
    """Translation (x, y, z) and quaternion (x, y, z, w) -> 4x4 float64 (quaternion normalised;
    ``ValueError`` for a zero / non-finite quaternion or a non-finite translation)."""
    t = np.asarray(translation, dtype=np.float64).reshape(-1)
    if t.shape != (3,) or not np.isfinite(t).all():
        raise ValueError(f"translation must be 3 finite numbers, got {t.tolist()}")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_rotation(quaternion)
    T[:3, 3] = t
    return T


def pose_from_matrix(T):
    """4x4 rigid transform -> ``(t (3,), q (4,) x, y, z, w)``. ``ValueError`` when ``T`` is not a finite
    4x4 with an orthonormal, right-handed rotation and last row [0, 0, 0, 1]."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise ValueError(f"transform must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-9):
        raise ValueError(f"transform last row is {T[3].tolist()}, expected [0, 0, 0, 1]")
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-5) or np.linalg.det(R) < 0:
        raise ValueError("transform rotation block is not a proper rotation (orthonormal, det +1)")
    return T[:3, 3].copy(), rotation_to_quaternion(R)


def _xyz(v):
    return [float(v.x), float(v.y), float(v.z)]


def _xyzw(q):
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


def pose_to_matrix(pose):
    """A ``geometry_msgs/Pose``-like object (``.position``, ``.orientation``) -> 4x4. ``MessageError``
    (kind ``pose``) for a zero / non-finite quaternion or a non-finite position."""
    try:
        return matrix_from_pose(_xyz(pose.position), _xyzw(pose.orientation))
    except ValueError as e:
        raise MessageError(f"Pose: {e}", "pose") from e


def transform_to_matrix(transform):
    """A ``geometry_msgs/Transform`` (``.translation``, ``.rotation``) or a ``TransformStamped`` (its
    ``.transform`` is used) -> 4x4 mapping child-frame points into the parent (header) frame."""
    if hasattr(transform, "transform"):
        transform = transform.transform
    try:
        return matrix_from_pose(_xyz(transform.translation), _xyzw(transform.rotation))
    except ValueError as e:
        raise MessageError(f"Transform: {e}", "transform") from e


def odometry_to_matrix(msg):
    """A ``nav_msgs/Odometry`` -> ``(stamp_ns, T)``: ``T`` (4x4) = ``pose.pose``, the pose of the child frame
    (the ego, ``child_frame_id``) in ``header.frame_id`` (odom / world), i.e. ego -> odom."""
    return stamp_to_ns(msg.header.stamp), pose_to_matrix(msg.pose.pose)


def matrix_to_odometry(T, stamp_ns, frame_id, child_frame_id):
    """4x4 ego -> ``frame_id`` pose -> ``nav_msgs.msg.Odometry`` (zero twist, zero covariances)."""
    from nav_msgs.msg import Odometry  # the ros extra (optional)

    t, q = pose_from_matrix(T)
    msg = Odometry(header=make_header(stamp_ns, frame_id), child_frame_id=str(child_frame_id))
    p = msg.pose.pose
    p.position.x, p.position.y, p.position.z = (float(v) for v in t)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in q)
    return msg


def matrix_to_transform_stamped(T, stamp_ns, frame_id, child_frame_id):
    """4x4 child -> parent -> ``geometry_msgs.msg.TransformStamped`` (for /tf or /tf_static publishers)."""
    from geometry_msgs.msg import TransformStamped  # the ros extra (optional)

    t, q = pose_from_matrix(T)
    msg = TransformStamped(header=make_header(stamp_ns, frame_id), child_frame_id=str(child_frame_id))
    tr = msg.transform
    tr.translation.x, tr.translation.y, tr.translation.z = (float(v) for v in t)
    tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w = (float(v) for v in q)
    return msg
