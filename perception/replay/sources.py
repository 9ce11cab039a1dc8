"""Replay inputs: a rosbag2 (MCAP or sqlite3 storage, ROS 2 CDR), a single MCAP file (ROS 2 CDR or Foxglove
protobuf schemas) or a nuScenes dataroot scene, all read as :class:`InputMessage` s in log-time order.

- MCAP (a ``.mcap`` file, or the files of a rosbag2 folder with MCAP storage) is read with the ``mcap``
  library: in log-time order through the summary index; when the summary is missing (a bag cut short, a
  recorder killed) the file is read linearly up to the cut, and :attr:`Source.problems` says where it ended.
  ROS 2 CDR payloads are decoded with a ``rosbags`` typestore built from the schema stored in the file;
  protobuf payloads with ``mcap-protobuf-support`` from the file's FileDescriptorSet.
- sqlite3 rosbag2 folders are read with ``rosbags``' ``AnyReader``.
- A dataroot scene yields the messages the converter would write (:func:`perception.replay.convert.scene_messages`),
  already built with the message layer.

Decoding is lazy (:meth:`InputMessage.message`): topics replay does not use are never decoded.
"""

import os
from dataclasses import dataclass
from pathlib import Path

CDR, PROTOBUF = "cdr", "protobuf"


class SourceError(ValueError):
    """An input that cannot be replayed at all (not found, not a bag, unreadable header)."""


@dataclass
class TopicInfo:
    topic: str
    msgtype: str  # 'sensor_msgs/msg/PointCloud2' or 'foxglove.PointCloud'
    encoding: str  # 'cdr', 'protobuf' or the file's message encoding
    count: int = None  # messages (None when unknown: no summary)


class InputMessage:
    """One message of an input: ``topic``, ``msgtype``, ``encoding``, ``log_time_ns``; :meth:`message` decodes
    it (cached); ``raw`` (CDR bytes) and ``msgdef`` (the ``.msg`` text) when it came from a ROS 2 bag."""

    __slots__ = ("topic", "msgtype", "encoding", "log_time_ns", "raw", "msgdef", "_decode", "_msg")

    def __init__(self, topic, msgtype, encoding, log_time_ns, raw=None, msgdef=None, decode=None, msg=None):
        self.topic, self.msgtype, self.encoding, self.log_time_ns = topic, msgtype, encoding, int(log_time_ns)
        self.raw, self.msgdef, self._decode, self._msg = raw, msgdef, decode, msg

    def message(self):
        if self._msg is None:
            self._msg = self._decode(self.raw)
        return self._msg


class _CdrDecoders:
    """ROS 2 CDR decoding with a ``rosbags`` typestore holding the types of the schemas seen."""

    def __init__(self):
        from rosbags.typesys import Stores, get_typestore

        self.store = get_typestore(Stores.EMPTY)
        self.known = set()

    def decoder(self, msgtype, msgdef):
        from rosbags.typesys import get_types_from_msg

        if msgtype not in self.known:
            if not msgdef:
                raise SourceError(f"type {msgtype}: the file stores no message definition")
            types = get_types_from_msg(msgdef, msgtype)
            self.store.register({k: v for k, v in types.items() if k not in self.store.fielddefs})
            self.known.add(msgtype)
        store = self.store
        return lambda raw: store.deserialize_cdr(raw, msgtype)


class McapSource:
    """One or more MCAP files read one after another (see the module doc)."""

    def __init__(self, paths, name=None):
        self.paths = [Path(p) for p in paths]
        self.name = name or str(self.paths[0])
        self.problems = []
        self._cdr = _CdrDecoders()
        self._proto = None
        self._decoders = {}  # channel key -> decode function
        self._topics = None
        for p in self.paths:
            if not p.is_file():
                raise SourceError(f"{p}: file not found")
            with open(p, "rb") as f:
                if f.read(8) != b"\x89MCAP0\r\n":
                    raise SourceError(f"{p}: not an MCAP file (bad magic)")

    # ------------------------------------------------------------------ topics
    def topics(self):
        """``{topic: TopicInfo}`` from the summaries (a linear scan of a file without one)."""
        if self._topics is None:
            from mcap.reader import make_reader

            topics = {}
            for p in self.paths:
                with open(p, "rb") as f:
                    summary = self._summary(make_reader(f), p, note=False)
                    if summary is not None:
                        counts = summary.statistics.channel_message_counts if summary.statistics else {}
                        for cid, ch in summary.channels.items():
                            schema = summary.schemas.get(ch.schema_id)
                            self._add_topic(topics, ch, schema, counts.get(cid))
                        continue
                for schema, ch, _ in self._linear(p, note=False):
                    self._add_topic(topics, ch, schema, 1)
            self._topics = topics
        return self._topics

    @staticmethod
    def _add_topic(topics, channel, schema, count):
        info = topics.get(channel.topic)
        if info is None:
            encoding = CDR if channel.message_encoding == "cdr" else channel.message_encoding
            topics[channel.topic] = TopicInfo(channel.topic, schema.name if schema else "", encoding, count)
        elif count is not None and info.count is not None:
            info.count += count

    def _summary(self, reader, path, note=True):
        try:
            return reader.get_summary()
        except Exception as e:  # noqa: BLE001 - a missing footer raises EndOfFile / McapError / struct.error
            if note:
                self.problems.append(f"{path}: no readable summary ({type(e).__name__}): the file was cut short "
                                     f"or not closed; reading it linearly up to the cut")
            return None

    def _linear(self, path, note=True):
        """Linear read of a file without summary; stops (with a problem line) at a truncated record."""
        from mcap.reader import NonSeekingReader

        n = 0
        with open(path, "rb") as f:
            it = NonSeekingReader(f, record_size_limit=None).iter_messages(log_time_order=False)
            while True:
                try:
                    item = next(it)
                except StopIteration:
                    return
                except Exception as e:  # noqa: BLE001 - a record cut in the middle raises one of many types
                    if note:
                        self.problems.append(f"{path}: truncated or corrupt after {n} messages "
                                             f"({type(e).__name__}: {e}); the rest of the file is lost")
                    return
                n += 1
                yield item

    # ------------------------------------------------------------------ messages
    def _decoder(self, schema, channel):
        key = (channel.id, schema.id if schema else 0, id(schema))
        fn = self._decoders.get(key)
        if fn is None:
            if channel.message_encoding == "cdr":
                fn = self._cdr.decoder(schema.name, schema.data.decode() if schema else "")
            elif channel.message_encoding == "protobuf":
                from mcap_protobuf.decoder import DecoderFactory

                self._proto = self._proto or DecoderFactory()
                fn = self._proto.decoder_for("protobuf", schema)
                if fn is None:
                    raise SourceError(f"topic {channel.topic}: protobuf schema {schema.name if schema else None} "
                                      f"cannot be decoded")
            else:
                raise SourceError(f"topic {channel.topic}: unsupported message encoding {channel.message_encoding!r}")
            self._decoders[key] = fn
        return fn

    def messages(self, topics=None):
        """Yield :class:`InputMessage` s (log-time order per file; linear order without a summary)."""
        from mcap.reader import make_reader

        wanted = None if topics is None else set(topics)
        for p in self.paths:
            with open(p, "rb") as f:
                reader = make_reader(f)
                summary = self._summary(reader, p)
                if summary is not None:
                    items = self._indexed(reader, p, wanted)
                else:
                    items = (it for it in self._linear(p) if wanted is None or it[1].topic in wanted)
                for schema, channel, record in items:
                    yield self._input(schema, channel, record)

    def _indexed(self, reader, path, wanted):
        it = reader.iter_messages(topics=None if wanted is None else sorted(wanted), log_time_order=True)
        n = 0
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a corrupt chunk (bad CRC, cut data) in an indexed file
                self.problems.append(f"{path}: corrupt data after {n} messages ({type(e).__name__}: {e}); "
                                     f"the rest of the file is skipped")
                return
            n += 1
            yield item

    def _input(self, schema, channel, record):
        encoding = CDR if channel.message_encoding == "cdr" else channel.message_encoding
        msgtype = schema.name if schema else ""
        msgdef = schema.data.decode() if schema is not None and encoding == CDR else None
        source = self

        def decode(raw, schema=schema, channel=channel):
            return source._decoder(schema, channel)(raw)

        return InputMessage(channel.topic, msgtype, encoding, record.log_time, raw=record.data, msgdef=msgdef,
                            decode=decode)


class Sqlite3Source:
    """A rosbag2 folder with sqlite3 storage, read with ``rosbags.highlevel.AnyReader``."""

    def __init__(self, path):
        from rosbags.highlevel import AnyReader

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
        from perception.data.scene_stream import SceneStream

        try:
            self.stream = SceneStream(dataroot, version, scene)
        except (FileNotFoundError, ValueError) as e:
            raise SourceError(str(e)) from e
        self.name = f"{dataroot} ({self.stream.scene_name})"
        self.problems = list(self.stream.problems)
        self._topics = None

    def _items(self):
        from perception.replay.convert import scene_messages
        from perception.replay.bagio import msgtype_of

        for topic, stamp, msg, _ in scene_messages(self.stream, problems=self.problems):
            yield InputMessage(topic, msgtype_of(msg), "rclpy", stamp, msg=msg)

    def topics(self):
        if self._topics is None:  # without reading sensor files
            from perception.constants import CAMERA_NAMES
            from perception.replay import convert as c

            cams = {r.channel for r in self.stream.camera_records()}
            n_lidar = len(self.stream.lidar_records())
            n = len(self.stream)
            t = [(c.TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", 1), (c.ODOM_TOPIC, "nav_msgs/msg/Odometry", n),
                 (c.TF_TOPIC, "tf2_msgs/msg/TFMessage", n), (c.LIDAR_TOPIC, "sensor_msgs/msg/PointCloud2", n_lidar),
                 (c.SAMPLE_TOPIC, "std_msgs/msg/String", None),
                 (c.GT_TOPIC, "visualization_msgs/msg/MarkerArray", None)]
            for cam in CAMERA_NAMES:
                if cam in cams:
                    k = sum(1 for r in self.stream.camera_records() if r.channel == cam)
                    image, info = c.camera_topics(cam)
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
        import yaml

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
