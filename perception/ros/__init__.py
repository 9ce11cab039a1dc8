"""ROS 2 message layer: pure functions between ROS 2 messages and numpy arrays.

Used by the rclpy perception node and by offline log replay (bags read with ``rosbags`` or
``mcap-ros2-support``), so the two directions are kept apart:

- *Readers* (message -> numpy: ``pointcloud2_to_points``, ``image_to_rgb``, ``compressed_to_rgb``,
  ``camera_info_to_intrinsics``, ``odometry_to_matrix``, ``transform_to_matrix``, ``stamp_to_ns``) are
  duck-typed: they read message attributes only and import no ROS package, so rclpy messages, rosbags
  dataclasses and mcap-ros2 dynamic messages all work. Byte payloads (``data``) may be ``bytes``,
  ``bytearray``, ``array.array('B')`` (rclpy), a numpy ``uint8`` array (rosbags) or a list of ints.
  Malformed messages raise :class:`perception.ros.errors.MessageError` (a ``ValueError``) whose ``kind``
  is a short stable string, so a node can log once per kind.
- *Builders* (numpy -> message) return rclpy message instances; rclpy and the message packages (the optional
  ``ros`` extra) are imported inside the builder functions (``vision_msgs`` builders return ``None`` when
  that package is not installed).

Modules: ``errors``, ``stamps``, ``pointcloud``, ``image``, ``transforms``, ``calibration``, ``outputs``.
Importing this package imports nothing heavy; import the submodule you need.
"""
