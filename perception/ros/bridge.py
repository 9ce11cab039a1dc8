"""ROS 2 messages in, ROS 2 messages out: the part of the perception node that does not need a running ROS
graph, so the node (``ros_nodes/perception_node.py``) and offline log replay run the very same code.

Flow for one LiDAR message::

    PointCloud2 --pointcloud2_to_points--> (N, 4) LiDAR frame --FrameAssembler--> Frame (sweeps, cameras)
        --Predictor.predict--> Prediction --prediction_messages--> MarkerArray, OccupancyGrid x 6, PointCloud2 ...

Camera images (``Image`` / ``CompressedImage``, RGB after conversion) wait in the assembler with the K of
their latest ``CameraInfo``; ``Odometry`` gives the ego poses (ego -> odometry frame) for motion
compensation. A bad message raises :class:`perception.ros.errors.MessageError`; a caller counts them by
kind in an :class:`InputErrors`, logs each kind once and reports all of them (diagnostics, replay summary).

Output frames: boxes and BEV map in the input cloud's frame (its ``header.frame_id``: the LiDAR frame);
occupancy in ``ego_frame`` when the grid is ego-frame (Occ3D), else the LiDAR frame. Stamps: the LiDAR stamp.
"""

import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from perception.constants import MAX_CAMERA_LIDAR_DELAY_S
from perception.ros.errors import MessageError
from perception.ros.image import camera_info_to_intrinsics, compressed_to_rgb, image_to_rgb
from perception.ros.outputs import (
    bev_to_occupancy_grids,
    boxes_to_detection3d_array,
    boxes_to_markers,
    occupancy_to_markers,
    occupancy_to_pointcloud2,
)
from perception.ros.pointcloud import pointcloud2_to_points_with_stats
from perception.ros.stamps import header_stamp_ns, make_header
from perception.ros.transforms import odometry_to_matrix
from perception.runtime.assembler import FrameAssembler

# Output keys -> topic names relative to the node (``perception/...``), also the replay's output topics.
OUTPUT_TOPICS = {
    "markers": "perception/markers",
    "detections": "perception/detections",
    "occupancy": "perception/occupancy",
    "occupancy_markers": "perception/occupancy_markers",
}
BEV_TOPIC = "perception/bev/{}"  # one OccupancyGrid per BEV map class


@dataclass
class InputErrors:
    """Bad input counted by kind (``MessageError.kind``); ``last`` keeps the newest message of each kind."""

    counts: Counter = field(default_factory=Counter)
    last: dict = field(default_factory=dict)

    def add(self, kind, message) -> bool:
        """Count one; True the first time this kind is seen (log it then, count it afterwards)."""
        self.counts[kind] += 1
        self.last[kind] = message
        return self.counts[kind] == 1


class PerceptionBridge:
    """Converts incoming messages into the :class:`FrameAssembler` and predictions into outgoing messages.

    ``predictor``: a :class:`perception.runtime.Predictor`; ``calibration``: a
    :class:`perception.ros.calibration.RigCalibration` (or any object with ``lidar2ego`` and ``lidar2cam``);
    ``cameras``: names of the cameras fed (default: the model's, those the calibration knows).
    """

    def __init__(self, predictor, calibration, cameras=None, max_camera_lidar_delay_s=MAX_CAMERA_LIDAR_DELAY_S,
                 score_threshold=0.3, ego_frame="base_link", occupancy_markers=True):
        self.predictor = predictor
        model_cams = predictor.cameras if predictor.model.camera_encoder is not None else ()
        self.cameras = tuple(c for c in (cameras if cameras is not None else model_cams) if c in model_cams)
        missing = [c for c in self.cameras if c not in calibration.lidar2cam]
        if missing:
            raise ValueError(f"calibration has no lidar2cam for cameras {missing} "
                             f"(has {sorted(calibration.lidar2cam)})")
        if predictor.needs_lidar2ego and calibration.lidar2ego is None:
            raise ValueError("calibration has no lidar2ego: the model predicts occupancy in the ego frame (Occ3D); "
                             "add lidar2ego to the calibration YAML (or publish LiDAR -> base_link on /tf_static)")
        self.assembler = FrameAssembler(calibration, self.cameras, predictor.num_sweeps, max_camera_lidar_delay_s)
        self.score_threshold = float(score_threshold)
        self.ego_frame = ego_frame
        # frame of the outputs of frames without a LiDAR message (CameraTrigger): the newest cloud's frame_id
        self.lidar_frame = getattr(calibration, "lidar_frame", None) or "LIDAR_TOP"
        self.occupancy_markers = bool(occupancy_markers)
        self.intrinsics = {}  # camera -> (K, (width, height)) of its latest CameraInfo
        self._pending_images = {}  # camera -> (stamp, image) received before any CameraInfo
        self.nan_points_dropped = 0
        self.last_frame = None  # the Frame of the newest process() call

    # ------------------------------------------------------------------ inputs (raise MessageError)
    def on_pointcloud(self, msg):
        """A LiDAR ``PointCloud2`` -> ``(stamp_ns, (N, 4) points, frame_id)``; the sweep is kept for later frames."""
        stamp = header_stamp_ns(msg)
        points, dropped = pointcloud2_to_points_with_stats(msg)
        self.nan_points_dropped += dropped
        self.assembler.add_sweep(stamp, points)
        self.lidar_frame = msg.header.frame_id or self.lidar_frame
        return stamp, points, msg.header.frame_id

    def on_camera_info(self, name, msg):
        self.intrinsics[name] = camera_info_to_intrinsics(msg)
        pending = self._pending_images.pop(name, None)
        if pending is not None:  # the image came first (topics are not ordered with each other)
            self._add_image(name, *pending)

    def on_image(self, name, msg, compressed):
        """An ``Image`` (``compressed`` False) or ``CompressedImage`` of camera ``name``. Before the camera's
        first ``CameraInfo`` the newest image waits for it."""
        image = compressed_to_rgb(msg) if compressed else image_to_rgb(msg)
        if name not in self.intrinsics:
            self._pending_images[name] = (header_stamp_ns(msg), image)
            return
        self._add_image(name, header_stamp_ns(msg), image)

    def _add_image(self, name, stamp, image):
        K, (width, height) = self.intrinsics[name]
        if (image.shape[1], image.shape[0]) != (width, height):
            raise MessageError(f"camera {name}: image is {image.shape[1]}x{image.shape[0]} but its CameraInfo says "
                               f"{width}x{height}", "image_size")
        self.assembler.add_camera(name, stamp, image, K)

    def on_odometry(self, msg):
        stamp, ego2world = odometry_to_matrix(msg)
        self.assembler.add_pose(stamp, ego2world)

    # ------------------------------------------------------------------ one frame
    def process(self, stamp_ns, points, frame_id, past_sweeps=True):
        """Assemble, predict and convert one LiDAR frame. Returns ``(messages, prediction, status, timings_ms)``:
        ``messages`` maps output keys (:data:`OUTPUT_TOPICS`, ``bev/<class>``) to messages stamped ``stamp_ns``."""
        t0 = time.perf_counter()
        frame, status = self.assembler.assemble(stamp_ns, points, token=f"{frame_id}@{stamp_ns}",
                                                past_sweeps=past_sweeps)
        self.last_frame = frame  # what the model saw (log replay renders it)
        t1 = time.perf_counter()
        with warnings.catch_warnings():  # the notes travel in Prediction.warnings / diagnostics instead
            warnings.simplefilter("ignore")
            pred = self.predictor.predict(frame)
        t2 = time.perf_counter()
        messages = self.prediction_messages(pred, stamp_ns, frame_id)
        t3 = time.perf_counter()
        timings = {"assemble": (t1 - t0) * 1e3, **pred.timings_ms, "outputs": (t3 - t2) * 1e3}
        return messages, pred, status, timings

    def process_without_lidar(self, stamp_ns):
        """:meth:`process` for a frame triggered by a camera while the LiDAR is silent
        (:class:`perception.ros.camera_trigger.CameraTrigger`): no points, no past sweep, the cameras nearest
        ``stamp_ns``; outputs in :attr:`lidar_frame`."""
        return self.process(stamp_ns, np.zeros((0, 4), np.float32), self.lidar_frame, past_sweeps=False)

    def prediction_messages(self, pred, stamp_ns, lidar_frame):
        """A :class:`Prediction` -> output messages (see module doc for frames)."""
        lidar_header = make_header(stamp_ns, lidar_frame)
        out = {"markers": boxes_to_markers(pred, lidar_header, self.score_threshold)}
        detections = boxes_to_detection3d_array(pred, lidar_header, self.score_threshold)
        if detections is not None:  # vision_msgs is installed (a ROS install; not on PyPI)
            out["detections"] = detections
        if pred.bev_probs is not None:
            for name, grid in bev_to_occupancy_grids(pred.bev_probs, lidar_header):
                out[f"bev/{name}"] = grid
        if pred.occ_labels is not None:
            head = self.predictor.model.head
            occ_frame = self.ego_frame if head.occ.frame == "ego" else lidar_frame
            occ_header = make_header(stamp_ns, occ_frame)
            out["occupancy"] = occupancy_to_pointcloud2(pred.occ_labels, head.occ.grid, head.occ.free_index, occ_header)
            if self.occupancy_markers:
                out["occupancy_markers"] = occupancy_to_markers(pred.occ_labels, head.occ.grid, head.occ.free_index,
                                                                occ_header)
        return out


def output_topic(key):
    """The topic (relative to the node) of an output key of :meth:`PerceptionBridge.prediction_messages`."""
    return BEV_TOPIC.format(key.split("/", 1)[1]) if key.startswith("bev/") else OUTPUT_TOPICS[key]
