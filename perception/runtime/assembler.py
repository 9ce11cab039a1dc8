"""Live sensor streams -> one :class:`Frame` per LiDAR sweep: the logic the ROS 2 node and log replay share.

Messages arrive one by one (already converted to numpy by ``perception.ros``); :class:`FrameAssembler` keeps
what a frame needs and builds it for a LiDAR stamp:

- **Sweeps**: the config's ``data.num_sweeps`` previous LiDAR sweeps are moved into the current LiDAR frame
  through the ego poses at both stamps and get their time lag (s), exactly as ``perception.data.io`` does
  offline (same composition, same float32 point transform, newest sweep first). Without a pose at either
  stamp the frame runs on the current sweep alone, with a note.
- **Cameras**: per camera the image whose stamp is nearest the LiDAR stamp, if within
  ``max_camera_lidar_delay`` (s, either side); otherwise the camera is missing for this frame (stale), never a
  reason to block. ``lidar2cam`` folds in the ego motion between the LiDAR and camera stamps when both poses
  are known (LiDAR at t_lidar -> ego -> world -> ego at t_cam -> camera), as the nuScenes index does.

Frames: LiDAR (sensor frame of the cloud), ego (``base_link``), world (the odometry frame). Stamps: integer
nanoseconds. Thread-safe: converters add from the executor thread while inference assembles in a worker.
"""

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field

import numba
import numpy as np

from perception.constants import MAX_CAMERA_LIDAR_DELAY_S
from perception.geometry import invert
from perception.runtime.frame import CameraFrame, Frame, check_intrinsics, check_rigid
from perception.runtime.poses import PoseBuffer

MAX_EXTRA_SWEEPS = 40  # sweeps kept beyond num_sweeps (2 s at 20 Hz): a late frame still finds its past sweeps


def move_sweep_reference(points, rotation, translation, lag, out):
    """``out (N, 5)`` = points ``(N, 4)`` moved by ``rotation`` (3x3) / ``translation`` (3,), float32 as the
    offline loader (``perception.geometry.transform_points``: ``xyz @ R.T + t``), intensity kept, time lag set."""
    out[:, :3] = points[:, :3] @ rotation.T + translation
    out[:, 3] = points[:, 3]
    out[:, 4] = lag


@numba.njit(cache=True)
def _move_sweep(points, rotation, translation, lag, out):
    """:func:`move_sweep_reference` in one pass (10 sweeps of 35k points per nuscenes_full frame); float32
    sums may round differently from the BLAS product in the last bit."""
    for n in range(points.shape[0]):
        x, y, z = points[n, 0], points[n, 1], points[n, 2]
        for a in range(3):
            out[n, a] = rotation[a, 0] * x + rotation[a, 1] * y + rotation[a, 2] * z + translation[a]
        out[n, 3] = points[n, 3]
        out[n, 4] = lag


@dataclass
class FrameStatus:
    """What went into one frame: for diagnostics and replay summaries."""

    stamp_ns: int
    points: int = 0
    sweeps_used: int = 0
    motion_compensated: bool = False
    cameras: dict = field(default_factory=dict)  # name -> 'ok' | 'stale' | 'no image yet'
    camera_age_s: dict = field(default_factory=dict)  # name -> LiDAR stamp - image stamp (s), for the used ones
    notes: list = field(default_factory=list)


class FrameAssembler:
    """Builds :class:`Frame` objects from converted sensor messages.

    ``calibration``: an object with ``lidar2ego`` (4x4 or None) and ``lidar2cam`` (camera name -> 4x4 static
    LiDAR -> camera optical frame), e.g. ``perception.ros.calibration.RigCalibration``. ``cameras``: the camera
    names the model uses. ``num_sweeps``: past sweeps merged per frame (config ``data.num_sweeps``).
    ``max_sweep_age_s``: older sweeps are not merged (after a LiDAR gap).
    """

    def __init__(self, calibration, cameras, num_sweeps, max_camera_lidar_delay_s=MAX_CAMERA_LIDAR_DELAY_S,
                 max_sweep_age_s=1.0, camera_history=8, poses=None):
        self.lidar2ego = None if calibration.lidar2ego is None else np.asarray(calibration.lidar2ego, np.float64)
        problem = None if self.lidar2ego is None else check_rigid(self.lidar2ego, "calibration lidar2ego")
        if problem:
            raise ValueError(problem)
        self.lidar2cam, self.cam2ego = {}, {}
        for name in cameras:
            l2c = calibration.lidar2cam.get(name)
            problem = check_rigid(l2c, f"calibration of camera {name}: lidar2cam")
            if problem:
                raise ValueError(problem)
            self.lidar2cam[name] = np.asarray(l2c, np.float64)
            if self.lidar2ego is not None:
                self.cam2ego[name] = self.lidar2ego @ invert(self.lidar2cam[name])
        self.cameras = tuple(cameras)
        self.num_sweeps = int(num_sweeps)
        self.max_delay_ns = int(max_camera_lidar_delay_s * 1e9)
        self.max_sweep_age_ns = int(max_sweep_age_s * 1e9)
        self.poses = poses if poses is not None else PoseBuffer()
        self._images = {name: deque(maxlen=camera_history) for name in self.cameras}
        # Sweeps kept: a frame is assembled a little after its sweep arrived (the worker was busy or waited for
        # cameras), when newer sweeps are already here; keep every sweep young enough to be merged, capped.
        self._keep_sweeps = max(self.num_sweeps, 0) + MAX_EXTRA_SWEEPS
        self._sweeps = []  # (stamp_ns, (N, 4) float32), oldest first
        self._newest_ns = -1  # newest stamp of any input (message time), for waiting_on
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inputs
    def add_pose(self, stamp_ns: int, ego2world):
        with self._lock:
            self.poses.add(stamp_ns, ego2world)
            self._newest_ns = max(self._newest_ns, int(stamp_ns))

    def add_camera(self, name: str, stamp_ns: int, image, intrinsics):
        """A converted image (``(H, W, 3)`` uint8 RGB, rectified) and its K (3x3 pixels)."""
        if name not in self._images:
            raise ValueError(f"camera {name!r} is not one of the model's cameras {self.cameras}")
        problem = check_intrinsics(intrinsics, f"camera {name}: intrinsics")
        if problem:
            raise ValueError(problem)
        with self._lock:
            self._images[name].append((int(stamp_ns), image, np.asarray(intrinsics, np.float64)))
            self._newest_ns = max(self._newest_ns, int(stamp_ns))

    def add_sweep(self, stamp_ns: int, points):
        """A LiDAR sweep ``(N, 4)`` x, y, z, intensity in its own LiDAR frame, kept for later frames."""
        pts = np.asarray(points, dtype=np.float32)[:, :4]
        with self._lock:
            self._newest_ns = max(self._newest_ns, int(stamp_ns))
            stamps = [s for s, _ in self._sweeps]
            if stamp_ns in stamps:  # a duplicate message
                return
            self._sweeps.insert(bisect.bisect(stamps, stamp_ns), (int(stamp_ns), pts))  # out-of-order safe
            newest = self._sweeps[-1][0]
            stale = sum(1 for s, _ in self._sweeps if newest - s > 2 * self.max_sweep_age_ns)
            del self._sweeps[: max(stale, len(self._sweeps) - self._keep_sweeps)]

    # ------------------------------------------------------------------ readiness
    def waiting_on(self, stamp_ns: int, alive_window_s=1.0):
        """What a frame at ``stamp_ns`` could still get by waiting a little: ``'pose'`` when poses are flowing
        (one within ``alive_window_s``) but none at or after the stamp has arrived, and each flowing camera
        without an image at or after the stamp (nuScenes cameras fire just after the LiDAR). Nothing once any
        input newer than ``stamp + max_camera_lidar_delay`` has arrived: what has not come by then is not
        coming in time. A caller waits for these at most a bounded time, never for a stopped sensor."""
        alive = int(alive_window_s * 1e9)
        with self._lock:
            if self._newest_ns > stamp_ns + self.max_delay_ns:
                return []
            out = []
            newest = self.poses.newest_stamp()
            if self.num_sweeps > 0 and newest is not None and stamp_ns - alive <= newest < stamp_ns:
                out.append("pose")
            for name, images in self._images.items():
                if images and stamp_ns - alive <= images[-1][0] < stamp_ns:
                    out.append(name)
            return out

    # ------------------------------------------------------------------ frame
    def assemble(self, stamp_ns: int, points, token="live", past_sweeps=True):
        """The :class:`Frame` for the LiDAR sweep ``points`` (``(N, 4)``, its own frame) at ``stamp_ns``, and
        its :class:`FrameStatus`. The sweep itself must have been added with :meth:`add_sweep` or is
        passed here only. ``past_sweeps`` False: no earlier sweep is merged (a frame without a LiDAR message,
        triggered by a camera while the LiDAR is silent, has no points at all)."""
        status = FrameStatus(stamp_ns=int(stamp_ns))
        with self._lock:
            key_pose = self.poses.at(stamp_ns)
            key_points = np.asarray(points, np.float32)[:, :4]
            merged = self._merge_sweeps(stamp_ns, key_points, key_pose, status) if past_sweeps else key_points
            cameras = {name: self._camera(name, stamp_ns, key_pose, status) for name in self.cameras}
        cameras = {k: v for k, v in cameras.items() if v is not None}
        status.points = len(merged)
        frame = Frame(points=merged, cameras=cameras, lidar2ego=self.lidar2ego, ego2world=key_pose,
                      timestamp=int(stamp_ns) // 1000,
                      token=str(token), notes=list(status.notes))
        return frame, status

    def _merge_sweeps(self, stamp_ns, key_points, key_pose, status):
        """``(N, 5)`` keyframe + past sweeps in the keyframe LiDAR frame (see module doc), written into one
        preallocated array (the node's hot path: 10 sweeps of 35k points each)."""
        past = [(s, p) for s, p in reversed(self._sweeps) if s < stamp_ns and stamp_ns - s <= self.max_sweep_age_ns]
        past = past[: self.num_sweeps]  # newest first, as the offline loader orders them
        if past and (key_pose is None or self.lidar2ego is None):
            why = "no lidar2ego calibration" if self.lidar2ego is None else "no ego pose at the LiDAR stamp"
            status.notes.append(f"{why}: past sweeps not merged, current sweep only")
            past = []
        moves = []
        if past:
            global2lidar = invert(key_pose @ self.lidar2ego)
        for sweep_stamp, sweep_points in past:
            sweep_pose = self.poses.at(sweep_stamp)
            if sweep_pose is None:
                status.notes.append(f"no ego pose at sweep {sweep_stamp} ns: sweep not merged")
                continue
            moves.append((global2lidar @ sweep_pose @ self.lidar2ego, sweep_points, (stamp_ns - sweep_stamp) / 1e9))
        out = np.empty((len(key_points) + sum(len(p) for _, p, _ in moves), 5), np.float32)
        out[: len(key_points), :4] = key_points
        out[: len(key_points), 4] = 0.0
        start = len(key_points)
        for sweep2lidar, pts, lag in moves:
            _move_sweep(pts, sweep2lidar[:3, :3].astype(np.float32), sweep2lidar[:3, 3].astype(np.float32),
                        np.float32(lag), out[start: start + len(pts)])
            start += len(pts)
        status.sweeps_used = len(moves)
        status.motion_compensated = bool(moves)
        return out

    def _camera(self, name, stamp_ns, key_pose, status):
        images = self._images[name]
        if not images:
            status.cameras[name] = "no image yet"
            return None
        cam_stamp, image, K = min(images, key=lambda it: abs(it[0] - stamp_ns))
        if abs(cam_stamp - stamp_ns) > self.max_delay_ns:
            status.cameras[name] = "stale"
            status.notes.append(f"camera {name}: nearest image {(stamp_ns - cam_stamp) / 1e9:+.3f} s from the LiDAR "
                                f"stamp (limit {self.max_delay_ns / 1e9:.3f} s): missing for this frame")
            return None
        lidar2cam = self.lidar2cam[name]
        cam_pose = self.poses.at(cam_stamp) if key_pose is not None else None
        if cam_pose is not None and name in self.cam2ego:
            # LiDAR (t_lidar) -> ego (t_lidar) -> world -> ego (t_cam) -> camera: the nuScenes chain.
            lidar2cam = invert(self.cam2ego[name]) @ invert(cam_pose) @ (key_pose @ self.lidar2ego)
        status.cameras[name] = "ok"
        status.camera_age_s[name] = (stamp_ns - cam_stamp) / 1e9
        return CameraFrame(image=image, intrinsics=K, lidar2cam=lidar2cam, timestamp=cam_stamp // 1000)
