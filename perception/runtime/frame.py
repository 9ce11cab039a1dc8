"""What a caller hands the :class:`Predictor` for one live moment: a :class:`Frame`.

Frames and units (``shared/docs/reference.md``): LiDAR frame x right, y forward, z up (nuScenes LIDAR_TOP;
any rig works as long as the calibration says how its frames relate); camera optical frame x right, y down,
z forward; metres, seconds, pixels. Transforms are 4x4 ``a2b`` matrices, ``p_b = a2b @ p_a``.

:func:`check_camera` and :func:`check_rigid` validate calibration as it arrives from a live source (a ROS
topic, a YAML file, a bag): a bad matrix never reaches the model as NaNs or a ``KeyError``; the camera is
left out of that frame with a note that names it and the field. :class:`LiveSample` wraps a frame as the data
layer's :class:`Sample`; :func:`without_cameras` withholds cameras from one (the degraded-sensor rows).
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from perception.constants import CAMERA_NAMES
from perception.data.inputs import all_columns
from perception.data.sample import CameraView, Sample

# Tolerances for "this is a rigid transform / a pinhole matrix" (float32 round trips stay far inside them).
_ORTHO_TOL = 1e-3
_MIN_FOCAL_PX = 1e-3


@dataclass
class CameraFrame:
    """One camera of a frame.

    - ``image``: ``(H, W, 3)`` uint8 RGB, rectified (distortion is not modelled).
    - ``intrinsics``: 3x3 pinhole matrix K of that image, pixels.
    - ``lidar2cam``: 4x4, LiDAR frame at the LiDAR stamp -> camera optical frame at the camera stamp (with
      the ego motion between the two stamps folded in when poses are known).
    - ``timestamp``: microseconds (0 when unknown).
    """

    image: np.ndarray | None
    intrinsics: np.ndarray | None
    lidar2cam: np.ndarray | None
    timestamp: int = 0


@dataclass
class Frame:
    """Live sensor data for one LiDAR stamp.

    - ``points``: ``(N, 4|5)`` float, LiDAR frame: x, y, z (m), intensity, [time lag (s), >= 0, for points of
      earlier sweeps moved into this frame]; ``None`` or ``(0, 4)`` when the LiDAR is missing.
    - ``cameras``: camera name (``CAMERA_NAMES``) -> :class:`CameraFrame`, any subset.
    - ``lidar2ego``: 4x4 LiDAR -> ego (``base_link``: x forward, y left, z up). Required when the model
      predicts ego-frame occupancy (Occ3D): without it the occupancy grid would turn with the LiDAR's
      mounting yaw (90 degrees on a nuScenes rig).
    - ``ego2world``: 4x4 ego pose at the LiDAR stamp (ego -> a world frame that does not move: nuScenes global,
      a robot's ``odom``), or None when no pose is known; the BEV map memory needs it
      (:mod:`perception.runtime.map_memory`).
    - ``timestamp``: microseconds (LiDAR stamp); ``token``: a name for the frame in notes and results.
    - ``notes``: problems found upstream (message conversion, stale sensors), carried into the prediction.
    """

    points: np.ndarray | None = None
    cameras: dict[str, CameraFrame] = field(default_factory=dict)
    lidar2ego: np.ndarray | None = None
    ego2world: np.ndarray | None = None
    timestamp: int = 0
    token: str = "live"
    notes: list[str] = field(default_factory=list)


def check_rigid(matrix, what: str) -> str | None:
    """Why ``matrix`` is not a 4x4 rigid transform (finite, orthonormal rotation, last row 0 0 0 1), or None."""
    if matrix is None:
        return f"{what} missing"
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (4, 4):
        return f"{what} has shape {m.shape}, expected (4, 4)"
    if not np.isfinite(m).all():
        return f"{what} is not finite"
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        return f"{what} last row is {m[3].tolist()}, expected [0, 0, 0, 1]"
    R = m[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=_ORTHO_TOL) or np.linalg.det(R) < 0:
        return f"{what} rotation is not a proper rotation (singular, scaled or mirrored)"
    return None


def check_intrinsics(K, what: str) -> str | None:
    """Why ``K`` is not a 3x3 pinhole matrix (finite, fx and fy > 0, last row 0 0 1), or None."""
    if K is None:
        return f"{what} missing"
    k = np.asarray(K, dtype=np.float64)
    if k.shape != (3, 3):
        return f"{what} has shape {k.shape}, expected (3, 3)"
    if not np.isfinite(k).all():
        return f"{what} is not finite"
    if k[0, 0] <= _MIN_FOCAL_PX or k[1, 1] <= _MIN_FOCAL_PX or not np.allclose(k[2], [0.0, 0.0, 1.0]):
        return f"{what} is singular or not a pinhole matrix (fx={k[0, 0]}, fy={k[1, 1]}, last row {k[2].tolist()})"
    return None


def check_camera(name: str, cam) -> str | None:
    """Why camera ``name`` of a frame cannot be used (the note names the camera and the field), or None."""
    if cam is None or cam.image is None:
        return f"camera {name}: no image"
    image = np.asarray(cam.image)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) == 0:
        return f"camera {name}: image shape {image.shape} is not (H, W, 3)"
    return check_intrinsics(cam.intrinsics, f"camera {name}: intrinsics") or check_rigid(
        cam.lidar2cam, f"camera {name}: lidar2cam")


WITHHOLD = ("lidar", "cameras") + tuple(CAMERA_NAMES)  # what Predictor.predict_sample(withhold=...) accepts


def check_withhold(names) -> frozenset:
    """``names`` (an iterable of sensor names) as a set, or ``ValueError`` naming the unknown one."""
    names = frozenset(names)
    unknown = sorted(names - set(WITHHOLD))
    if unknown:
        raise ValueError(f"withhold: unknown sensor {unknown[0]!r}; expected any of {list(WITHHOLD)}")
    return names


@dataclass
class LiveSample(Sample):
    """A :class:`Sample` whose points are in memory (a live frame) instead of in a ``.pcd.bin`` file."""

    live_points: np.ndarray | None = None

    @property
    def points(self) -> np.ndarray:
        return self.live_points


def without_cameras(sample, withhold):
    """``sample`` without the cameras named in ``withhold`` (all six for ``'cameras'``)."""
    if not set(withhold) - {"lidar"}:
        return sample
    drop = set(CAMERA_NAMES) if "cameras" in withhold else set(withhold)
    return dataclasses.replace(sample, cameras={k: v for k, v in sample.cameras.items() if k not in drop})


def frame_to_sample(frame, notes, needs_lidar2ego):
    """Validate a :class:`Frame` and wrap it as a :class:`LiveSample`: ``(sample, has_lidar)``. Bad parts degrade
    (NaN points removed, a bad camera treated as missing, each said in ``notes``); what cannot be degraded raises
    ValueError naming the field. ``needs_lidar2ego``: the model predicts on an ego-frame grid (Occ3D)."""
    if not isinstance(frame, Frame):
        raise ValueError(f"Predictor.predict takes a perception.runtime.Frame, got {type(frame).__name__}")
    notes.extend(frame.notes)
    points = frame.points
    points = np.zeros((0, 5), np.float32) if points is None else np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] not in (4, 5):
        raise ValueError(f"Frame.points must be (N, 4) or (N, 5), got {points.shape}")
    finite = all_columns(np.isfinite(points))
    if not finite.all():
        notes.append(f"{int((~finite).sum())} NaN/inf points removed")
        points = points[finite]
    if points.shape[1] == 4:  # no time lag channel: a single sweep
        points = np.concatenate([points, np.zeros((len(points), 1), np.float32)], axis=1)
    cameras = {}
    for name, cam in frame.cameras.items():
        if name not in CAMERA_NAMES:
            raise ValueError(f"Frame.cameras has unknown camera {name!r}; expected one of {CAMERA_NAMES}")
        problem = check_camera(name, cam)
        if problem is not None:
            notes.append(f"{problem}; camera treated as missing")
            continue
        image = np.asarray(cam.image)
        if image.dtype != np.uint8:
            bad = ~np.isfinite(image.astype(np.float32))
            if bad.any():
                notes.append(f"camera {name}: {int(bad.any(axis=2).sum())} NaN/inf pixels set to 0")
            image = np.clip(np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0, 255)
            image = image.astype(np.uint8)
        cameras[name] = CameraView(
            name=name, path="<live>", intrinsics=np.asarray(cam.intrinsics, np.float64),
            lidar2cam=np.asarray(cam.lidar2cam, np.float64), timestamp=int(cam.timestamp), _image=image,
        )
    if frame.lidar2ego is None:
        if needs_lidar2ego:
            raise ValueError("Frame.lidar2ego is required: the model predicts occupancy on an ego-frame grid "
                             "(model.tasks has 'occ'); give the LiDAR -> ego (base_link) transform")
        lidar2ego = np.eye(4)
    else:
        problem = check_rigid(frame.lidar2ego, "Frame.lidar2ego")
        if problem is not None:
            raise ValueError(problem)
        lidar2ego = np.asarray(frame.lidar2ego, dtype=np.float64)
    problem = None if frame.ego2world is None else check_rigid(frame.ego2world, "Frame.ego2world")
    if problem is not None:
        raise ValueError(problem)
    ego2world = np.eye(4) if frame.ego2world is None else np.asarray(frame.ego2world, dtype=np.float64)
    sample = LiveSample(
        token=str(frame.token), lidar_path="<live>", lidar2ego=lidar2ego, ego2global=ego2world,
        timestamp=int(frame.timestamp), cameras=cameras, live_points=points, num_sweeps=0,
    )
    return sample, len(points) > 0
