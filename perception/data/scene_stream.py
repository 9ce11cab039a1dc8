"""Every sensor message of one nuScenes scene, in timestamp order (no ROS imports).

:class:`SceneStream` reads one scene of a nuScenes-format dataroot (real or synthetic, through
``nuscenes.NuScenes``) and lists, as :class:`SensorRecord` s sorted by ``(timestamp, channel)``, every
``LIDAR_TOP`` sample_data (keyframes AND sweeps) and every sample_data of the six cameras
(:data:`perception.constants.CAMERA_NAMES`), each with the ego pose of its OWN timestamp. The sensor player
(``ros_nodes/sensor_player.py``) publishes them; a log converter writes them to a bag.

A scene's sample_data are found by walking each channel's ``prev``/``next`` chain from the scene's keyframes
while the records' ``sample_token`` belongs to the scene (in nuScenes the sweeps before the first keyframe
belong to the first sample, those after the last keyframe to the last one).

Files that do not exist (or ``.pcd.bin`` files whose size is not a whole number of points) are not fatal:
the record is skipped and one line naming the file is added to :attr:`SceneStream.problems`.

Calibration: nuScenes calibrates each sensor once per log, so the rig of a scene is static;
:meth:`SceneStream.calibration` gives ``lidar2ego`` and ``lidar2cam = inv(cam2ego) @ lidar2ego`` (no ego
motion between the sensors: for projecting a sweep into an image taken at another time, chain the two ego
poses of the records as ``perception.data.nuscenes_index`` does).
"""

import os
from dataclasses import dataclass

import numpy as np
from nuscenes.nuscenes import NuScenes

from perception.constants import CAMERA_NAMES
from perception.data.io import lidar_file_problem
from perception.geometry import invert, make_transform

LIDAR_CHANNEL = "LIDAR_TOP"
CHANNELS = (LIDAR_CHANNEL,) + tuple(CAMERA_NAMES)


@dataclass
class SensorRecord:
    """One sensor message of a scene: a LiDAR sweep / keyframe or a camera image."""

    timestamp_us: int  # dataset timestamp, microseconds
    channel: str  # 'LIDAR_TOP' or a camera name
    path: str  # absolute path of the .pcd.bin / .jpg
    is_key_frame: bool
    sample_token: str  # the sample_data's sample token (for a sweep: the sample it belongs to)
    sample_data_token: str
    ego2global: np.ndarray  # 4x4 float64, the sample_data's own ego_pose
    sensor2ego: np.ndarray  # 4x4 float64, its calibrated_sensor
    intrinsics: np.ndarray = None  # 3x3 float64 (cameras), None for the LiDAR
    width: int = 0  # image size (cameras), 0 for the LiDAR
    height: int = 0

    @property
    def is_lidar(self):
        return self.channel == LIDAR_CHANNEL

    @property
    def stamp_ns(self):
        """The timestamp in nanoseconds (what a ROS header carries)."""
        return int(self.timestamp_us) * 1000


def _tables_folder(dataroot, version):
    return os.path.join(os.path.abspath(str(dataroot)), version)


def load_nuscenes(dataroot, version="v1.0-trainval"):
    """``NuScenes(version, dataroot, verbose=False)``; ``FileNotFoundError`` naming the tables folder when
    ``<dataroot>/<version>`` does not exist (instead of the devkit's bare assertion)."""
    folder = _tables_folder(dataroot, version)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"nuScenes tables not found: {folder} (check dataroot and version)")

    return NuScenes(version=version, dataroot=os.path.abspath(str(dataroot)), verbose=False)


class SceneStream:
    """The sensor records of one scene. See the module docstring.

    Args:
        dataroot: nuScenes-format dataroot (holds ``<version>/*.json``, ``samples/``, ``sweeps/``).
        version: table folder, e.g. ``v1.0-trainval`` or ``v1.0-mini``.
        scene_name: the scene's ``name`` (e.g. ``scene-0103``); ``None`` or ``''`` = the first scene of the
            scene table.
        nusc: an already loaded ``NuScenes`` of the same dataroot/version (optional; saves reloading).

    Raises ``FileNotFoundError`` naming ``<dataroot>/<version>`` when it does not exist and ``ValueError``
    naming the scene and listing the available ones when the scene is unknown.
    """

    def __init__(self, dataroot, version="v1.0-trainval", scene_name=None, nusc=None):
        self.dataroot = os.path.abspath(str(dataroot))
        self.version = version
        self.nusc = nusc if nusc is not None else load_nuscenes(self.dataroot, version)
        names = [s["name"] for s in self.nusc.scene]
        if not names:
            raise ValueError(f"no scenes in {_tables_folder(self.dataroot, version)}")
        if not scene_name:
            scene_name = names[0]
        if scene_name not in names:
            raise ValueError(f"scene {scene_name!r} not found in {_tables_folder(self.dataroot, version)}; "
                             f"available scenes: {', '.join(names)}")
        self.scene = self.nusc.scene[names.index(scene_name)]
        self.scene_name = scene_name
        self.problems = []  # one line per skipped record, naming the file
        self._samples = self._sample_chain()
        self._records = self._collect()

    # ----------------------------------------------------------------------------------------------------
    @staticmethod
    def scene_names(dataroot=None, version="v1.0-trainval", nusc=None):
        """Names of the scenes of a dataroot (scene table order)."""
        nusc = nusc if nusc is not None else load_nuscenes(dataroot, version)
        return [s["name"] for s in nusc.scene]

    def _sample_chain(self):
        samples, token = [], self.scene["first_sample_token"]
        while token:
            sample = self.nusc.get("sample", token)
            samples.append(sample)
            if token == self.scene["last_sample_token"]:
                break
            token = sample["next"]
        return samples

    def _channel_chain(self, channel, sample_tokens):
        """All sample_data of ``channel`` whose sample belongs to the scene, in chain order."""
        start = next((s["data"][channel] for s in self._samples if channel in s["data"]), None)
        if start is None:
            return []
        get = self.nusc.get
        first = get("sample_data", start)
        back = []
        sd = first
        while sd["prev"]:
            prev = get("sample_data", sd["prev"])
            if prev["sample_token"] not in sample_tokens:
                break
            back.append(prev)
            sd = prev
        chain = back[::-1] + [first]
        sd = first
        while sd["next"]:
            nxt = get("sample_data", sd["next"])
            if nxt["sample_token"] not in sample_tokens:
                break
            chain.append(nxt)
            sd = nxt
        return chain

    def _collect(self):
        sample_tokens = {s["token"] for s in self._samples}
        get = self.nusc.get
        calib_cache, records = {}, []
        for channel in CHANNELS:
            for sd in self._channel_chain(channel, sample_tokens):
                path = os.path.join(self.dataroot, sd["filename"])
                if channel == LIDAR_CHANNEL:
                    problem = lidar_file_problem(path)
                else:
                    problem = None if os.path.isfile(path) else "missing"
                if problem is not None:
                    self.problems.append(f"{channel} {sd['timestamp']} skipped: {problem} file {path}")
                    continue
                cs_token = sd["calibrated_sensor_token"]
                if cs_token not in calib_cache:
                    cs = get("calibrated_sensor", cs_token)
                    K = np.asarray(cs["camera_intrinsic"], dtype=np.float64)
                    calib_cache[cs_token] = (make_transform(cs["rotation"], cs["translation"]),
                                             K.reshape(3, 3) if K.size == 9 else None)
                sensor2ego, K = calib_cache[cs_token]
                pose = get("ego_pose", sd["ego_pose_token"])
                is_cam = channel != LIDAR_CHANNEL
                records.append(SensorRecord(
                    timestamp_us=int(sd["timestamp"]), channel=channel, path=path,
                    is_key_frame=bool(sd["is_key_frame"]), sample_token=sd["sample_token"],
                    sample_data_token=sd["token"],
                    ego2global=make_transform(pose["rotation"], pose["translation"]),
                    sensor2ego=sensor2ego.copy(), intrinsics=None if K is None else K.copy(),
                    width=int(sd.get("width") or 0) if is_cam else 0,
                    height=int(sd.get("height") or 0) if is_cam else 0))
        records.sort(key=lambda r: (r.timestamp_us, r.channel))
        return records

    # ----------------------------------------------------------------------------------------------------
    def records(self):
        """Every readable sensor record of the scene, sorted by ``(timestamp_us, channel)`` (a new list)."""
        return list(self._records)

    def __iter__(self):
        return iter(self.records())

    def __len__(self):
        return len(self._records)

    def keyframe_tokens(self):
        """The scene's sample tokens, in time order."""
        return [s["token"] for s in self._samples]

    def lidar_records(self):
        return [r for r in self._records if r.is_lidar]

    def camera_records(self):
        return [r for r in self._records if not r.is_lidar]

    def lidar_without_camera(self, max_delay_s):
        """How many LiDAR records have no image of some camera within ``max_delay_s`` seconds of their stamp
        (what a node pairing them, ``FrameAssembler``'s ``max_camera_lidar_delay``, will run without that
        camera). A dataroot with camera images at keyframes only leaves every LiDAR sweep without one."""
        by_camera = {}
        for r in self.camera_records():
            by_camera.setdefault(r.channel, []).append(r.timestamp_us)
        stamps = {c: np.sort(np.asarray(t, np.int64)) for c, t in by_camera.items()}
        limit = max_delay_s * 1e6
        missing = 0
        for r in self.lidar_records():
            for t in stamps.values():
                i = np.searchsorted(t, r.timestamp_us)
                near = [abs(int(t[j]) - r.timestamp_us) for j in (i - 1, i) if 0 <= j < len(t)]
                if min(near) > limit:
                    missing += 1
                    break
        return missing

    def duration_s(self):
        """Seconds from the first to the last record (0 for an empty stream)."""
        if not self._records:
            return 0.0
        return (self._records[-1].timestamp_us - self._records[0].timestamp_us) / 1e6

    def _first_calibration(self, channel):
        """(sensor2ego, intrinsics, width, height) of the channel's first sample_data in the scene (readable
        file or not: the calibration does not depend on it); None when the scene has no such channel."""
        sample = next((s for s in self._samples if channel in s["data"]), None)
        if sample is None:
            return None
        sd = self.nusc.get("sample_data", sample["data"][channel])
        cs = self.nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        K = np.asarray(cs["camera_intrinsic"], dtype=np.float64)
        return (make_transform(cs["rotation"], cs["translation"]), K.reshape(3, 3) if K.size == 9 else None,
                int(sd.get("width") or 0), int(sd.get("height") or 0))

    def camera_intrinsics(self):
        """``{camera: (K 3x3, width, height)}`` for the cameras of the scene."""
        out = {}
        for name in CAMERA_NAMES:
            c = self._first_calibration(name)
            if c is not None and c[1] is not None:
                out[name] = (c[1], c[2], c[3])
        return out

    def calibration(self, lidar_frame=LIDAR_CHANNEL, ego_frame="base_link"):
        """The scene's static rig as keyword arguments of ``perception.ros.calibration.RigCalibration``:

        ``lidar2ego`` (4x4 from the LIDAR_TOP calibrated_sensor, ``None`` without LiDAR), ``lidar2cam``
        (``{camera: inv(cam2ego) @ lidar2ego}``, empty without LiDAR), ``camera_frames`` (``{camera: camera}``),
        ``lidar_frame``, ``ego_frame``. Use ``RigCalibration(**stream.calibration())``.
        """
        lidar = self._first_calibration(LIDAR_CHANNEL)
        lidar2ego = None if lidar is None else lidar[0]
        lidar2cam, frames = {}, {}
        for name in CAMERA_NAMES:
            cam = self._first_calibration(name)
            if cam is None:
                continue
            frames[name] = name
            if lidar2ego is not None:
                lidar2cam[name] = invert(cam[0]) @ lidar2ego
        return {"lidar2ego": lidar2ego, "lidar2cam": lidar2cam, "camera_frames": frames,
                "lidar_frame": lidar_frame, "ego_frame": ego_frame}

    def summary(self):
        """One line: scene, LiDAR and camera message counts, duration, skipped files."""
        n_lidar = len(self.lidar_records())
        n_cam = len(self._records) - n_lidar
        line = (f"scene {self.scene_name}: {n_lidar} LiDAR and {n_cam} camera messages over "
                f"{self.duration_s():.2f} s")
        if self.problems:
            line += f" ({len(self.problems)} files skipped)"
        return line
