"""``perception_node``: camera + LiDAR perception on a ROS 2 bus (thin rclpy glue).

This file declares parameters, subscribes, hands messages to :class:`perception.ros.bridge.PerceptionBridge`
(conversion, sweep accumulation, camera staleness, the :class:`perception.runtime.Predictor`, output
messages: the same code log replay runs) and publishes. Run::

    perception_node --ros-args -p config:=configs/tiny.py -p checkpoint:=model.pth -p calibration:=rig.yaml
    ros2 launch m3_perception perception.launch.py config:=... checkpoint:=... dataroot:=...

Subscribes (defaults; topic names are parameters):
  ``/LIDAR_TOP`` PointCloud2 (sensor-data QoS; triggers inference), ``/<CAM>/image_rect_compressed``
  CompressedImage (or ``/<CAM>/image_rect`` Image for cameras listed in ``raw_cameras``) and
  ``/<CAM>/camera_info`` CameraInfo for each camera of the model, ``/odom`` Odometry (ego poses).
Publishes (relative names, stamped with the LiDAR stamp; while the LiDAR is silent for ``lidar_timeout`` s,
frames triggered by ``lidar_down_camera``'s images carry that image's stamp, :mod:`perception.ros.camera_trigger`):
  ``perception/markers`` MarkerArray (boxes, LiDAR frame), ``perception/detections`` Detection3DArray (when
  vision_msgs is installed), ``perception/bev/<class>`` OccupancyGrid x 6 (0-100, LiDAR frame),
  ``perception/occupancy`` PointCloud2 x, y, z, label (Occ3D: ``ego_frame``), ``perception/occupancy_markers``,
  ``/diagnostics`` DiagnosticArray (per-stage latency and precision, input age, dropped frames, sensor states,
  bad input).

Threads: the executor thread only converts messages (ms); inference runs in a worker with ONE frame slot:
a new LiDAR message replaces a waiting one (newest wins, counted as dropped), so there is never a backlog.
Before inferring, the worker waits at most ``max_input_wait`` s for an ego pose or a flowing camera whose
image at this stamp has not arrived yet (nuScenes cameras fire just after the LiDAR); a stopped sensor is
never waited for. A bad message or a failed frame is counted, logged once per kind and reported on
diagnostics; the node goes on.
"""

import os
import sys
import threading
import time
import warnings

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from perception.config import load_config
from perception.constants import MAX_CAMERA_LIDAR_DELAY_S
from perception.ros.bridge import InputErrors, PerceptionBridge, output_topic
from perception.ros.calibration import calibration_from_tf, load_calibration_yaml
from perception.ros.camera_trigger import LIDAR_TIMEOUT_S, CameraTrigger, trigger_camera
from perception.ros.errors import MessageError
from perception.ros.node_status import node_statuses
from perception.ros.outputs import diagnostics_message
from perception.ros.stamps import header_stamp_ns
from perception.runtime import Predictor, add_fallback_models
from ros_nodes.common import BadParameter, RCLError, declare_parameters, run_node

PARAMETERS = {
    # name: (default, description)
    "config": ("", "model config file (e.g. configs/tiny.py); required"),
    "checkpoint": ("", "trained checkpoint (.pth, loaded with weights_only=True); required"),
    "cfg_options": ("", "config overrides, space separated key=value (e.g. 'model.score_threshold=0.1')"),
    "device": ("cpu", "'cpu' or 'cuda' (fp16 autocast)"),
    "bf16": (False, "cpu: bf16 autocast where the CPU has native bf16 (AVX512-BF16 / AMX): faster, outputs differ "
                    "slightly (docs/benchmarks.md); a CPU without it runs fp32, with a warning"),
    "warm_up": (True, "run one synthetic frame through the model(s) at start, before subscribing: the first real "
                      "frame then does not pay the one-off start-up costs (numba compilation, allocator, cuDNN)"),
    "no_lidar_config": ("", "fallback: a camera-only model config (e.g. configs/tiny_camera.py) that runs the frames "
                            "without LiDAR points instead of the main model; empty: none"),
    "no_lidar_checkpoint": ("", "checkpoint of no_lidar_config"),
    "no_camera_config": ("", "fallback: a LiDAR-only model config (e.g. configs/tiny_lidar.py) that runs the frames "
                             "without any usable camera instead of the main model; empty: none"),
    "no_camera_checkpoint": ("", "checkpoint of no_camera_config"),
    "calibration": ("", "rig calibration YAML (LiDAR -> camera and LiDAR -> ego, see perception/ros/calibration.py); "
                        "empty: read /tf_static through tf2_ros (ROS installs only)"),
    "calibration_wait": (0.0, "s: wait this long at start for the calibration file to appear (a sensor_player "
                              "started alongside writes it); 0 = it must exist"),
    "lidar_topic": ("/LIDAR_TOP", "PointCloud2 input; each message triggers one inference"),
    "camera_topic_prefix": ("/", "camera topics are <prefix><CAM>/image_rect_compressed (or /image_rect for "
                                 "raw_cameras) and <prefix><CAM>/camera_info"),
    "cameras": ("", "space-separated camera names to subscribe; empty: every camera the model uses"),
    "raw_cameras": ("", "space-separated cameras that publish sensor_msgs/Image instead of CompressedImage"),
    "sensor_qos": ("sensor_data", "QoS of the LiDAR and image subscriptions: 'sensor_data' (best effort, depth 5) "
                                  "or 'reliable' (depth 10: no loss of large messages on a busy link, e.g. bag "
                                  "replay)"),
    "odom_topic": ("/odom", "nav_msgs/Odometry: ego poses for sweep and camera motion compensation"),
    "ego_frame": ("base_link", "frame of the ego-frame occupancy output (and of the tf lookup)"),
    "score_threshold": (0.3, "boxes below this score are not published"),
    "max_camera_lidar_delay": (MAX_CAMERA_LIDAR_DELAY_S, "s: a camera image further than this from the LiDAR stamp "
                                                         "is missing for the frame"),
    "max_input_wait": (0.1, "s (wall): longest wait for an ego pose or camera image of the LiDAR stamp"),
    "lidar_timeout": (LIDAR_TIMEOUT_S, "s (wall): no LiDAR message for this long is reported as an error on "
                                       "diagnostics; (message stamps) after this long without one, lidar_down_camera "
                                       "triggers the frames"),
    "lidar_down_camera": ("auto", "while the LiDAR is silent (lidar_timeout), each image of this camera triggers a "
                                  "frame without LiDAR points (run by the no_lidar fallback model when set); 'auto': "
                                  "the first subscribed camera; 'none': outputs stop with the LiDAR"),
    "diagnostics_period": (1.0, "s: diagnostics are published per frame and at least this often"),
    "publish_occupancy_markers": (False, "also publish the occupancy as a CUBE_LIST MarkerArray for RViz (~0.1 s per "
                                          "frame for a full scene: off by default, the PointCloud2 carries the same)"),
}
NUMERIC = ("calibration_wait", "score_threshold", "max_camera_lidar_delay", "max_input_wait", "lidar_timeout",
           "diagnostics_period")


class FrameSlot:
    """One waiting LiDAR frame; a newer one replaces it (newest wins). ``dropped`` counts the replaced ones."""

    def __init__(self):
        self._item = None
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item):
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def take(self, timeout):
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item


def load_predictor(p):
    """The :class:`Predictor` of the ``config`` / ``checkpoint`` / ``device`` parameters, with the fallback models
    of ``no_lidar_*`` / ``no_camera_*`` (:class:`BadParameter`)."""
    for key in ("config", "checkpoint"):
        if not p[key]:
            raise BadParameter(f"parameter {key} is required (--ros-args -p {key}:=PATH)")
        if not os.path.isfile(p[key]):
            raise BadParameter(f"parameter {key}: file not found: {p[key]}")
    if p["device"] not in ("cpu", "cuda"):
        raise BadParameter(f"parameter device must be 'cpu' or 'cuda', got {p['device']!r}")
    with warnings.catch_warnings():  # only the bf16 fallback's warning: PerceptionNode logs that one itself
        warnings.filterwarnings("ignore", message="Predictor: bf16 requested")
        try:
            predictor = Predictor(load_config(p["config"], p["cfg_options"].split()), p["checkpoint"],
                                  device=p["device"], bf16=p["bf16"])
        except Exception as e:  # noqa: BLE001 - any start-up failure is one clear line, never a traceback loop
            raise BadParameter(f"{type(e).__name__}: {e}") from e
        for kind, prefix in (("no_lidar", "no_lidar"), ("no_cameras", "no_camera")):
            config, checkpoint = p[f"{prefix}_config"], p[f"{prefix}_checkpoint"]
            if bool(config) != bool(checkpoint):
                raise BadParameter(f"parameters {prefix}_config and {prefix}_checkpoint go together: give both or "
                                   f"neither")
            try:
                add_fallback_models(predictor, {kind: (config, checkpoint)}, device=p["device"], bf16=p["bf16"])
            except Exception as e:  # noqa: BLE001
                raise BadParameter(f"parameters {prefix}_config / {prefix}_checkpoint: {type(e).__name__}: {e}") from e
    return predictor


def tf_buffer(node):
    """A tf2 buffer fed by /tf and /tf_static (a ROS install), or None where tf2_ros is not installed (PyPI)."""
    try:
        import tf2_ros  # optional: a ROS install's tf2 (not on PyPI)
    except ImportError:
        return None
    buffer = tf2_ros.Buffer()
    node._m3_tf_listener = tf2_ros.TransformListener(buffer, node)  # kept alive with the node
    return buffer


class PerceptionNode:
    """Subscriptions, the inference worker and the publishers around one :class:`PerceptionBridge`.

    Extrinsics come from the ``calibration`` YAML, or, when it is empty and tf2_ros is installed, from tf
    (LiDAR frame = the cloud's ``frame_id``, camera frames = the camera names, ``ego_frame``); until tf has
    them, messages are counted as waiting for calibration."""

    def __init__(self, node):
        self.node, self.log = node, node.get_logger()
        self.p = p = declare_parameters(node, PARAMETERS, NUMERIC)
        if p["sensor_qos"] not in ("sensor_data", "reliable"):
            raise BadParameter(f"parameter sensor_qos must be 'sensor_data' or 'reliable', got {p['sensor_qos']!r}")
        self.predictor = load_predictor(p)
        if self.predictor.precision_note:
            self.log.warning(f"parameter bf16: {self.predictor.precision_note}")
        model_cams = self.predictor.cameras if self.predictor.model.camera_encoder is not None else ()
        unknown = [c for c in p["cameras"].split() if c not in model_cams]
        if unknown:
            raise BadParameter(f"parameter cameras: {unknown} are not cameras of the model {list(model_cams)}")
        self.cameras = tuple(p["cameras"].split()) or tuple(model_cams)
        try:
            self.trigger = CameraTrigger(trigger_camera(p["lidar_down_camera"], self.cameras), p["lidar_timeout"])
        except ValueError as e:
            raise BadParameter(f"parameter {e}") from e
        self.bridge, self.tf = None, None
        self.errors = InputErrors()
        if p["calibration"]:
            self._build_bridge(self._calibration_from_yaml())
        else:
            self.tf = tf_buffer(node)
            if self.tf is None:
                raise BadParameter("parameter calibration is required here: tf2_ros is not installed, so the "
                                   "extrinsics cannot come from /tf_static (write one with sensor_player's "
                                   "calibration_out)")
            self.lidar_frame = None  # learnt from the first cloud
            node.create_timer(0.5, self._try_tf)
        if p["warm_up"]:  # after every parameter check, before the first subscription
            self._warm_up()
        self.slot = FrameSlot()
        self.stats = {"received": 0, "processed": 0, "failed": 0, "camera_triggered": 0}
        self.last_lidar_wall = None
        self.last = {}  # the newest frame's status, timings and notes, for diagnostics
        self._publishers = {}
        reliable = QoSProfile(depth=50)
        sensor_qos = qos_profile_sensor_data if p["sensor_qos"] == "sensor_data" else QoSProfile(depth=10)
        node.create_subscription(PointCloud2, p["lidar_topic"], self._on_lidar, sensor_qos)
        node.create_subscription(Odometry, p["odom_topic"], self._guard("odometry", lambda b, m: b.on_odometry(m)),
                                 reliable)
        raw = set(p["raw_cameras"].split())
        for cam in self.cameras:
            base = f"{p['camera_topic_prefix']}{cam}"
            compressed = cam not in raw
            node.create_subscription(CompressedImage if compressed else Image,
                                     base + ("/image_rect_compressed" if compressed else "/image_rect"),
                                     self._guard(cam, lambda b, m, c=cam, z=compressed: self._on_image(b, c, m, z)),
                                     sensor_qos)
            node.create_subscription(CameraInfo, base + "/camera_info",
                                     self._guard(cam, lambda b, m, c=cam: b.on_camera_info(c, m)), reliable)
        self.diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        node.create_timer(p["diagnostics_period"], self.publish_diagnostics)
        self.running = True
        self.worker = threading.Thread(target=self._work, name="perception_worker", daemon=True)
        self.worker.start()

    def _warm_up(self):
        try:
            seconds = self.predictor.warm_up()
        except Exception as e:  # noqa: BLE001 - a model that cannot run one frame is a start-up failure
            raise BadParameter(f"parameter warm_up: the warm-up frame failed: {type(e).__name__}: {e}") from e
        self.log.info(f"warm-up frame through the model(s): {seconds:.1f} s")

    # ------------------------------------------------------------------ calibration
    def _calibration_from_yaml(self):
        p = self.p
        deadline = time.monotonic() + p["calibration_wait"]
        while not os.path.isfile(p["calibration"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            return load_calibration_yaml(p["calibration"])
        except (OSError, ValueError) as e:
            raise BadParameter(f"parameter calibration: {e}") from e

    def _build_bridge(self, calibration):
        p = self.p
        try:
            self.bridge = PerceptionBridge(self.predictor, calibration, self.cameras, p["max_camera_lidar_delay"],
                                           p["score_threshold"], p["ego_frame"], p["publish_occupancy_markers"])
        except ValueError as e:
            raise BadParameter(f"parameter calibration: {e}") from e
        self.log.info(f"model {p['config']} ({', '.join(self.predictor.tasks)}) with {p['checkpoint']} on "
                      f"{p['device']}; cameras {list(self.bridge.cameras) or 'none'}, "
                      f"{self.predictor.num_sweeps} past sweeps per frame")

    def _try_tf(self):
        if self.bridge is not None or self.lidar_frame is None:
            return
        try:
            calibration = calibration_from_tf(self.tf, self.lidar_frame, self.p["ego_frame"],
                                              {c: c for c in self.cameras})
            self._build_bridge(calibration)
        except (LookupError, BadParameter) as e:  # not on tf yet: try again
            self._bad_input("calibration", "tf_lookup", str(e))

    # ------------------------------------------------------------------ executor thread: convert only
    def _guard(self, source, handler):
        """A subscription callback ``handler(bridge, msg)`` that never raises: a bad message is counted and
        logged once per kind; before the calibration is known messages are counted as waiting for it."""
        def callback(msg):
            if self.bridge is None:
                self.errors.add(f"{source}: waiting for calibration", "no extrinsics from tf yet")
                return
            try:
                handler(self.bridge, msg)
            except (MessageError, ValueError) as e:
                self._bad_input(source, getattr(e, "kind", "invalid"), str(e))
        return callback

    def _bad_input(self, source, kind, text):
        if self.errors.add(f"{source}: {kind}", text):
            self.log.warning(f"{source}: {text} (further '{kind}' errors are counted on /diagnostics)")

    def _on_lidar(self, msg):
        self.last_lidar_wall = time.monotonic()
        self.stats["received"] += 1
        if self.bridge is None:  # tf calibration pending: learn the LiDAR frame, skip the frame
            self.lidar_frame = msg.header.frame_id
            self.errors.add("lidar: waiting for calibration", "no extrinsics from tf yet")
            return
        try:
            stamp, points, frame_id = self.bridge.on_pointcloud(msg)
        except (MessageError, ValueError) as e:
            self._bad_input("lidar", getattr(e, "kind", "invalid"), str(e))
            return
        self.trigger.on_lidar(stamp)
        self.slot.put((stamp, points, frame_id, time.monotonic()))

    def _on_image(self, bridge, camera, msg, compressed):
        """An image into the bridge; while the LiDAR is silent, the trigger camera's images trigger frames. Silent
        by the message stamps (as replay decides) and by the wall clock: a camera whose clock runs ahead of the
        LiDAR's must not trigger frames while the LiDAR is fine."""
        bridge.on_image(camera, msg, compressed)
        stamp = header_stamp_ns(msg)
        idle = None if self.last_lidar_wall is None else time.monotonic() - self.last_lidar_wall
        if self.trigger.fires(camera, stamp) and (idle is None or idle > self.p["lidar_timeout"]):
            self.stats["camera_triggered"] += 1
            self.slot.put((stamp, None, None, time.monotonic()))  # points None: a frame without LiDAR

    # ------------------------------------------------------------------ worker thread: infer and publish
    def _work(self):
        while self.running:
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            stamp, points, frame_id, received = item
            deadline = received + self.p["max_input_wait"]
            while self.bridge.assembler.waiting_on(stamp) and time.monotonic() < deadline:
                time.sleep(0.002)
            try:
                messages, pred, status, timings = (self.bridge.process_without_lidar(stamp) if points is None
                                                   else self.bridge.process(stamp, points, frame_id))
                for key, msg in messages.items():
                    self._publisher(key, msg).publish(msg)
            except Exception as e:  # noqa: BLE001 - one bad frame never stops the node
                if not self.node.context.ok():  # Ctrl-C / SIGTERM while publishing: shutting down, not a bad frame
                    break
                self.stats["failed"] += 1
                self._bad_input("inference", type(e).__name__, f"frame at {stamp} ns: {e}")
                continue
            self.stats["processed"] += 1
            if not self.node.context.ok():
                break
            timings["input_age"] = (time.monotonic() - received) * 1e3  # receipt -> published, ms
            self.last = {"status": status, "timings": timings, "notes": pred.warnings, "model": pred.model}
            self.publish_diagnostics()

    def _publisher(self, key, msg):
        if key not in self._publishers:
            self._publishers[key] = self.node.create_publisher(type(msg), output_topic(key), 10)
        return self._publishers[key]

    # ------------------------------------------------------------------ diagnostics
    def publish_diagnostics(self):
        try:
            self.diag_pub.publish(diagnostics_message(time.time_ns(), self.node.get_name(), self.diagnostics()))
        except RCLError as e:  # a write the middleware refused (a late subscriber): never fatal, the next one is fresh
            if self.node.context.ok():
                self.node.get_logger().warning(f"/diagnostics not published: {e}", throttle_duration_sec=10.0)

    def diagnostics(self):
        """Three statuses: inputs (sensors present, stale, malformed), latency (ms per stage), frames."""
        idle = None if self.last_lidar_wall is None else time.monotonic() - self.last_lidar_wall
        return node_statuses(idle, self.p["lidar_timeout"], self.last.get("status"), self.last.get("notes", []),
                             self.last.get("timings", {}), self.errors, dict(self.stats, dropped=self.slot.dropped),
                             self.predictor.precision, self.last.get("model", "main"))

    def stop(self):
        self.running = False
        self.worker.join(timeout=5.0)


def main(args=None):
    """Console script ``perception_node``: runs until Ctrl-C (0); a bad parameter exits 2 with one log line."""
    return run_node("perception_node", PerceptionNode, args)


if __name__ == "__main__":
    sys.exit(main())
