"""nuScenes scene -> ROS 2 bag (``perception convert nuscenes``), and the scene's messages for replay.

:func:`scene_messages` lists the messages of one scene in time order, built with the message layer the
``sensor_player`` publishes with (``perception.ros``: same topics, types, frames and stamps):

- ``/tf_static`` (first stamp): ``base_link`` -> ``LIDAR_TOP`` and ``base_link`` -> each camera
  (``tf2_msgs/msg/TFMessage``; the nuScenes ``calibrated_sensor`` of the scene's first record per channel);
- per sensor record, in ``(timestamp, channel)`` order: ``/odom`` (``nav_msgs/Odometry`` ``map`` ->
  ``base_link``, the record's own ego pose) and the same pose on ``/tf``, then either ``/LIDAR_TOP``
  (``PointCloud2`` x, y, z, intensity: every keyframe AND sweep) or ``/CAM_*/camera_info`` +
  ``/CAM_*/image_rect_compressed`` (the JPEG file bytes unchanged);
- per keyframe (at its LiDAR stamp): ``/markers/annotations`` (``MarkerArray`` of the GT boxes in the
  LiDAR frame, as the node draws predictions) and ``/nuscenes/sample`` (``std_msgs/String``, JSON with the
  sample token, scene, version and dataroot: what lets replay score a converted bag).

Every message is written with the stamp of its header as log time.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image
from tqdm import tqdm

from perception.data.io import load_points
from perception.data.nuscenes_index import _instances
from perception.data.scene_stream import SceneStream, load_nuscenes
from perception.geometry import make_transform
from perception.replay.bagio import BagWriter, tf_message
from perception.ros.image import intrinsics_to_camera_info, jpeg_bytes_to_compressed
from perception.ros.outputs import boxes_to_markers
from perception.ros.pointcloud import points_to_pointcloud2
from perception.ros.stamps import make_header
from perception.ros.transforms import matrix_to_odometry

LIDAR_TOPIC = "/LIDAR_TOP"
ODOM_TOPIC = "/odom"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
GT_TOPIC = "/markers/annotations"
SAMPLE_TOPIC = "/nuscenes/sample"
LIDAR_FRAME, EGO_FRAME, WORLD_FRAME = "LIDAR_TOP", "base_link", "map"


def camera_topics(camera, prefix="/"):
    """``(image topic, camera_info topic)`` of ``camera`` (the sensor player's names)."""
    base = prefix.rstrip("/") + "/" + camera
    return base + "/image_rect_compressed", base + "/camera_info"


class _Report:  # the index builder's report interface: counts reasons (GT boxes not in the classes, ...)
    def __init__(self):
        self.counts = {}

    def add(self, reason, detail=None):
        self.counts[reason] = self.counts.get(reason, 0) + 1


def gt_boxes(nusc, sample_token, lidar2global):
    """``(boxes (M, 9) LiDAR frame, labels (M,))`` of a keyframe: the index builder's own conversion."""
    inst = _instances(nusc, nusc.get("sample", sample_token), lidar2global, _Report())
    boxes = np.array([i["bbox_3d"] + i["velocity"] for i in inst], np.float64).reshape(-1, 9)
    return boxes, np.array([i["bbox_label_3d"] for i in inst], np.int64)


def static_transforms(stream):
    """``[(sensor2ego, channel)]`` of the first record of each channel of the scene (static rig)."""
    seen = {}
    for r in stream.records():
        seen.setdefault(r.channel, r.sensor2ego)
    return [(T, ch) for ch, T in sorted(seen.items())]


def scene_messages(stream, gt=True, problems=None):
    """Yield ``(topic, stamp_ns, msg, record)`` for the whole scene (see the module doc). ``record`` is the
    :class:`SensorRecord` a message comes from (None for tf_static / markers / sample). A sensor file that
    cannot be read is skipped, with a line in ``problems`` (a list) when given."""
    records = stream.records()
    if not records:
        return
    first = records[0].stamp_ns
    yield TF_STATIC_TOPIC, first, tf_message([(T, first, EGO_FRAME, ch) for T, ch in static_transforms(stream)]), None
    keyframes = set(stream.keyframe_tokens())
    for r in records:
        try:
            built = list(_record_messages(stream, r, r.sample_token in keyframes and r.is_key_frame, gt))
        except (OSError, ValueError) as e:  # an unreadable / corrupt sensor file: skip the record, go on
            if problems is not None:
                problems.append(f"{r.channel} {r.timestamp_us} skipped: {e}")
            continue
        yield from built


def _record_messages(stream, r, keyframe, gt):
    """The messages of one sensor record (see the module doc)."""
    from std_msgs.msg import String  # the ros extra (optional)

    stamp = r.stamp_ns
    yield ODOM_TOPIC, stamp, matrix_to_odometry(r.ego2global, stamp, WORLD_FRAME, EGO_FRAME), r
    yield TF_TOPIC, stamp, tf_message([(r.ego2global, stamp, WORLD_FRAME, EGO_FRAME)]), r
    if r.is_lidar:
        points = load_points(r.path, sample_token=r.sample_token)[:, :4]
        yield LIDAR_TOPIC, stamp, points_to_pointcloud2(points, make_header(stamp, LIDAR_FRAME)), r
        if keyframe:
            info = {"sample_token": r.sample_token, "scene": stream.scene_name, "scene_token": stream.scene["token"],
                    "version": stream.version, "dataroot": str(stream.dataroot), "lidar_stamp_ns": stamp}
            yield SAMPLE_TOPIC, stamp, String(data=json.dumps(info, sort_keys=True)), None
            if gt:
                boxes, labels = gt_boxes(stream.nusc, r.sample_token, r.ego2global @ r.sensor2ego)
                pred = SimpleNamespace(boxes=boxes, scores=np.ones(len(boxes)), labels=labels)
                yield GT_TOPIC, stamp, boxes_to_markers(pred, make_header(stamp, LIDAR_FRAME), 0.0), None
        return
    header = make_header(stamp, r.channel)
    width, height = r.width, r.height
    if not (width and height):
        with Image.open(r.path) as im:
            width, height = im.size
    image_topic, info_topic = camera_topics(r.channel)
    yield info_topic, stamp, intrinsics_to_camera_info(r.intrinsics, width, height, header), r
    with open(r.path, "rb") as f:
        yield image_topic, stamp, jpeg_bytes_to_compressed(f.read(), header), r


@dataclass
class ConversionResult:
    out: Path
    scene: str
    messages: int = 0
    lidar: int = 0
    images: int = 0
    keyframes: int = 0
    seconds: float = 0.0
    topics: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

    @property
    def frames_per_s(self):
        return self.lidar / self.seconds if self.seconds > 0 else float("nan")

    def line(self):
        return (f"{self.scene}: {self.lidar} LiDAR sweeps ({self.keyframes} keyframes), {self.images} images, "
                f"{self.messages} messages -> {self.out} in {self.seconds:.1f} s "
                f"({self.frames_per_s:.1f} LiDAR frames/s)")


def convert_scene(dataroot, version, scene, out, fmt="mcap", progress=True, gt=True, overwrite=False, nusc=None):
    """Write one scene as a ROS 2 bag (``fmt`` ``'mcap'``: ``out`` ending in ``.mcap`` is one file, else a
    rosbag2 folder; ``'sqlite3'``: a rosbag2 folder). Returns a :class:`ConversionResult`. A sensor file that
    cannot be read is skipped with one line in ``problems`` (as the sensor player does)."""
    t0 = time.perf_counter()
    stream = SceneStream(dataroot, version, scene, nusc=nusc)
    result = ConversionResult(out=Path(out), scene=stream.scene_name, problems=list(stream.problems))
    n_records = len(stream)
    with BagWriter(out, fmt, overwrite=overwrite) as writer, \
            tqdm(total=n_records, desc=f"convert {stream.scene_name}", unit="msg", disable=not progress) as bar:
        for topic, stamp, msg, _ in scene_messages(stream, gt=gt, problems=result.problems):
            writer.write(topic, msg, stamp)
            result.messages += 1
            if topic == LIDAR_TOPIC:
                result.lidar += 1
                bar.update(1)
            elif topic.endswith("/image_rect_compressed"):
                result.images += 1
                bar.update(1)
            elif topic == SAMPLE_TOPIC:
                result.keyframes += 1
        result.topics = dict(writer.counts)
    result.seconds = time.perf_counter() - t0
    return result


def convert_all(dataroot, version, out_dir, fmt="mcap", progress=True, gt=True, overwrite=False):
    """One bag per scene of the dataroot: ``<out_dir>/<scene>.mcap`` (or a ``<scene>`` rosbag2 folder)."""
    nusc = load_nuscenes(dataroot, version)
    results = []
    for name in SceneStream.scene_names(nusc=nusc):
        out = Path(out_dir) / (f"{name}.mcap" if fmt == "mcap" else name)
        results.append(convert_scene(dataroot, version, name, out, fmt, progress, gt, overwrite, nusc=nusc))
    return results



def keyframe_gt(nusc, sample_token):
    """``(boxes (M, 9), labels (M,))`` GT of a keyframe in its LiDAR frame (for drawing replayed frames)."""
    sd = nusc.get("sample_data", nusc.get("sample", sample_token)["data"]["LIDAR_TOP"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    ego2global = make_transform(pose["rotation"], pose["translation"])
    lidar2global = ego2global @ make_transform(cs["rotation"], cs["translation"])
    return gt_boxes(nusc, sample_token, lidar2global)
