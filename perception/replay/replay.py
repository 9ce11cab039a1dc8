"""The replay loop: input messages -> :class:`perception.ros.bridge.PerceptionBridge` (the perception node's
own conversion, sweep accumulation, camera staleness rule, Predictor and output messages) -> a ROS 2 bag.

Order and determinism. Messages are read in log-time order. The node waits briefly for the poses and
images of a LiDAR stamp; replay does the deterministic equivalent: a LiDAR message is held until the input
has moved ``lookahead_s`` (>= ``max_camera_lidar_delay``) past its stamp, so every message stamped up to
``stamp + max_camera_lidar_delay`` has been fed first, then the frame is processed. Later LiDAR messages
wait in stamp order (they only matter to later frames), so out-of-order arrival within the window is
harmless. Every LiDAR message is processed (no dropping offline); outputs carry the input stamps (while the
LiDAR is silent, camera images trigger frames, as in the node: :mod:`perception.ros.camera_trigger`).

Bad input never stops a replay: a message that cannot be converted is counted by ``topic: kind`` with one
warning naming the topic and stamp; a LiDAR frame that cannot be processed is skipped and counted by reason
(``bad_pointcloud``, ``duplicate``, ``out_of_order``, ``no_calibration``, ``inference_error``). A truncated
input ends the replay at the cut; the output written so far is closed and readable.

The rig calibration comes from ``--calibration`` or the input's tf (:mod:`perception.replay.tf_rig`);
``--copy-inputs`` writes the inputs beside the outputs (:mod:`perception.replay.copy_inputs`).
"""

import heapq
import json
import time
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from perception.replay import foxglove
from perception.replay.copy_inputs import copy_input
from perception.replay.options import ReplayOptions
from perception.replay.summary import ReplayStats
from perception.replay.tf_rig import TfTree, transforms_of
from perception.replay.topics import resolve
from perception.ros.bridge import PerceptionBridge, output_topic
from perception.ros.camera_trigger import CameraTrigger, trigger_camera
from perception.ros.errors import MessageError
from perception.ros.stamps import header_stamp_ns


class _CameraTriggered(NamedTuple):  # pending-frame entry of a frame triggered by an image (LiDAR silent)
    topic: str


class Replayer:
    """One replay of ``source`` through ``predictor`` into ``writer`` (a :class:`BagWriter` or None)."""

    def __init__(self, predictor, source, writer, options=None, sinks=(), log=print):
        self.predictor = predictor
        self.source = source
        self.writer = writer
        self.opts = options or ReplayOptions()
        self.sinks = list(sinks)
        self.log = log
        self.stats = ReplayStats()
        self.bridge = None
        self.model_cameras = predictor.cameras if predictor.model.camera_encoder is not None else ()
        self.roles = resolve(source.topics(), self.opts.topics, self.model_cameras)
        for note in self.roles.notes:
            self._warn(note)
        self.uses_odometry = any(r == "odometry" for r, _ in self.roles.by_topic.values())
        imaged = {cam for role, cam in self.roles.by_topic.values() if role in ("image", "raw_image")}
        camera = trigger_camera(self.opts.lidar_down_camera, [c for c in self.model_cameras if c in imaged])
        self.trigger = CameraTrigger(camera, self.opts.lidar_timeout_s)  # frames while the LiDAR is silent
        self.tf = TfTree(self.opts.ego_frame)  # static extrinsics of the input's tf messages
        self.camera_frames = {}  # camera -> frame_id of its images
        self.lidar_frame = None
        self.samples = {}  # LiDAR stamp ns -> sample info dict (from /nuscenes/sample)
        self._waiting = []  # converted inputs received before the bridge exists: (kind, camera, view, topic)
        self._pending = []  # heap of (stamp, seq, InputMessage or _CameraTriggered, message) frames waiting
        self._pending_stamps, self._done_stamps = set(), set()  # LiDAR / camera-triggered frame stamps
        self._last_done = None
        self._seq = 0
        self._lookahead_ns = int(max(self.opts.lookahead_s, self.opts.max_camera_lidar_delay) * 1e9)
        self._read_ms = self._feed_ms = 0.0
        self._copy_ms = 0.0  # --copy-inputs writing between two frames (counted in the frame's 'write')
        self._warned = set()
        self._stop = False

    # ------------------------------------------------------------------ reporting
    def _warn(self, text, kind=None):
        """Print a warning (once per ``kind`` when given) and keep it for the summary."""
        if kind is not None and kind in self._warned:
            return
        self._warned.add(kind)
        self.stats.warnings.append(text)
        self.log(f"warning: {text}")

    def _bad_input(self, topic, stamp, kind, text):
        key = f"{topic}: {kind}"
        self.stats.input_errors[key] += 1
        self._warn(f"{topic} @ {stamp} ns: {text} (further '{kind}' errors on {topic} are counted)", kind=key)

    def _skip(self, reason, topic, stamp, text):
        self.stats.skipped[reason] += 1
        self._warn(f"frame {topic} @ {stamp} ns skipped ({reason}): {text}")

    # ------------------------------------------------------------------ main loop
    def run(self, progress=True):
        """Replay the whole input (or ``max_frames`` LiDAR frames); returns the :class:`ReplayStats`."""
        topics = set(self.roles.by_topic) if not self.opts.copy_inputs else None
        start = time.perf_counter()
        total = self.source.topics()[self.roles.topic_of("lidar")].count
        if self.opts.max_frames is not None and total is not None:
            total = min(total, self.opts.max_frames)
        self.bar = tqdm(total=total, desc="replay", unit="frame", disable=not progress)
        try:
            t_read = time.perf_counter()
            for msg in self.source.messages(topics):
                self._read_ms += (time.perf_counter() - t_read) * 1e3
                self._flush(msg.log_time_ns)
                if self._stop:
                    break
                self._feed(msg)
                t_read = time.perf_counter()
            else:
                self._flush(None)
        finally:
            self.bar.close()
            self.stats.wall_s = time.perf_counter() - start
            for problem in getattr(self.source, "problems", []):
                self._warn(problem)
        return self.stats

    def _flush(self, now_ns):
        """Process the held LiDAR frames whose window has passed (all of them when ``now_ns`` is None)."""
        while self._pending and not self._stop and (
                now_ns is None or self._pending[0][0] + self._lookahead_ns < now_ns):
            stamp, _, item, message = heapq.heappop(self._pending)
            self._pending_stamps.discard(stamp)
            self._process(stamp, item, message)
            if self.opts.max_frames is not None and len(self.stats.frames) >= self.opts.max_frames:
                self._stop = True

    # ------------------------------------------------------------------ inputs
    def _feed(self, item):
        role, camera = self.roles.by_topic.get(item.topic, (None, None))
        if self.opts.copy_inputs and self.writer is not None:
            self._copy(item, role)
        if role is None:
            return
        t0 = time.perf_counter()
        try:
            message = item.message()
        except Exception as e:  # noqa: BLE001 - a payload that does not deserialize
            self._bad_input(item.topic, item.log_time_ns, "undecodable", f"{type(e).__name__}: {e}")
            return
        try:
            if role == "lidar":
                self._add_lidar(item, message)
            elif role == "sample":
                info = json.loads(message.data)
                self.samples[int(info["lidar_stamp_ns"])] = info
            elif role == "tf":
                self._add_transforms(item, message)
            else:
                self._to_bridge(role, camera, self._view(item, role, message), item.topic)
        except (MessageError, ValueError, KeyError, AttributeError, TypeError) as e:
            self._bad_input(item.topic, item.log_time_ns, getattr(e, "kind", type(e).__name__), str(e))
        self._feed_ms += (time.perf_counter() - t0) * 1e3

    @staticmethod
    def _view(item, role, message):
        return foxglove.role_view(message, role, item.msgtype) if item.encoding == "protobuf" else message

    def _add_lidar(self, item, message):
        view = self._view(item, "lidar", message)
        stamp = header_stamp_ns(view)
        if self.lidar_frame is None:
            self.lidar_frame = view.header.frame_id
        if stamp in self._pending_stamps or stamp in self._done_stamps:
            self._skip("duplicate", item.topic, stamp, "a LiDAR message with this stamp was already replayed")
            return
        if self._last_done is not None and stamp <= self._last_done:
            self._skip("out_of_order", item.topic, stamp, f"older than the frame already processed at "
                                                          f"{self._last_done} ns (beyond the look-ahead window)")
            return
        self.trigger.on_lidar(stamp)
        self._push(stamp, item, view)

    def _push(self, stamp, item, view):
        self._pending_stamps.add(stamp)
        self._seq += 1
        heapq.heappush(self._pending, (stamp, self._seq, item, view))

    def _add_camera_trigger(self, camera, view, topic):
        """While the LiDAR is silent, the trigger camera's image becomes a frame of its own (no LiDAR message)."""
        stamp = header_stamp_ns(view)
        new = stamp not in self._pending_stamps and stamp not in self._done_stamps
        if self.trigger.fires(camera, stamp) and new and (self._last_done is None or stamp > self._last_done):
            self._push(stamp, _CameraTriggered(topic), None)

    def _add_transforms(self, item, message):
        for pose in self.tf.add(transforms_of(item, message)):
            if not self.uses_odometry:  # ego poses from tf when the input has no odometry topic
                self._to_bridge("odometry", None, pose, item.topic)

    def _to_bridge(self, role, camera, view, topic):
        if role in ("image", "raw_image") and camera not in self.camera_frames:
            self.camera_frames[camera] = str(view.header.frame_id)
        if role in ("image", "raw_image"):
            self._add_camera_trigger(camera, view, topic)
        if self.bridge is None:
            self._waiting.append((role, camera, view, topic))
            del self._waiting[:-2000]  # bounded: only what precedes the first frame matters
            return
        self._call_bridge(role, camera, view, topic)

    def _call_bridge(self, role, camera, view, topic):
        try:
            if role == "odometry":
                self.bridge.on_odometry(view)
            elif role == "camera_info":
                if camera in self.bridge.cameras:
                    self.bridge.on_camera_info(camera, view)
            elif camera in self.bridge.cameras:
                self.bridge.on_image(camera, view, compressed=role == "image")
        except (MessageError, ValueError) as e:
            stamp = header_stamp_ns(view) if hasattr(view, "header") else "?"
            self._bad_input(topic, stamp, getattr(e, "kind", "invalid"), str(e))

    # ------------------------------------------------------------------ calibration and bridge
    def _ensure_bridge(self, topic, stamp):
        if self.bridge is not None:
            return True

        calib = self.opts.calibration or self.tf.calibration(self.lidar_frame, self.model_cameras,
                                                             self.camera_frames)
        if calib is None:
            self._skip("no_calibration", topic, stamp, f"no LiDAR -> {self.opts.ego_frame} transform for frame "
                                                       f"'{self.lidar_frame}' on /tf_static or /tf yet (or pass "
                                                       f"--calibration)")
            return False
        cameras = [c for c in self.model_cameras if c in calib.lidar2cam]
        for cam in self.model_cameras:
            if cam not in calib.lidar2cam and any(c == cam for _, c in self.roles.by_topic.values()):
                self._warn(f"camera {cam}: no extrinsics (tf {self.opts.ego_frame} -> its frame) in the input: "
                           f"left out of every frame")
        try:
            self.bridge = PerceptionBridge(self.predictor, calib, cameras, self.opts.max_camera_lidar_delay,
                                           self.opts.score_threshold, self.opts.ego_frame, self.opts.occupancy_markers)
        except ValueError as e:
            self._skip("no_calibration", topic, stamp, str(e))
            return False
        waiting, self._waiting = self._waiting, []
        for role, camera, view, t in waiting:
            self._call_bridge(role, camera, view, t)
        return True

    # ------------------------------------------------------------------ one frame
    def _process(self, stamp, item, view):
        timings = {"read": self._read_ms, "feed": self._feed_ms}
        copy_ms, self._read_ms, self._feed_ms, self._copy_ms = self._copy_ms, 0.0, 0.0, 0.0
        self._done_stamps.add(stamp)
        self._last_done = stamp if self._last_done is None else max(self._last_done, stamp)
        if not self._ensure_bridge(item.topic, stamp):
            return
        t0 = time.perf_counter()
        triggered = isinstance(item, _CameraTriggered)  # the LiDAR is silent: a frame of the cameras alone
        try:
            stamp, points, frame_id = ((stamp, np.zeros((0, 4), np.float32), self.bridge.lidar_frame) if triggered
                                       else self.bridge.on_pointcloud(view))
        except (MessageError, ValueError) as e:
            self._skip("bad_pointcloud", item.topic, stamp, str(e))
            return
        self.stats.camera_triggered += triggered
        timings["decode"] = (time.perf_counter() - t0) * 1e3
        try:
            messages, pred, status, stage_ms = (self.bridge.process_without_lidar(stamp) if triggered
                                                else self.bridge.process(stamp, points, frame_id))
        except Exception as e:  # noqa: BLE001 - one bad frame never stops a replay
            self._skip("inference_error", item.topic, stamp, f"{type(e).__name__}: {e}")
            return
        timings.update(stage_ms)
        t1 = time.perf_counter()
        if self.writer is not None:
            for key in sorted(messages):
                self.writer.write("/" + output_topic(key), messages[key], stamp)
        timings["write"] = (time.perf_counter() - t1) * 1e3 + copy_ms
        self.stats.add_frame(timings, status.cameras, pred.model)
        self.bar.update(1)
        self.bar.set_postfix_str(f"{len(self.stats.frames) / max(self.bar.format_dict['elapsed'], 1e-9):.2f} frames/s")
        info = SimpleNamespace(stamp_ns=stamp, topic=item.topic, frame_id=frame_id, points=points, pred=pred,
                               status=status, frame=self.bridge.last_frame, sample=self.samples.get(stamp),
                               lidar2ego=self.bridge.assembler.lidar2ego)
        for sink in self.sinks:
            sink.on_frame(info)

    # ------------------------------------------------------------------ --copy-inputs
    def _copy(self, item, role):
        t0 = time.perf_counter()
        try:
            if not copy_input(self.writer, item, role):
                self._warn(f"--copy-inputs: {item.topic} ({item.msgtype}, {item.encoding}) has no ROS 2 equivalent "
                           f"here: not copied", kind=f"copy {item.topic}")
        except Exception as e:  # noqa: BLE001 - a message that cannot be copied is counted, the replay goes on
            self._bad_input(item.topic, item.log_time_ns, "copy_failed", f"{type(e).__name__}: {e}")
        self._copy_ms += (time.perf_counter() - t0) * 1e3
