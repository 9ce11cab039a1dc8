"""``--copy-inputs``: the input messages written into the output bag beside the outputs, as ROS 2 messages:
CDR payloads byte for byte, messages already built (dataroot input) as they are, Foxglove protobuf messages
converted to their ROS 2 equivalents (point cloud, compressed image, camera info, tf). Stamps: the input's log
time (ns).
"""

from perception.replay import foxglove
from perception.replay.bagio import tf_message
from perception.ros.transforms import transform_to_matrix


def copy_input(writer, item, role):
    """Write the input message ``item`` (:class:`perception.replay.input_message.InputMessage`; ``role``: what
    replay uses its topic for, None when unused) to ``writer`` (:class:`perception.replay.bagio.BagWriter`).
    Returns False when it has no ROS 2 equivalent here (not copied); raises when it cannot be converted."""
    if item.encoding == "cdr":
        writer.write_raw(item.topic, item.msgtype, item.raw, item.log_time_ns, item.msgdef)
    elif item.encoding == "rclpy":
        writer.write(item.topic, item.message(), item.log_time_ns)
    elif role in ("lidar", "image", "camera_info"):
        view = foxglove.role_view(item.message(), role, item.msgtype)
        writer.write(item.topic, foxglove.to_ros(view, role), item.log_time_ns)
    elif role == "tf":
        views = foxglove.transform_views(item.message(), item.msgtype)
        msg = tf_message([(transform_to_matrix(v), v.header.stamp, v.header.frame_id, v.child_frame_id)
                          for v in views])
        writer.write(item.topic, msg, item.log_time_ns)
    else:
        return False
    return True
