"""``sensor_player``: publish one scene of a nuScenes-format dataroot as ROS 2 sensor topics.

Drives the perception node without a vehicle (thin rclpy glue: the reading is
:class:`perception.data.scene_stream.SceneStream`, the messages come from :mod:`perception.ros`)::

    sensor_player --ros-args -p dataroot:=/data/nuscenes -p version:=v1.0-mini -p scene:=scene-0103
    python -m ros_nodes.sensor_player --ros-args -p dataroot:=.cache/demo/data -p rate:=2.0 -p loop:=true

Topics (defaults):

- ``/LIDAR_TOP`` ``sensor_msgs/PointCloud2`` (x, y, z, intensity float32; frame ``lidar_frame``), every
  keyframe AND sweep;
- ``/CAM_*/image_rect_compressed`` ``sensor_msgs/CompressedImage`` (the JPEG file bytes unchanged) or, with
  ``image_transport:=raw``, ``/CAM_*/image_rect`` ``sensor_msgs/Image`` rgb8; frame id = camera name;
- ``/CAM_*/camera_info`` ``sensor_msgs/CameraInfo`` (same stamp as its image, published just before it);
- ``/odom`` ``nav_msgs/Odometry`` (``world_frame`` -> ``ego_frame``), one per sensor message with that
  message's own ego pose, published just BEFORE it (a node receiving a sweep can already look up its pose).

Every message is published at its dataset time scaled by ``rate``, scheduled against the start of the pass
(no drift). Stamps are the dataset timestamps (``use_sim_stamps``, default) or the wall clock at the scheduled
time. QoS: sensor-data QoS (best effort) for LiDAR and images, or reliable depth 10 with
``reliable_sensors:=true`` (best effort can drop large messages); reliable depth 50 for camera_info and odometry.
Reliable DDS does not deliver to a subscriber what was published before it matched: ``start_delay`` (and
``wait_for_subscribers:=N``, which waits until the LiDAR and odometry topics have N subscribers each) lets them
connect. A write the middleware refuses (a reliable subscriber that acknowledges late: Fast DDS gives up after
its blocking time) is tried again for up to 1 s, then skipped with a warning; the pass's log line counts both.
With ``loop:=false`` the node exits 0 at the end of the scene, after reliable subscribers acknowledged the last
messages (at most 10 s: a writer repairs losses only while it exists); a bad dataroot, unknown scene or
invalid parameter is logged in one line and exits 2. SIGINT / SIGTERM stop it cleanly (exit 0).
The rig calibration goes to a YAML file (``calibration_out``), not to /tf_static (no tf2 messages here).
"""

import os
import sys
import time
from dataclasses import dataclass

from nav_msgs.msg import Odometry
from PIL import Image as PILImage
from rclpy.duration import Duration
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from perception.constants import MAX_CAMERA_LIDAR_DELAY_S
from perception.data.io import load_image, load_points
from perception.data.scene_stream import SceneStream
from perception.ros.calibration import RigCalibration, write_calibration_yaml
from perception.ros.image import intrinsics_to_camera_info, jpeg_bytes_to_compressed, rgb_to_image
from perception.ros.pointcloud import points_to_pointcloud2
from perception.ros.stamps import make_header
from perception.ros.transforms import matrix_to_odometry
from ros_nodes.common import BadParameter, RCLError, declare_parameters, publish_retrying, run_node

ACK_TIMEOUT_S = 10.0  # at the end, how long reliable subscribers may take to acknowledge the last messages
LOOP_GAP_S = 0.05  # dataset seconds between the last message of a pass and the first of the next (one sweep)

PARAMETERS = {
    # name: (default, description)
    "dataroot": ("", "nuScenes-format dataroot (holds <version>/*.json, samples/, sweeps/); required"),
    "version": ("v1.0-trainval", "table folder under the dataroot (v1.0-trainval, v1.0-mini, ...)"),
    "scene": ("", "scene name, e.g. scene-0103; empty = the first scene of the scene table"),
    "rate": (1.0, "playback speed factor: 1.0 = real time, 2.0 = twice real time"),
    "loop": (False, "restart the scene when it ends (stamps repeat, like ros2 bag play --loop)"),
    "start_delay": (1.0, "seconds to wait before the first message (lets subscribers connect)"),
    "wait_for_subscribers": (0, "before start_delay, wait (up to 30 s) until the LiDAR and odometry topics have "
                                "this many subscribers each; 0 = do not wait"),
    "lidar_topic": ("/LIDAR_TOP", "PointCloud2 topic of LIDAR_TOP (keyframes and sweeps)"),
    "camera_topic_prefix": ("/", "camera topics are <prefix><CAM_NAME>/image_rect_compressed (or "
                                 "/image_rect) and <prefix><CAM_NAME>/camera_info"),
    "odom_topic": ("/odom", "nav_msgs/Odometry topic: the ego pose of every sensor message"),
    "image_transport": ("compressed", "'compressed': CompressedImage with the JPEG bytes unchanged; "
                                      "'raw': decoded sensor_msgs/Image rgb8 on <prefix><CAM>/image_rect"),
    "lidar_frame": ("LIDAR_TOP", "frame id of the point clouds"),
    "ego_frame": ("base_link", "child frame id of the odometry (the ego / vehicle frame)"),
    "world_frame": ("map", "frame id of the odometry (the nuScenes global frame)"),
    "calibration_out": ("", "if set, write the scene's rig calibration YAML to this path at start"),
    "use_sim_stamps": (True, "true: messages carry the dataset timestamps; false: the wall clock at the "
                             "scheduled publish time"),
    "reliable_sensors": (False, "true: reliable depth 10 for LiDAR and images instead of sensor-data QoS "
                                "(best effort can drop large messages)"),
}
NUMERIC = ("rate", "start_delay")


@dataclass
class PlannedMessage:
    """One publication of the plan: ``offset_s`` after the start of a pass (already divided by ``rate``)."""

    offset_s: float
    kind: str  # 'odom', 'lidar', 'camera_info' or 'image'
    record: object  # the perception.data.scene_stream.SensorRecord it comes from


def publish_plan(stream, rate=1.0):
    """The publication order and times of one pass over ``stream`` (a ``SceneStream`` or a list of
    ``SensorRecord`` sorted by time), without any ROS: per record an ``odom`` first, then ``lidar`` or
    ``camera_info`` + ``image``, all at ``(timestamp - first timestamp) / rate`` seconds."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    records = stream.records() if hasattr(stream, "records") else list(stream)
    if not records:
        return []
    t0 = records[0].timestamp_us
    plan = []
    for r in records:
        offset = (r.timestamp_us - t0) / 1e6 / rate
        plan.append(PlannedMessage(offset, "odom", r))
        if r.channel == "LIDAR_TOP":
            plan.append(PlannedMessage(offset, "lidar", r))
        else:
            plan.append(PlannedMessage(offset, "camera_info", r))
            plan.append(PlannedMessage(offset, "image", r))
    return plan


def camera_topics(prefix, camera, image_transport="compressed"):
    """``(image topic, camera_info topic)`` of ``camera``: ``prefix='/'`` gives ``/CAM_FRONT/...``."""
    base = (prefix.rstrip("/") + "/" + camera) if prefix else camera
    image = base + ("/image_rect_compressed" if image_transport == "compressed" else "/image_rect")
    return image, base + "/camera_info"


class SensorPlayer:
    """The rclpy node and its publishing loop (built by :func:`main`)."""

    def __init__(self, node):
        self.node = node
        self.log = node.get_logger()
        self.p = self._validate(declare_parameters(node, PARAMETERS, NUMERIC))
        self.open()

    @staticmethod
    def _validate(p):
        if not p["dataroot"]:
            raise BadParameter("parameter dataroot is required (--ros-args -p dataroot:=/path/to/nuscenes)")
        if not p["rate"] > 0:
            raise BadParameter(f"parameter rate must be > 0, got {p['rate']}")
        if p["start_delay"] < 0:
            raise BadParameter(f"parameter start_delay must be >= 0, got {p['start_delay']}")
        if p["image_transport"] not in ("compressed", "raw"):
            raise BadParameter(f"parameter image_transport must be 'compressed' or 'raw', got {p['image_transport']!r}")
        if p["wait_for_subscribers"] < 0:
            raise BadParameter(f"parameter wait_for_subscribers must be >= 0, got {p['wait_for_subscribers']}")
        return p

    # ----------------------------------------------------------------------------------------------------
    def open(self):
        """Read the scene, write the calibration, create the publishers."""
        p = self.p
        try:
            self.stream = SceneStream(p["dataroot"], p["version"], p["scene"] or None)
        except (FileNotFoundError, ValueError) as e:
            raise BadParameter(str(e)) from e
        for line in self.stream.problems:
            self.log.warning(line)
        if p["calibration_out"]:
            calib = RigCalibration(**self.stream.calibration(p["lidar_frame"], p["ego_frame"]))
            try:
                out_dir = os.path.dirname(os.path.abspath(p["calibration_out"]))
                os.makedirs(out_dir, exist_ok=True)
                write_calibration_yaml(calib, p["calibration_out"])
            except OSError as e:
                raise BadParameter(f"cannot write calibration_out {p['calibration_out']}: {e}") from e
            self.log.info(f"wrote the rig calibration of {self.stream.scene_name} to {p['calibration_out']}")
        self._make_publishers()
        self.plan = publish_plan(self.stream, p["rate"])

    def _make_publishers(self):
        p, node = self.p, self.node
        reliable50 = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        sensor_qos = (QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
                      if p["reliable_sensors"] else qos_profile_sensor_data)
        self.reliable = [node.create_publisher(Odometry, p["odom_topic"], reliable50)]
        self.odom_pub = self.reliable[0]
        self.lidar_pub = node.create_publisher(PointCloud2, p["lidar_topic"], sensor_qos)
        image_type = CompressedImage if p["image_transport"] == "compressed" else Image
        self.image_pubs, self.info_pubs = {}, {}
        for cam in sorted({r.channel for r in self.stream.camera_records()}):
            image_topic, info_topic = camera_topics(p["camera_topic_prefix"], cam, p["image_transport"])
            self.image_pubs[cam] = node.create_publisher(image_type, image_topic, sensor_qos)
            self.info_pubs[cam] = node.create_publisher(CameraInfo, info_topic, reliable50)
            self.reliable.append(self.info_pubs[cam])
        if p["reliable_sensors"]:
            self.reliable += [self.lidar_pub] + list(self.image_pubs.values())

    # ----------------------------------------------------------------------------------------------------
    def _build(self, item, stamp_ns):
        """The message of a planned item (reads the sensor file)."""
        p, r = self.p, item.record
        if item.kind == "odom":
            return matrix_to_odometry(r.ego2global, stamp_ns, p["world_frame"], p["ego_frame"])
        if item.kind == "lidar":
            points = load_points(r.path, sample_token=r.sample_token)[:, :4]
            return points_to_pointcloud2(points, make_header(stamp_ns, p["lidar_frame"]))
        header = make_header(stamp_ns, r.channel)
        if item.kind == "camera_info":
            width, height = r.width, r.height
            if not (width and height):
                with PILImage.open(r.path) as im:
                    width, height = im.size
            return intrinsics_to_camera_info(r.intrinsics, width, height, header)
        if p["image_transport"] == "compressed":
            with open(r.path, "rb") as f:
                return jpeg_bytes_to_compressed(f.read(), header)
        return rgb_to_image(load_image(r.path, sample_token=r.sample_token), header)

    def _publisher(self, item):
        if item.kind == "odom":
            return self.odom_pub
        if item.kind == "lidar":
            return self.lidar_pub
        return (self.info_pubs if item.kind == "camera_info" else self.image_pubs)[item.record.channel]

    def _sleep_until(self, executor, deadline):
        """Serve the node (parameter services) until the monotonic ``deadline``; False once shut down."""
        while True:
            if not self.node.context.ok():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            executor.spin_once(timeout_sec=min(left, 0.05))

    def _wait_for_subscribers(self, executor):
        """Wait (at most 30 s) until the LiDAR and the odometry topics have ``wait_for_subscribers``
        subscriptions each (every consumer reads those two; camera topics may legitimately have none)."""
        n = int(self.p["wait_for_subscribers"])
        if n <= 0:
            return True
        deadline = time.monotonic() + 30.0
        while True:
            short = [pub.topic_name for pub in (self.lidar_pub, self.odom_pub) if pub.get_subscription_count() < n]
            if not short:
                return True
            if time.monotonic() > deadline:
                self.log.warning(f"fewer than {n} subscribers after 30 s on {', '.join(short)}; starting anyway")
                return True
            if not self._sleep_until(executor, time.monotonic() + 0.05):
                return False

    def _wait_for_acks(self, timeout_s=ACK_TIMEOUT_S):
        """Before exiting, let reliable subscribers acknowledge (and have repaired) everything published: the
        writer resends lost samples only while it exists. At most ``timeout_s`` in all."""
        deadline = time.monotonic() + timeout_s
        for pub in self.reliable:
            left = max(0.0, deadline - time.monotonic())
            ok = pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
            if not ok:
                self.log.warning(f"{pub.topic_name}: not every subscriber acknowledged every message "
                                 f"within {timeout_s:g} s")

    def run(self, executor):
        """Publish the scene (once, or forever with ``loop``); False when interrupted by a shutdown."""
        p, stream = self.p, self.stream
        n_lidar = len(stream.lidar_records())
        self.log.info(f"{stream.summary()}; rate {p['rate']:g}x ({stream.duration_s() / p['rate']:.2f} s per pass), "
                      f"loop {str(p['loop']).lower()}, images {p['image_transport']}")
        if not self.plan:
            self.log.warning(f"scene {stream.scene_name}: nothing to publish")
            return True
        lonely = stream.lidar_without_camera(MAX_CAMERA_LIDAR_DELAY_S)
        if lonely:
            self.log.warning(f"{lonely} of {n_lidar} LiDAR messages have no image of some camera within "
                             f"{MAX_CAMERA_LIDAR_DELAY_S} s: a perception_node runs them without that camera (a "
                             f"dataroot with camera images at keyframes only; `perception synth` writes camera "
                             f"sweeps unless --no-camera-sweeps)")
        if not self._wait_for_subscribers(executor):
            return False
        if not self._sleep_until(executor, time.monotonic() + p["start_delay"]):
            return False
        pass_period = self.plan[-1].offset_s + LOOP_GAP_S / p["rate"]
        pass_start = time.monotonic()
        wall_start_ns = time.time_ns()
        passes, warned_behind = 0, False
        while True:
            published, skipped, retried, late = 0, 0, 0, 0.0
            for item in self.plan:
                if p["use_sim_stamps"]:
                    stamp_ns = item.record.stamp_ns
                else:
                    stamp_ns = wall_start_ns + int(round(item.offset_s * 1e9))
                try:
                    msg = self._build(item, stamp_ns)  # read the file before the due time
                except (OSError, ValueError) as e:  # a file that became unreadable / undecodable: skip it
                    self.log.warning(f"skipped {item.kind} {item.record.channel} {item.record.timestamp_us}: {e}")
                    skipped += 1
                    continue
                due = pass_start + item.offset_s
                if not self._sleep_until(executor, due):
                    return False
                late = max(late, time.monotonic() - due)
                try:  # a reliable subscriber that acknowledges late: wait for it (up to 1 s), never die of it
                    retried += publish_retrying(self._publisher(item), msg, within_s=1.0)
                except RCLError as e:
                    if not self.node.context.ok():  # Ctrl-C / SIGTERM while publishing: shutting down, not a refusal
                        return False
                    self.log.warning(f"skipped {item.kind} {item.record.channel} {item.record.timestamp_us}: "
                                     f"the middleware refused it for 1 s ({e})")
                    skipped += 1
                    continue
                published += 1
            passes += 1
            self.log.info(f"scene {stream.scene_name}: pass {passes} done ({n_lidar} LiDAR, "
                          f"{len(stream) - n_lidar} camera records, {published} messages, {skipped} skipped, "
                          f"{retried} writes retried; "
                          f"max lateness {late * 1000:.0f} ms)")
            if not p["loop"]:
                break
            pass_start += pass_period  # schedule against the start: no drift across passes
            wall_start_ns += int(round(pass_period * 1e9))
            behind = time.monotonic() - pass_start
            if behind > 0:  # slower than the rate (e.g. raw decoding): restart the schedule, do not burst
                if not warned_behind:
                    self.log.warning(f"pass {passes} ended {behind:.2f} s behind schedule (the player cannot keep "
                                     f"up with rate {p['rate']:g}); the next passes start late")
                    warned_behind = True
                pass_start += behind
                wall_start_ns += int(round(behind * 1e9))
        self._wait_for_acks()
        self.log.info(f"scene {stream.scene_name}: finished, exiting")
        return True


def main(args=None):
    """Console script ``sensor_player``: 0 at the end of the scene (or on Ctrl-C), 2 on bad input."""
    return run_node("sensor_player", SensorPlayer, args)


if __name__ == "__main__":
    sys.exit(main())
