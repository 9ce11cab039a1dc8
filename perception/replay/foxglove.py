"""Foxglove protobuf messages (``foxglove.*``) seen through the ROS 2 message layer's duck-typed readers.

Foxglove's nuScenes MCAPs (foxglove/nuscenes2mcap, ``shared/docs/reference.md`` "Logs") hold
``foxglove.PointCloud`` (packed fields, ``point_stride``), ``foxglove.CompressedImage``,
``foxglove.CameraCalibration`` (K, P, R, width, height) and ``foxglove.FrameTransform(s)``. The views below
present them with the attribute names the readers of :mod:`perception.ros` use (``header.stamp``, ``fields``,
``point_step``, ``k`` ...), so a Foxglove cloud goes through ``pointcloud2_to_points`` exactly like a
``PointCloud2``: no second conversion path. Stamps are integer nanoseconds (``stamp_to_ns`` takes ints).
"""

from types import SimpleNamespace

import numpy as np

from perception.ros._buffers import to_byte_array
from perception.ros.errors import MessageError
from perception.ros.stamps import make_header

# foxglove.PackedElementField.NumericType -> sensor_msgs/PointField datatype (0 = unknown, refused if used).
NUMERIC_TO_POINTFIELD = {1: 2, 2: 1, 3: 4, 4: 3, 5: 6, 6: 5, 7: 7, 8: 8}  # UINT8..FLOAT64

POINTCLOUD = "foxglove.PointCloud"
COMPRESSED_IMAGE = "foxglove.CompressedImage"
CAMERA_CALIBRATION = "foxglove.CameraCalibration"
FRAME_TRANSFORM = "foxglove.FrameTransform"
FRAME_TRANSFORMS = "foxglove.FrameTransforms"


def timestamp_ns(ts):
    """A ``google.protobuf.Timestamp`` (``seconds``, ``nanos``) -> int ns."""
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def _header(msg):
    return SimpleNamespace(stamp=timestamp_ns(msg.timestamp), frame_id=str(msg.frame_id))


def _pose_is_identity(pose):
    p, q = pose.position, pose.orientation
    if (p.x, p.y, p.z) != (0.0, 0.0, 0.0):
        return False
    quat = (q.x, q.y, q.z, q.w)
    return quat in ((0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.0))  # unset orientation = identity


def pointcloud_view(msg):
    """A ``foxglove.PointCloud`` as a ``PointCloud2``-like object (height 1, little-endian, packed rows).

    ``MessageError``: kind ``pointcloud_layout`` for a non-positive ``point_stride``, data that is not a whole
    number of points, or a ``pose`` other than identity (points relative to a moved origin are not supported);
    a field of unknown numeric type is refused by the reader only when it is x, y, z or intensity."""
    stride = int(msg.point_stride)
    data = bytes(msg.data)
    if stride <= 0:
        raise MessageError(f"foxglove.PointCloud: point_stride {stride} must be > 0", "pointcloud_layout")
    if len(data) % stride:
        raise MessageError(f"foxglove.PointCloud: {len(data)} data bytes is not a multiple of point_stride {stride}",
                           "pointcloud_layout")
    if msg.HasField("pose") and not _pose_is_identity(msg.pose):
        raise MessageError("foxglove.PointCloud: a pose other than identity is not supported", "pointcloud_layout")
    fields = [SimpleNamespace(name=f.name, offset=int(f.offset), datatype=NUMERIC_TO_POINTFIELD.get(int(f.type), 0),
                              count=1) for f in msg.fields]
    n = len(data) // stride
    return SimpleNamespace(header=_header(msg), height=1, width=n, fields=fields, is_bigendian=False,
                           point_step=stride, row_step=stride * n, data=data, is_dense=False)


def compressed_image_view(msg):
    """A ``foxglove.CompressedImage`` as a ``CompressedImage``-like object."""
    return SimpleNamespace(header=_header(msg), format=str(msg.format), data=bytes(msg.data))


def camera_info_view(msg):
    """A ``foxglove.CameraCalibration`` as a ``CameraInfo``-like object (``k``, ``width``, ``height``)."""
    return SimpleNamespace(header=_header(msg), k=list(msg.K), width=int(msg.width), height=int(msg.height),
                           d=list(msg.D), r=list(msg.R), p=list(msg.P), distortion_model=str(msg.distortion_model))


def _transform_view(tf):
    t, r = tf.translation, tf.rotation
    w = r.w if (r.x, r.y, r.z, r.w) != (0.0, 0.0, 0.0, 0.0) else 1.0  # unset rotation = identity
    return SimpleNamespace(
        header=SimpleNamespace(stamp=timestamp_ns(tf.timestamp), frame_id=str(tf.parent_frame_id)),
        child_frame_id=str(tf.child_frame_id),
        transform=SimpleNamespace(translation=SimpleNamespace(x=t.x, y=t.y, z=t.z),
                                  rotation=SimpleNamespace(x=r.x, y=r.y, z=r.z, w=w)))


def transform_views(msg, schema_name):
    """``foxglove.FrameTransform`` or ``FrameTransforms`` -> a list of ``TransformStamped``-like objects."""
    if schema_name == FRAME_TRANSFORMS:
        return [_transform_view(t) for t in msg.transforms]
    return [_transform_view(msg)]


def role_view(message, role, msgtype=None):
    """A Foxglove protobuf ``message`` (schema ``msgtype``, for the error) read as ``role`` ('lidar', 'image',
    'camera_info'): its view above; ``MessageError`` (kind ``unknown_type``) for any other role."""
    views = {"lidar": pointcloud_view, "image": compressed_image_view, "camera_info": camera_info_view}
    if role not in views:
        raise MessageError(f"{msgtype or type(message).__name__}: not readable as {role}", "unknown_type")
    return views[role](message)


def to_ros(view, kind):
    """An rclpy message equal to a view (for ``--copy-inputs`` of a Foxglove input into a ROS 2 bag)."""
    header = make_header(view.header.stamp, view.header.frame_id)
    if kind == "lidar":
        from sensor_msgs.msg import PointCloud2, PointField  # the ros extra (optional)

        msg = PointCloud2(header=header, height=1, width=view.width, is_bigendian=False,
                          point_step=view.point_step, row_step=view.row_step, is_dense=False)
        msg.fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=1)
                      for f in view.fields if f.datatype]
        msg.data = to_byte_array(view.data)
        return msg
    if kind == "image":
        from sensor_msgs.msg import CompressedImage  # the ros extra (optional)

        msg = CompressedImage(header=header, format=view.format)
        msg.data = to_byte_array(view.data)
        return msg
    if kind == "camera_info":
        from sensor_msgs.msg import CameraInfo  # the ros extra (optional)

        msg = CameraInfo(header=header, width=view.width, height=view.height,
                         distortion_model=view.distortion_model or "plumb_bob")
        msg.k = np.asarray(view.k, np.float64).reshape(9) if len(view.k) == 9 else msg.k
        msg.r = np.asarray(view.r, np.float64).reshape(9) if len(view.r) == 9 else msg.r
        msg.p = np.asarray(view.p, np.float64).reshape(12) if len(view.p) == 12 else msg.p
        msg.d = [float(v) for v in view.d]
        return msg
    raise ValueError(f"no ROS 2 equivalent for {kind}")
