"""Which input topic feeds what: topic names are options (defaults = the converter's and the sensor player's),
matched exactly first, then case-insensitively (Foxglove's newer nuScenes MCAPs use ``/lidar_top``,
``/cam_front/...``). The LiDAR topic is chosen by name, never by schema (real files also hold ``RADAR_*``
point clouds)."""

from dataclasses import dataclass, field

from perception.constants import CAMERA_NAMES

# Accepted types per role: ROS 2 names and Foxglove protobuf schema names.
ROLE_TYPES = {
    "lidar": {"sensor_msgs/msg/PointCloud2", "foxglove.PointCloud"},
    "image": {"sensor_msgs/msg/CompressedImage", "foxglove.CompressedImage"},
    "raw_image": {"sensor_msgs/msg/Image"},
    "camera_info": {"sensor_msgs/msg/CameraInfo", "foxglove.CameraCalibration"},
    "odometry": {"nav_msgs/msg/Odometry"},
    "tf": {"tf2_msgs/msg/TFMessage", "foxglove.FrameTransform", "foxglove.FrameTransforms"},
    "sample": {"std_msgs/msg/String"},
}


class TopicError(ValueError):
    """A configured topic is missing or has a type replay cannot read."""


@dataclass
class TopicOptions:
    lidar_topic: str = "/LIDAR_TOP"
    camera_prefix: str = "/"
    odom_topic: str = "/odom"
    tf_topic: str = "/tf"
    tf_static_topic: str = "/tf_static"
    sample_topic: str = "/nuscenes/sample"


@dataclass
class Roles:
    """``by_topic``: topic -> (role, camera or None); ``notes``: what is missing (warnings, not errors)."""

    by_topic: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def topic_of(self, role, camera=None):
        return next((t for t, (r, c) in self.by_topic.items() if r == role and c == camera), None)


def _find(available, name):
    if name in available:
        return name
    lower = {t.lower(): t for t in available}
    return lower.get(name.lower())


def _check_type(available, topic, role):
    kind = available[topic].msgtype
    if kind not in ROLE_TYPES[role]:
        raise TopicError(f"topic {topic} has type {kind or '(no schema)'}; replay reads {role} from "
                         f"{' or '.join(sorted(ROLE_TYPES[role]))}")


def resolve(available, opts: TopicOptions, cameras=CAMERA_NAMES):
    """:class:`Roles` for the ``available`` topics (``{topic: TopicInfo}``). ``TopicError`` when the LiDAR
    topic is missing or any chosen topic has an unreadable type; a missing camera, odometry or tf is a note."""
    roles = Roles()
    lidar = _find(available, opts.lidar_topic)
    if lidar is None:
        raise TopicError(f"no LiDAR topic {opts.lidar_topic} in the input (topics: {', '.join(sorted(available))}); "
                         f"pick one with --lidar-topic")
    _check_type(available, lidar, "lidar")
    roles.by_topic[lidar] = ("lidar", None)
    for cam in cameras:
        base = opts.camera_prefix.rstrip("/") + "/" + cam
        image = _find(available, base + "/image_rect_compressed")
        role = "image"
        if image is None:
            image, role = _find(available, base + "/image_rect"), "raw_image"
        info = _find(available, base + "/camera_info")
        if image is None or info is None:
            what = "image" if image is None else "camera_info"
            roles.notes.append(f"camera {cam}: no {what} topic under {base}/ in the input: missing in every frame")
            continue
        _check_type(available, image, role)
        _check_type(available, info, "camera_info")
        roles.by_topic[image] = (role, cam)
        roles.by_topic[info] = ("camera_info", cam)
    odom = _find(available, opts.odom_topic)
    if odom is not None and available[odom].msgtype in ROLE_TYPES["odometry"]:
        roles.by_topic[odom] = ("odometry", None)
    for name in (opts.tf_topic, opts.tf_static_topic):
        topic = _find(available, name)
        if topic is not None:
            _check_type(available, topic, "tf")
            roles.by_topic[topic] = ("tf", None)
    if odom is None and _find(available, opts.tf_topic) is None:
        roles.notes.append(f"no {opts.odom_topic} or {opts.tf_topic}: no ego poses, past sweeps are not merged")
    sample = _find(available, opts.sample_topic)
    if sample is not None and available[sample].msgtype in ROLE_TYPES["sample"]:
        roles.by_topic[sample] = ("sample", None)
    return roles


def describe(available, roles=None):
    """Lines of a table: topic, type, encoding, count, and what replay uses it for."""
    rows = [("topic", "type", "encoding", "messages", "used as")]
    for topic in sorted(available):
        info = available[topic]
        use = ""
        if roles is not None and topic in roles.by_topic:
            role, cam = roles.by_topic[topic]
            use = role + (f" {cam}" if cam else "")
        rows.append((topic, info.msgtype, info.encoding, "?" if info.count is None else str(info.count), use))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if roles is not None:
        lines += [f"note: {n}" for n in roles.notes]
    return lines
