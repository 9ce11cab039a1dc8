"""The one inference entry point (eval, ROS 2 nodes, log replay): :class:`Predictor`.

A *frame* (live sensor data) is a dict:
- ``points``: ``(N, 4|5)`` float array, LiDAR frame, x, y, z (m), intensity, [time lag (s)]; ``None`` or
  ``(0, 4)`` when the LiDAR is missing.
- ``cameras``: ``{name: {"image": (H, W, 3) uint8 RGB, "intrinsics": 3x3 pixels, "lidar2cam": 4x4}}``
  for any subset of ``CAMERA_NAMES`` (``lidar2cam``: LiDAR frame at the LiDAR stamp -> camera frame).
- ``lidar2ego``: 4x4 (optional, identity by default; the occupancy grid is in the ego frame).
- ``timestamp``: microseconds (optional), ``token`` (optional).

Preprocessing is the dataset's test-time transform (:class:`perception.data.dataset.M3Dataset` with
``training=False``) followed by :func:`perception.data.collate.collate`; it is not re-implemented here.
Bad input degrades instead of failing: NaN/inf points and pixels are counted, warned about and removed
(points) or zeroed (pixels); a malformed camera is treated as missing; with neither LiDAR nor any camera
the result is empty (no boxes, zero BEV probabilities, all-free occupancy).
"""

import time
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, CAMERA_NAMES, DETECTION_CLASSES
from perception.data.sample import CameraView, Sample


@dataclass
class Prediction:
    """Model output for one frame. Boxes ``(K, 9)`` x, y, z, l, w, h, yaw, vx, vy in the LiDAR frame;
    ``bev_probs (6, 200, 200)`` on ``BEV_MAP_GRID`` (LiDAR frame) or None when 'map' is off;
    ``occ_labels (200, 200, 16)`` uint8 on the occupancy grid (Occ3D: ego frame) or None when 'occ' is off;
    ``timings_ms``: ``preprocess``, ``model``, ``postprocess``; ``warnings``: what was degraded."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list
    bev_probs: Optional[np.ndarray] = None
    occ_labels: Optional[np.ndarray] = None
    timings_ms: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


@dataclass
class _LiveSample(Sample):
    """A :class:`Sample` whose points are in memory (a live frame) instead of in a ``.pcd.bin`` file."""

    live_points: Optional[np.ndarray] = None

    @property
    def points(self) -> np.ndarray:
        return self.live_points


def _to_numpy(value):
    return value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class Predictor:
    """Runs a trained model on frames or :class:`Sample` objects.

    ``config``: a :class:`perception.config.Config` (or a config file path); ``checkpoint``: a checkpoint
    path, a loaded checkpoint dict, or ``None`` (random weights, for tests); ``device``: 'cpu' or 'cuda'
    (fp16 autocast on CUDA). ``use_ema``: load the EMA weights when the checkpoint has them.
    """

    def __init__(self, config, checkpoint=None, device="cpu", use_ema=False):
        from perception.config import load_config
        from perception.models import build_model
        from perception.training.checkpoint import load_checkpoint, model_weights
        from perception.training.data import make_dataset

        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' requested but CUDA is not available")
        self.cfg = load_config(config) if not isinstance(config, dict) else config
        self.device = torch.device(device)
        self.tasks = tuple(self.cfg["model"]["tasks"])
        self.model = build_model(self.cfg["model"])
        if checkpoint is not None:
            ckpt = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
            self.model.load_state_dict(model_weights(ckpt, use_ema))
        self.model.to(self.device).eval()
        # The dataset's test-time transform, built once; its sample list is swapped per call.
        self.dataset = make_dataset(self.cfg, [], training=False, load_gt=False)  # no GT at inference
        self._calib_key = None
        self._calib = None
        self.calibration_cache_hits = 0

    # ------------------------------------------------------------------ preprocessing
    def _frame_to_sample(self, frame, notes):
        """Validate a frame dict and wrap it as a :class:`_LiveSample` (degrading bad parts, see module doc)."""
        if not isinstance(frame, dict):
            raise ValueError(f"frame must be a dict with 'points' / 'cameras', got {type(frame).__name__}")
        points = frame.get("points")
        points = np.zeros((0, 5), np.float32) if points is None else np.asarray(points, dtype=np.float32)
        if points.ndim != 2 or points.shape[1] not in (4, 5):
            raise ValueError(f"frame['points'] must be (N, 4) or (N, 5), got {points.shape}")
        finite = np.isfinite(points).all(axis=1)
        if not finite.all():
            notes.append(f"{int((~finite).sum())} NaN/inf points removed")
            points = points[finite]
        if points.shape[1] == 4:  # no time lag channel: a single keyframe
            points = np.concatenate([points, np.zeros((len(points), 1), np.float32)], axis=1)
        cameras = {}
        for name, cam in (frame.get("cameras") or {}).items():
            if name not in CAMERA_NAMES:
                raise ValueError(f"frame['cameras'] has unknown camera {name!r}; expected one of {CAMERA_NAMES}")
            image = None if cam is None else cam.get("image")
            if image is None:
                continue
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != 3:
                notes.append(f"camera {name}: image shape {image.shape} is not (H, W, 3); treated as missing")
                continue
            if image.dtype != np.uint8:
                bad = ~np.isfinite(image.astype(np.float32))
                if bad.any():
                    notes.append(f"camera {name}: {int(bad.any(axis=2).sum())} NaN/inf pixels set to 0")
                image = np.clip(np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0, 255)
                image = image.astype(np.uint8)
            cameras[name] = CameraView(
                name=name, path="<live>", intrinsics=np.asarray(cam["intrinsics"], np.float64),
                lidar2cam=np.asarray(cam["lidar2cam"], np.float64), _image=image,
            )
        lidar2ego = np.asarray(frame.get("lidar2ego", np.eye(4)), dtype=np.float64)
        sample = _LiveSample(
            token=str(frame.get("token", "live")), lidar_path="<live>", lidar2ego=lidar2ego, ego2global=np.eye(4),
            timestamp=int(frame.get("timestamp", 0)), cameras=cameras, live_points=points,
        )
        return sample, len(points) > 0

    def _batch_for(self, sample, has_lidar=True):
        """The dataset's test-time item for ``sample``, collated into a batch of one on the device."""
        from perception.data.collate import collate
        from perception.training.trainer import move_to_device

        self.dataset.samples = [sample]
        batch = collate([self.dataset[0]])
        if not has_lidar:
            batch["lidar_mask"][:] = False
        batch = move_to_device(batch, self.device)
        self._reuse_calibration(batch)
        return batch

    def _reuse_calibration(self, batch):
        """Keep the device copies of the camera matrices while the calibration is unchanged (the common
        case for a fixed rig), so repeated frames share the same tensors (and any caches keyed on them)."""
        keys = ("intrinsics", "lidar2cam", "lidar2img", "img_aug")
        key = tuple(batch[k].cpu().numpy().tobytes() for k in keys) + (batch["cam_mask"].cpu().numpy().tobytes(),)
        if key == self._calib_key:
            for k in keys:
                batch[k] = self._calib[k]
            self.calibration_cache_hits += 1
        else:
            self._calib_key, self._calib = key, {k: batch[k] for k in keys}

    # ------------------------------------------------------------------ inference
    def _empty(self, notes, timings):
        bev = np.zeros((len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape, np.float32) if "map" in self.tasks else None
        head = self.model.head  # all-free volume on the configured occupancy grid (Occ3D or OpenOccupancy)
        occ = np.full(head.occ_grid.shape, head.occ_free_index, np.uint8) if "occ" in self.tasks else None
        return Prediction(
            boxes=np.zeros((0, 9), np.float32), scores=np.zeros((0,), np.float32), labels=np.zeros((0,), np.int64),
            class_names=[], bev_probs=bev, occ_labels=occ, timings_ms=timings, warnings=notes,
        )

    def _run(self, batch, notes, t0):
        t1 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"
        ):
            out = self.model.predict(batch)[0]
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if "boxes" in out:
            boxes = _to_numpy(out["boxes"]).astype(np.float32).reshape(-1, 9)
            scores = _to_numpy(out["scores"]).astype(np.float32).reshape(-1)
            labels = _to_numpy(out["labels"]).astype(np.int64).reshape(-1)
        else:
            boxes, scores, labels = np.zeros((0, 9), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        pred = Prediction(
            boxes=boxes, scores=scores, labels=labels, class_names=[DETECTION_CLASSES[i] for i in labels],
            bev_probs=_to_numpy(out["bev_probs"]).astype(np.float32) if "bev_probs" in out else None,
            occ_labels=_to_numpy(out["occ_labels"]).astype(np.uint8) if "occ_labels" in out else None,
            warnings=notes,
        )
        pred.timings_ms = {
            "preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3, "postprocess": (time.perf_counter() - t2) * 1e3,
        }
        return pred

    def predict(self, frame) -> Prediction:
        """Run on a live frame (see the module docstring for its keys)."""
        t0 = time.perf_counter()
        notes = []
        sample, has_lidar = self._frame_to_sample(frame, notes)
        use_lidar = has_lidar and self.model.lidar_encoder is not None
        use_cams = bool(set(sample.cameras) & set(self.dataset.cameras)) and self.model.camera_encoder is not None
        if not has_lidar:
            notes.append("no LiDAR points")
        if not use_cams:
            notes.append("no usable camera")
        for note in notes:
            warnings.warn(f"Predictor: {note}", stacklevel=2)
        if not use_lidar and not use_cams:
            return self._empty(notes + ["no usable modality: empty result"], {"preprocess": 0.0, "model": 0.0, "postprocess": 0.0})
        return self._run(self._batch_for(sample, has_lidar), notes, t0)

    def predict_sample(self, sample: Sample) -> Prediction:
        """Run on a dataset :class:`Sample` (evaluation), through the same test-time transform."""
        t0 = time.perf_counter()
        notes = []
        batch = self._batch_for(sample)
        if not bool(batch["lidar_mask"][0]):
            notes.append(f"sample {sample.token}: LiDAR unreadable")
        return self._run(batch, notes, t0)
