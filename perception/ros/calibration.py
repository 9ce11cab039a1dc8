"""Rig calibration (LiDAR -> ego, LiDAR -> each camera) from a YAML file or from tf.

YAML format (translations in metres, rotations as quaternions **x, y, z, w**)::

    lidar_frame: LIDAR_TOP          # optional, default LIDAR_TOP
    ego_frame: base_link            # optional, default base_link
    lidar2ego:                      # optional (null / absent: unknown, the runtime uses identity)
      translation: [x, y, z]        # maps LiDAR-frame points into the ego frame
      rotation: [qx, qy, qz, qw]
    cameras:                        # required, may be {} (LiDAR-only rig)
      CAM_FRONT:                    # a name of perception.constants.CAMERA_NAMES
        frame_id: CAM_FRONT         # optional, default: the camera name (the image header frame)
        lidar2cam:                  # LiDAR frame -> camera optical frame (x right, y down, z forward)
          translation: [x, y, z]
          rotation: [qx, qy, qz, qw]

Loading raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and the key
(``cameras.CAM_FRONT.lidar2cam.rotation``) for a missing key, a list of the wrong length, a non-finite
number, a zero quaternion, an unknown key or an unknown camera name.

From a running system, :func:`calibration_from_tf` reads the same transforms from a tf2 buffer.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from perception.constants import CAMERA_NAMES
from perception.ros.transforms import matrix_from_pose, pose_from_matrix, transform_to_matrix


@dataclass
class RigCalibration:
    """Extrinsics of a LiDAR + cameras rig. ``lidar2ego``: 4x4 LiDAR -> ego (None when unknown);
    ``lidar2cam``: camera name -> 4x4 LiDAR frame -> camera optical frame (x right, y down, z forward);
    ``camera_frames``: camera name -> frame_id of its image messages."""

    lidar2ego: np.ndarray | None = None
    lidar2cam: dict = field(default_factory=dict)
    camera_frames: dict = field(default_factory=dict)
    lidar_frame: str = "LIDAR_TOP"
    ego_frame: str = "base_link"

    def cam2ego(self, name):
        """4x4 camera -> ego = ``lidar2ego @ inv(lidar2cam[name])`` (identity lidar2ego when unknown)."""
        if name not in self.lidar2cam:
            raise KeyError(f"no calibration for camera {name!r} (have {sorted(self.lidar2cam)})")
        lidar2ego = np.eye(4) if self.lidar2ego is None else np.asarray(self.lidar2ego, np.float64)
        return lidar2ego @ np.linalg.inv(np.asarray(self.lidar2cam[name], np.float64))


# ---------------------------------------------------------------------------------------------- YAML
_TOP_KEYS = {"lidar_frame", "ego_frame", "lidar2ego", "cameras"}
_CAMERA_KEYS = {"frame_id", "lidar2cam"}


def _numbers(value, n, where):
    if not isinstance(value, (list, tuple)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (list, tuple)) else repr(value)
        raise ValueError(f"{where}: expected a list of {n} numbers, got {got}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{where}: {v!r} is not a number")
        if not math.isfinite(v):
            raise ValueError(f"{where}: {v!r} is not finite")
        out.append(float(v))
    return out


def _pose(node, where):
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a mapping with 'translation' and 'rotation', got {node!r}")
    for key in ("translation", "rotation"):
        if key not in node:
            raise ValueError(f"{where}: missing key '{key}' ({where}.{key})")
    extra = set(node) - {"translation", "rotation"}
    if extra:
        raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
    t = _numbers(node["translation"], 3, f"{where}.translation")
    q = _numbers(node["rotation"], 4, f"{where}.rotation")
    if math.sqrt(sum(v * v for v in q)) < 1e-12:
        raise ValueError(f"{where}.rotation: zero quaternion {q}")
    return matrix_from_pose(t, q)


def load_calibration_yaml(path) -> RigCalibration:
    """Read a rig calibration YAML (format in the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"calibration file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(doc).__name__}")
    extra = set(doc) - _TOP_KEYS
    if extra:
        raise ValueError(f"{path}: unknown key(s) {sorted(extra)} (expected {sorted(_TOP_KEYS)})")
    if "cameras" not in doc:
        raise ValueError(f"{path}: missing key 'cameras' (use 'cameras: {{}}' for a LiDAR-only rig)")
    frames = {}
    for key, default in (("lidar_frame", "LIDAR_TOP"), ("ego_frame", "base_link")):
        value = doc.get(key, default)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{path}: {key}: expected a non-empty frame name, got {value!r}")
        frames[key] = value
    calib = RigCalibration(**frames)
    try:
        if doc.get("lidar2ego") is not None:
            calib.lidar2ego = _pose(doc["lidar2ego"], "lidar2ego")
        cameras = doc["cameras"] or {}
        if not isinstance(cameras, dict):
            raise ValueError(f"cameras: expected a mapping of camera name -> entry, got {cameras!r}")
        for name, entry in cameras.items():
            where = f"cameras.{name}"
            if name not in CAMERA_NAMES:
                raise ValueError(f"{where}: unknown camera name {name!r} (expected one of {list(CAMERA_NAMES)})")
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: expected a mapping with 'lidar2cam', got {entry!r}")
            extra = set(entry) - _CAMERA_KEYS
            if extra:
                raise ValueError(f"{where}: unknown key(s) {sorted(extra)}")
            if "lidar2cam" not in entry:
                raise ValueError(f"{where}: missing key 'lidar2cam' ({where}.lidar2cam)")
            calib.lidar2cam[name] = _pose(entry["lidar2cam"], f"{where}.lidar2cam")
            frame_id = entry.get("frame_id", name)
            if not isinstance(frame_id, str) or not frame_id:
                raise ValueError(f"{where}.frame_id: expected a non-empty frame name, got {frame_id!r}")
            calib.camera_frames[name] = frame_id
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return calib


def _pose_node(T):
    t, q = pose_from_matrix(T)
    return {"translation": [float(v) for v in t], "rotation": [float(v) for v in q]}


def write_calibration_yaml(calib: RigCalibration, path):
    """Write ``calib`` in the format :func:`load_calibration_yaml` reads (quaternions x, y, z, w)."""
    doc = {"lidar_frame": calib.lidar_frame, "ego_frame": calib.ego_frame}
    doc["lidar2ego"] = None if calib.lidar2ego is None else _pose_node(calib.lidar2ego)
    cameras = {}
    for name, T in calib.lidar2cam.items():
        if name not in CAMERA_NAMES:
            raise ValueError(f"write_calibration_yaml: unknown camera name {name!r}")
        cameras[name] = {"frame_id": calib.camera_frames.get(name, name), "lidar2cam": _pose_node(T)}
    doc["cameras"] = cameras
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))


# ---------------------------------------------------------------------------------------------- tf
def _tf_time():
    try:
        from rclpy.time import Time  # the ros extra (optional)

        return Time()  # "latest available"
    except ImportError:
        return 0


def calibration_from_tf(buffer, lidar_frame, ego_frame, camera_frames, timeout_s=0.0) -> RigCalibration:
    """Read the rig calibration from tf (``buffer``: a ``tf2_ros.Buffer`` or any object with
    ``lookup_transform(target_frame, source_frame, time[, timeout])`` returning a TransformStamped-like).

    tf semantics: ``lookup_transform(target, source)`` maps points in ``source`` into ``target``, so
    ``lidar2cam[name] = lookup_transform(camera_frame, lidar_frame)`` and
    ``lidar2ego = lookup_transform(ego_frame, lidar_frame)``. The camera frames must be the optical frames
    (x right, y down, z forward; the ``*_optical_frame`` of a URDF, the image ``header.frame_id``).
    ``camera_frames``: camera name (one of ``CAMERA_NAMES``) -> frame_id. ``timeout_s > 0`` is passed to
    tf2 as the lookup timeout. A failed lookup raises ``LookupError`` naming both frames.
    """
    unknown = [n for n in camera_frames if n not in CAMERA_NAMES]
    if unknown:
        raise ValueError(f"calibration_from_tf: unknown camera name(s) {unknown} (expected {list(CAMERA_NAMES)})")
    time = _tf_time()
    kwargs = {}
    if timeout_s and timeout_s > 0:
        try:
            from rclpy.duration import Duration  # the ros extra (optional)

            kwargs["timeout"] = Duration(nanoseconds=int(timeout_s * 1e9))
        except ImportError:
            kwargs["timeout"] = float(timeout_s)

    def lookup(target, source):
        if target == source:
            return np.eye(4)
        try:
            return transform_to_matrix(buffer.lookup_transform(target, source, time, **kwargs))
        except Exception as e:  # tf2 raises LookupException / ConnectivityException / ExtrapolationException
            raise LookupError(f"tf lookup {source} -> {target} failed: {type(e).__name__}: {e}") from e

    calib = RigCalibration(lidar_frame=str(lidar_frame), ego_frame=str(ego_frame))
    calib.lidar2ego = lookup(ego_frame, lidar_frame) if ego_frame else None
    for name, frame in camera_frames.items():
        calib.lidar2cam[name] = lookup(frame, lidar_frame)
        calib.camera_frames[name] = str(frame)
    return calib
