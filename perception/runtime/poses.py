"""Ego poses over time, for motion compensation of LiDAR sweeps and camera images.

A pose is ``ego2world`` (4x4, float64): the ego frame (``base_link``: x forward, y left, z up) at one stamp
-> a world frame that does not move (``odom`` or ``map``). Stamps are integer nanoseconds. Fed from
``nav_msgs/Odometry`` (ROS 2 node, bags) or the nuScenes ``ego_pose`` table (player, converter).
"""

import bisect

import numpy as np

from perception.geometry import quat_to_rotmat, rotmat_to_quat


def _slerp(q0, q1, w):
    """Spherical interpolation of unit quaternions ``[w, x, y, z]`` at weight ``w`` in [0, 1]."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # the shorter way round
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact enough and avoids dividing by sin(~0)
        q = q0 + w * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1 - w) * theta) * q0 + np.sin(w * theta) * q1) / np.sin(theta)


class PoseBuffer:
    """Poses by stamp; :meth:`at` gives the pose at any stamp between two known ones (linear translation,
    slerp rotation), or exactly a stored one. ``max_age_ns``: poses older than the newest by more than this
    are forgotten (bounded memory). ``max_gap_ns``: no interpolation across a longer gap (None there)."""

    def __init__(self, max_age_s=10.0, max_gap_s=1.0):
        self.max_age_ns = int(max_age_s * 1e9)
        self.max_gap_ns = int(max_gap_s * 1e9)
        self._stamps = []  # sorted nanoseconds
        self._poses = []

    def __len__(self):
        return len(self._stamps)

    def add(self, stamp_ns: int, ego2world):
        """Store a pose; a repeated stamp replaces the earlier pose; out-of-order stamps are inserted in place."""
        pose = np.asarray(ego2world, dtype=np.float64)
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            raise ValueError(f"PoseBuffer.add: pose at {stamp_ns} ns must be a finite 4x4 matrix, got {pose.shape}")
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            self._poses[i] = pose
        else:
            self._stamps.insert(i, int(stamp_ns))
            self._poses.insert(i, pose)
        cut = bisect.bisect_left(self._stamps, self._stamps[-1] - self.max_age_ns)
        del self._stamps[:cut], self._poses[:cut]

    def newest_stamp(self):
        return self._stamps[-1] if self._stamps else None

    def at(self, stamp_ns: int):
        """``ego2world`` at ``stamp_ns``, or None when it is outside the stored span (no extrapolation)."""
        i = bisect.bisect_left(self._stamps, stamp_ns)
        if i < len(self._stamps) and self._stamps[i] == stamp_ns:
            return self._poses[i]
        if i == 0 or i == len(self._stamps):
            return None
        t0, t1 = self._stamps[i - 1], self._stamps[i]
        if t1 - t0 > self.max_gap_ns:
            return None
        w = (stamp_ns - t0) / (t1 - t0)
        p0, p1 = self._poses[i - 1], self._poses[i]
        out = np.eye(4)
        out[:3, :3] = quat_to_rotmat(_slerp(rotmat_to_quat(p0[:3, :3]), rotmat_to_quat(p1[:3, :3]), w))
        out[:3, 3] = (1 - w) * p0[:3, 3] + w * p1[:3, 3]
        return out
