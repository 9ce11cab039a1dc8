"""Replay inputs: a rosbag2 (MCAP or sqlite3 storage, ROS 2 CDR), a single MCAP file (ROS 2 CDR or Foxglove
protobuf schemas) or a nuScenes dataroot scene, all read as :class:`InputMessage` s in log-time order.

- MCAP (a ``.mcap`` file, or the files of a rosbag2 folder with MCAP storage):
  :class:`perception.replay.mcap_source.McapSource` (log-time order; a file cut short is read up to the cut,
  and :attr:`problems` says where it ended).
- sqlite3 rosbag2 folders are read with ``rosbags``' ``AnyReader``.
- A dataroot scene yields the messages the converter would write (:func:`perception.replay.convert.scene_messages`),
  already built with the message layer.

Decoding is lazy (:meth:`perception.replay.input_message.InputMessage.message`): topics replay does not use
are never decoded. :func:`open_source` picks the source of a path.
"""

import os
from pathlib import Path

import yaml
from rosbags.highlevel import AnyReader

from perception.constants import CAMERA_NAMES
from perception.data.scene_stream import SceneStream
from perception.replay import convert
from perception.replay.bagio import msgtype_of
from perception.replay.input_message import CDR, InputMessage, SourceError, TopicInfo
from perception.replay.mcap_source import McapSource


class Sqlite3Source:
    """A rosbag2 folder with sqlite3 storage, read with ``rosbags.highlevel.AnyReader``."""

    def __init__(self, path):
        self.name = str(path)
        self.problems = []
        try:
            self.reader = AnyReader([Path(path)])
            self.reader.open()
        except Exception as e:  # noqa: BLE001 - rosbags raises its own errors for broken bags
            raise SourceError(f"{path}: cannot open the rosbag2 ({type(e).__name__}: {e})") from e

    def topics(self):
        out = {}
        for c in self.reader.connections:
            info = out.setdefault(c.topic, TopicInfo(c.topic, c.msgtype, CDR, 0))
            info.count += c.msgcount
        return out

    def messages(self, topics=None):
        conns = [c for c in self.reader.connections if topics is None or c.topic in topics]
        reader = self.reader
        it = reader.messages(connections=conns)
        n = 0
        while True:
            try:
                conn, stamp, raw = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a corrupt database page
                self.problems.append(f"{self.name}: corrupt after {n} messages ({type(e).__name__}: {e})")
                return
            n += 1
            yield InputMessage(conn.topic, conn.msgtype, CDR, stamp, raw=raw, msgdef=conn.msgdef.data or None,
                               decode=lambda r, t=conn.msgtype: reader.deserialize(r, t))


class DatarootSource:
    """One scene of a nuScenes-format dataroot, as the messages the converter writes (no bag in between)."""

    def __init__(self, dataroot, version, scene):
        try:
            self.stream = SceneStream(dataroot, version, scene)
        except (FileNotFoundError, ValueError) as e:
            raise SourceError(str(e)) from e
        self.name = f"{dataroot} ({self.stream.scene_name})"
        self.problems = list(self.stream.problems)
        self._topics = None

    def _items(self):
        for topic, stamp, msg, _ in convert.scene_messages(self.stream, problems=self.problems):
            yield InputMessage(topic, msgtype_of(msg), "rclpy", stamp, msg=msg)

    def topics(self):
        if self._topics is None:  # without reading sensor files
            cams = {r.channel for r in self.stream.camera_records()}
            n_lidar = len(self.stream.lidar_records())
            n = len(self.stream)
            t = [(convert.TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", 1),
                 (convert.ODOM_TOPIC, "nav_msgs/msg/Odometry", n),
                 (convert.TF_TOPIC, "tf2_msgs/msg/TFMessage", n),
                 (convert.LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", n_lidar),
                 (convert.SAMPLE_TOPIC, "std_msgs/msg/String", None),
                 (convert.GT_TOPIC, "visualization_msgs/msg/MarkerArray", None)]
            for cam in CAMERA_NAMES:
                if cam in cams:
                    k = sum(1 for r in self.stream.camera_records() if r.channel == cam)
                    image, info = convert.camera_topics(cam)
                    t += [(info, "sensor_msgs/msg/CameraInfo", k), (image, "sensor_msgs/msg/CompressedImage", k)]
            self._topics = {name: TopicInfo(name, kind, "rclpy", k) for name, kind, k in t}
        return self._topics

    def messages(self, topics=None):
        for m in self._items():
            if topics is None or m.topic in topics:
                yield m


def open_source(path, scene=None, version="v1.0-trainval"):
    """The source of ``path``: a ``.mcap`` file, a rosbag2 folder (``metadata.yaml``), or a nuScenes dataroot
    (a folder with ``<version>/scene.json``; ``scene`` picks the scene). ``SourceError`` otherwise."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"input {path} not found")
    if p.is_file():
        if p.suffix == ".db3":
            return Sqlite3Source(p.parent)
        return McapSource([p])
    meta = p / "metadata.yaml"
    if meta.is_file():
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        except Exception as e:  # noqa: BLE001
            raise SourceError(f"{meta}: not a rosbag2 metadata file ({type(e).__name__}: {e})") from e
        storage = info.get("storage_identifier", "")
        files = [p / f for f in info.get("relative_file_paths", [])]
        if storage == "mcap":
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise SourceError(f"{path}: bag files missing: {missing}")
            return McapSource(files, name=str(p))
        if storage == "sqlite3":
            return Sqlite3Source(p)
        raise SourceError(f"{path}: unsupported rosbag2 storage {storage!r} (mcap and sqlite3 are supported)")
    if (p / version / "scene.json").is_file():
        return DatarootSource(p, version, scene)
    mcaps = sorted(p.glob("*.mcap"))
    if len(mcaps) == 1:
        return McapSource(mcaps, name=str(p))
    raise SourceError(f"{path}: neither an MCAP file, a rosbag2 folder (metadata.yaml) nor a nuScenes dataroot "
                      f"({os.path.join(str(p), version, 'scene.json')} not found; pass --version)")
