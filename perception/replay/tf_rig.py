"""The rig as the input's own tf messages (/tf_static, /tf) describe it, for a replay without ``--calibration``:
static extrinsics collected into a tree, the LiDAR and camera calibration read from it, and the world -> ego
transforms passed on as ego poses.

Frames: ``edges[child] = (parent, T)`` with ``T`` the 4 x 4 child -> parent transform (metres). A transform
from a world frame (``WORLD_FRAMES``) to the ego frame is an ego pose, not an extrinsic.
"""

from types import SimpleNamespace

import numpy as np

from perception.geometry import invert
from perception.replay import foxglove
from perception.ros.calibration import RigCalibration
from perception.ros.transforms import transform_to_matrix

WORLD_FRAMES = ("map", "odom", "world")


def transforms_of(item, message):
    """The TransformStamped-like entries of a tf input message (ROS 2 ``TFMessage`` or Foxglove protobuf)."""
    if item.encoding == "protobuf":
        return foxglove.transform_views(message, item.msgtype)
    return message.transforms


def odometry_view(tf):
    """An Odometry-like view of a world -> ego transform (``odometry_to_matrix`` reads ``pose.pose``)."""
    tr = tf.transform
    pose = SimpleNamespace(position=tr.translation, orientation=tr.rotation)
    return SimpleNamespace(header=tf.header, child_frame_id=tf.child_frame_id, pose=SimpleNamespace(pose=pose))


class TfTree:
    """Static extrinsics seen in the input, towards ``ego_frame``."""

    def __init__(self, ego_frame):
        self.ego_frame = ego_frame
        self.edges = {}  # child frame -> (parent frame, 4x4 child -> parent)

    def add(self, transforms):
        """Record the extrinsics among ``transforms``; returns the ego poses among them (world -> ego) as
        Odometry-like views, in order."""
        poses = []
        for tf in transforms:
            parent, child = str(tf.header.frame_id), str(tf.child_frame_id)
            if parent in WORLD_FRAMES and child == self.ego_frame:
                poses.append(odometry_view(tf))
            else:
                self.edges[child] = (parent, transform_to_matrix(tf))
        return poses

    def ego_from(self, frame):
        """4x4 ``frame`` -> ego through the tree, or None."""
        T, seen = np.eye(4), set()
        while frame != self.ego_frame:
            if frame in seen or frame not in self.edges:
                return None
            seen.add(frame)
            parent, T_frame = self.edges[frame]
            T, frame = T_frame @ T, parent
        return T

    def calibration(self, lidar_frame, cameras, camera_frames):
        """A :class:`perception.ros.calibration.RigCalibration` of the LiDAR and those of ``cameras`` found in
        the tree (a camera's frame: ``camera_frames[camera]`` (its images' frame_id), its name, or its name in
        lower case), or None while the LiDAR -> ego transform is unknown."""
        lidar2ego = self.ego_from(lidar_frame)
        if lidar2ego is None:
            return None
        calib = RigCalibration(lidar2ego=lidar2ego, lidar_frame=lidar_frame, ego_frame=self.ego_frame)
        for cam in cameras:
            candidates = [camera_frames.get(cam), cam, cam.lower()]
            cam2ego = next((T for T in (self.ego_from(f) for f in candidates if f) if T is not None), None)
            if cam2ego is not None:
                calib.lidar2cam[cam] = invert(cam2ego) @ lidar2ego
                calib.camera_frames[cam] = next(f for f in candidates if f and self.ego_from(f) is not None)
        return calib
