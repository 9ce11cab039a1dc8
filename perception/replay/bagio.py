"""Writing ROS 2 bags with ``rosbags``: rclpy messages, ``rosbags`` typestore messages and raw CDR bytes.

:class:`BagWriter` writes a rosbag2 (storage ``mcap`` or ``sqlite3``, standard ROS 2 message definitions in
the file, so Foxglove, ``ros2 bag`` and the ``mcap`` tools read it). An output path ending in ``.mcap``
becomes ONE MCAP file: the bag is written into ``<out>.partial/`` and its data file moved to ``<out>`` when
closed (also after an error: what was written stays readable). Any other path is a rosbag2 folder.

rclpy messages are serialized with ``rclpy.serialization.serialize_message`` (CDR, as a ROS 2 recorder stores
them; padding made canonical, see :func:`serialize`); ``tf2_msgs/msg/TFMessage`` (not on PyPI as an rclpy
package) is built and serialized with the ``rosbags`` typestore (:func:`tf_message`).
"""

import os
import shutil
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from perception.ros.transforms import pose_from_matrix

TYPESTORE_NAME = "ROS2_KILTED"  # the distro of the PyPI message wheels (sensor_msgs 5.5); same .msg as Humble


def typestore():
    """The ``rosbags`` typestore whose definitions are written into bags (cached)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(getattr(Stores, TYPESTORE_NAME))
    return _TYPESTORE


_TYPESTORE = None


def msgtype_of(msg):
    """``'pkg/msg/Name'`` of an rclpy message instance (or a rosbags one, which carries ``__msgtype__``)."""
    name = getattr(msg, "__msgtype__", None)
    if name:
        return name
    cls = type(msg)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def tf_message(transforms):
    """``tf2_msgs/msg/TFMessage`` (rosbags class) from ``[(T 4x4 child -> parent, stamp_ns, parent, child)]``."""
    ts = typestore().types
    Time, Header = ts["builtin_interfaces/msg/Time"], ts["std_msgs/msg/Header"]
    Vector3, Quaternion = ts["geometry_msgs/msg/Vector3"], ts["geometry_msgs/msg/Quaternion"]
    Transform, TransformStamped = ts["geometry_msgs/msg/Transform"], ts["geometry_msgs/msg/TransformStamped"]
    out = []
    for T, stamp_ns, parent, child in transforms:
        t, q = pose_from_matrix(T)
        out.append(TransformStamped(
            header=Header(stamp=Time(sec=int(stamp_ns) // 10**9, nanosec=int(stamp_ns) % 10**9), frame_id=str(parent)),
            child_frame_id=str(child),
            transform=Transform(translation=Vector3(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                                rotation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))))
    return ts["tf2_msgs/msg/TFMessage"](transforms=out)


def serialize(msg):
    """CDR bytes of an rclpy or rosbags message, with zeroed alignment padding.

    rclpy's serializer (Fast CDR) leaves the alignment padding bytes uninitialised, so the same message gives
    different bytes from run to run; one pass through the ``rosbags`` typestore (deserialize, serialize) makes
    them canonical (replay promises byte-identical output messages for the same input)."""
    store = typestore()
    if hasattr(msg, "__msgtype__"):
        return bytes(store.serialize_cdr(msg, msg.__msgtype__))
    from rclpy.serialization import serialize_message  # optional (the ros extra): rosbags messages do without

    msgtype = msgtype_of(msg)
    return bytes(store.serialize_cdr(store.deserialize_cdr(serialize_message(msg), msgtype), msgtype))


def rihs01_of(msgtype, msgdef):
    """The RIHS01 type hash of ``msgtype`` defined by the ``.msg`` text ``msgdef`` (a bag's stored schema)."""
    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(msgdef, msgtype))
    return store.hash_rihs01(msgtype)


class BagWriter:
    """A rosbag2 being written (see the module doc). ``fmt``: ``'mcap'`` or ``'sqlite3'``.

    ``write(topic, msg, stamp_ns)`` takes rclpy or rosbags messages; ``write_raw(topic, msgtype, data,
    stamp_ns, msgdef)`` copies CDR bytes (``msgdef``: the source's ``.msg`` text, else the typestore's).
    An existing output is refused (``FileExistsError``) unless ``overwrite``.
    """

    def __init__(self, out, fmt="mcap", overwrite=False):
        if fmt not in ("mcap", "sqlite3"):
            raise ValueError(f"bag format must be 'mcap' or 'sqlite3', got {fmt!r}")
        self.out = Path(out)
        self.single_file = fmt == "mcap" and self.out.suffix == ".mcap"
        self.folder = self.out.with_name(self.out.name + ".partial") if self.single_file else self.out
        for path in {self.out, self.folder}:
            if path.exists():
                if not overwrite:
                    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        plugin = StoragePlugin.MCAP if fmt == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.folder, version=9, storage_plugin=plugin)
        self.writer.open()
        self.connections = {}
        self.counts = {}
        self.closed = False

    def _connection(self, topic, msgtype, msgdef=None):
        conn = self.connections.get(topic)
        if conn is None:
            if msgdef is not None:
                conn = self.writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01_of(msgtype, msgdef))
            else:
                conn = self.writer.add_connection(topic, msgtype, typestore=typestore())
            self.connections[topic] = conn
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {topic}: already written as {conn.msgtype}, now {msgtype}")
        return conn

    def write(self, topic, msg, stamp_ns):
        self.write_raw(topic, msgtype_of(msg), serialize(msg), stamp_ns)

    def write_raw(self, topic, msgtype, data, stamp_ns, msgdef=None):
        conn = self._connection(topic, msgtype, msgdef)
        self.writer.write(conn, int(stamp_ns), bytes(data) if not isinstance(data, (bytes, memoryview)) else data)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self):
        """Finish the bag (idempotent); for a single ``.mcap`` output move the data file into place."""
        if self.closed:
            return self.out
        self.closed = True
        self.writer.close()
        if self.single_file:
            files = sorted(self.folder.glob("*.mcap"))
            if len(files) != 1:
                raise RuntimeError(f"expected one .mcap file in {self.folder}, found {[f.name for f in files]}")
            os.replace(files[0], self.out)
            shutil.rmtree(self.folder)
        return self.out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

