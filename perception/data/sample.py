"""The :class:`Sample`: one LiDAR keyframe with its cameras, calibration and ground truth.

Every array states its frame and units. Frames (see ``perception.constants``):
LiDAR (x right, y forward, z up), ego (x forward, y left, z up), global (map), camera (x right, y down,
z forward). All transforms are 4x4 float64 ``a2b`` matrices (``p_b = a2b @ p_a``).

Box convention (``boxes``): ``(M, 9)`` float32 rows ``x, y, z, l, w, h, yaw, vx, vy`` in the LiDAR frame
of this keyframe: ``x, y, z`` the box's gravity (geometric) centre in metres; ``l, w, h`` the size along the
box's own x, y, z axes (length along the heading); ``yaw`` radians counter-clockwise about +z from the LiDAR
x axis to the box's heading; ``vx, vy`` velocity in m/s in the LiDAR frame (NaN where unknown). This is the
mmdet3d >= 1.0 ``LiDARInstance3DBoxes`` convention plus velocity.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from perception.data.io import load_image, load_points_with_sweeps
from perception.data.occupancy import load_occ3d


@dataclass
class SweepInfo:
    """One LiDAR sweep to merge into a keyframe.

    ``sweep2lidar`` maps the sweep's points (its LiDAR frame at its own timestamp) into this keyframe's
    LiDAR frame, through the ego poses at both timestamps (motion compensation).
    ``time_lag`` = keyframe timestamp - sweep timestamp, in seconds (>= 0).
    """

    path: str
    timestamp: int  # microseconds
    sweep2lidar: np.ndarray
    time_lag: float


@dataclass
class CameraView:
    """One camera image of the sample and its calibration.

    - ``intrinsics``: 3x3 pinhole matrix (pixels) of the image as loaded.
    - ``lidar2cam``: 4x4, keyframe LiDAR frame (LiDAR timestamp) -> camera frame (camera timestamp),
      including the ego motion between the two timestamps (through both ego poses).
    - ``lidar2img``: 4x4, ``[[K, 0], [0, 1]] @ lidar2cam``; ``u, v = (P @ p)[:2] / (P @ p)[2]`` in pixels.
    - ``cam2ego``: 4x4, camera -> ego at the camera timestamp; ``ego2global``: ego pose at the camera timestamp.
    - ``timestamp``: microseconds.
    """

    name: str
    path: str
    intrinsics: np.ndarray
    lidar2cam: np.ndarray
    timestamp: int = 0
    cam2ego: np.ndarray | None = None
    ego2global: np.ndarray | None = None
    sample_data_token: str = ""
    sample_token: str = ""  # the keyframe this view belongs to (named in load errors)
    _image: np.ndarray | None = field(default=None, repr=False)

    @property
    def lidar2img(self) -> np.ndarray:
        K = np.eye(4)
        K[:3, :3] = self.intrinsics
        return K @ self.lidar2cam

    @property
    def image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB: the in-memory image when one was given (live frames), else read from
        ``path`` on each access. Not cached, so a dataset holding thousands of Samples holds no pixels."""
        if self._image is not None:
            return self._image

        return load_image(self.path, sample_token=self.sample_token)


@dataclass
class Sample:
    """One keyframe. Sensor data load lazily; ground truth may be ``None`` when absent.

    Fields:
    - ``token``: nuScenes sample token; ``scene_name``, ``timestamp`` (microseconds, LiDAR keyframe).
    - ``scene_token``: nuScenes scene token; ``lidar_token``: the LIDAR_TOP ``sample_data`` token of the
      keyframe (both name the nuScenes-Occupancy label file); ``""`` when the info file lacks them.
    - ``lidar_path``: the keyframe ``.pcd.bin`` (float32 x 5: x, y, z, intensity, ring; LiDAR frame).
    - ``sweeps``: earlier sweeps, newest first (see :class:`SweepInfo`).
    - ``lidar2ego``, ``ego2global``: 4x4 at the LiDAR timestamp.
    - ``cameras``: camera name -> :class:`CameraView` (any subset of the six).
    - ``boxes`` ``(M, 9)`` float32 (see module doc), ``labels`` ``(M,)`` int64 index into
      ``DETECTION_CLASSES``, ``num_lidar_pts`` ``(M,)`` int64, ``instance_tokens`` list of str.
    - ``map_location``: nuScenes map name (e.g. ``singapore-onenorth``), for BEV map ground truth.
    - ``occ_path``: Occ3D ``labels.npz`` (ego frame, see ``perception.data.occupancy``), or ``None``.
    - ``num_sweeps``: how many sweeps :attr:`points` merges (default 10).
    """

    token: str
    lidar_path: str
    lidar2ego: np.ndarray
    ego2global: np.ndarray
    timestamp: int = 0
    scene_name: str = ""
    scene_token: str = ""
    lidar_token: str = ""
    sweeps: list[SweepInfo] = field(default_factory=list)
    cameras: dict[str, CameraView] = field(default_factory=dict)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 9), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    num_lidar_pts: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    instance_tokens: list[str] = field(default_factory=list)
    map_location: str | None = None
    dataroot: str | None = None
    occ_path: str | None = None
    num_sweeps: int = 10
    # Hook set by loaders that can rasterize BEV map GT (needs the map expansion); see ``bev_map``.
    _bev_map_fn: Callable | None = field(default=None, repr=False)

    @property
    def points(self) -> np.ndarray:
        """``(N, 5)`` float32 in the keyframe LiDAR frame: x, y, z (m), intensity (0-255), time lag (s).

        The keyframe plus up to ``num_sweeps`` motion-compensated sweeps; with ``num_sweeps == 0`` only
        the keyframe is returned, as ``(N, 4)`` (no time-lag channel).
        """
        return load_points_with_sweeps(self, self.num_sweeps)

    @property
    def lidar2global(self) -> np.ndarray:
        return self.ego2global @ self.lidar2ego

    @property
    def has_bev_map(self) -> bool:
        """Whether :attr:`bev_map` can be rasterized (a map expansion was found), without rasterizing it."""
        return self._bev_map_fn is not None

    @property
    def bev_map(self) -> np.ndarray | None:
        """``(6, 200, 200)`` uint8 {0, 1} BEV map GT in the LiDAR frame (``BEV_MAP_CLASSES``, ``BEV_MAP_GRID``,
        indexed ``[class, ix, iy]``), or ``None`` when no map expansion is available."""
        return None if self._bev_map_fn is None else self._bev_map_fn(self)

    @property
    def occupancy(self):
        """Occ3D ground truth (:class:`perception.data.occupancy.Occupancy`, ego frame) or ``None``."""
        if self.occ_path is None:
            return None

        return load_occ3d(self.occ_path)
