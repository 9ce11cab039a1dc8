"""What a replay is told (:class:`ReplayOptions`) and what it tells its sinks (:class:`FrameSink`)."""

from dataclasses import dataclass, field

from perception.constants import MAX_CAMERA_LIDAR_DELAY_S
from perception.replay.topics import TopicOptions
from perception.ros.camera_trigger import LIDAR_TIMEOUT_S


@dataclass
class ReplayOptions:
    topics: TopicOptions = field(default_factory=TopicOptions)
    max_camera_lidar_delay: float = MAX_CAMERA_LIDAR_DELAY_S  # s
    lookahead_s: float = 0.3  # s of input read past a LiDAR stamp before its frame runs
    score_threshold: float = 0.3
    ego_frame: str = "base_link"
    occupancy_markers: bool = False
    copy_inputs: bool = False
    max_frames: int = None
    calibration: object = None  # a RigCalibration (from --calibration); None: from the input's tf
    lidar_timeout_s: float = LIDAR_TIMEOUT_S  # s of message time without LiDAR before lidar_down_camera triggers
    lidar_down_camera: str = "auto"  # CameraTrigger's camera: 'auto' (the first model camera in the input), 'none'


class FrameSink:
    """What to do with each processed frame besides writing it (scoring, rendering): ``on_frame(info)``."""

    def on_frame(self, info):  # pragma: no cover - interface
        pass
