"""The one inference entry point (eval, ROS 2 nodes, log replay): :class:`Predictor`.

:meth:`Predictor.predict` takes a live :class:`perception.runtime.frame.Frame`; :meth:`Predictor.predict_sample`
takes a dataset :class:`Sample`. Both go through the same test-time transform
(:func:`perception.data.inputs.inference_item`, the one :class:`M3Dataset` uses with ``training=False``) and
:func:`perception.data.collate.collate`; it is not re-implemented here. The inference batch holds no ground truth.

Bad input degrades instead of failing: NaN/inf points and pixels are counted, warned about and removed
(points) or zeroed (pixels); a camera with a bad image or calibration is treated as missing, with a note
naming it and the field; with neither LiDAR nor any camera the result is empty (no boxes, zero BEV
probabilities, all-free occupancy). A frame without ``lidar2ego`` is an error when the model predicts
ego-frame occupancy.

A frame that lacks a sensor is normalized with that condition's BatchNorm statistics when the checkpoint has
them (:mod:`perception.models.sensor_norms`), or run by a fallback model (:mod:`perception.runtime.fallback`).
With ``model.occ_prior_fill`` a fusion model's occupancy without LiDAR is completed from the training labels
(:mod:`perception.runtime.occ_prior`), and with ``model.camera_map_blend`` its map takes in the camera branch's own
map head (``M3Net.predict``) and with ``model.occ_ground_from_map`` the occupancy's ground classes follow that map
(:mod:`perception.runtime.occ_ground`); the notes say each. With ``model.map_logit_offsets`` the map of a frame
that ran with LiDAR is calibrated per class last (:mod:`perception.runtime.map_offsets`).

With ``model.map_memory_s`` > 0 each BEV map is fused with the earlier ones (:mod:`perception.runtime.map_memory`):
frames then come in time order, and :meth:`Predictor.reset_memory` starts a new scene or log.

Imports run one way: this module uses the data layer and the models, never ``perception.training`` or
``perception.eval`` (a deployed node does not load the trainer).
"""

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, CAMERA_NAMES, DETECTION_CLASSES, OCC3D_GRID
from perception.data.augment import image_aug_params
from perception.data.collate import collate, to_device
from perception.data.inputs import inference_item
from perception.data.sample import Sample
from perception.models import build_model
from perception.models.precision import autocast_dtype
from perception.models.sensor_norms import SENSOR_NORMS_KEY, SensorNorms, sensor_condition
from perception.models.weights import load_checkpoint, model_weights, weight_set
from perception.runtime.device import resolve_device
from perception.runtime.fallback import choose_fallback, fallback_problem, run_fallback
from perception.runtime.frame import Frame, check_withhold, frame_to_sample, without_cameras
from perception.runtime.map_memory import MapMemory
from perception.runtime.map_offsets import offset_map
from perception.runtime.occ_ground import ground_from_map
from perception.runtime.occ_prior import fill_free, load_fill
from perception.runtime.prediction import Prediction, empty_prediction
from perception.runtime.ring_frame import ring_frame


def where_of(checkpoint):
    """How errors name ``checkpoint``: its path, or 'the checkpoint' for a loaded dict."""
    return checkpoint if not isinstance(checkpoint, dict) else "the checkpoint"


def _to_numpy(value):
    return value.detach().float().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class Predictor:
    """Runs a trained model on frames or :class:`Sample` objects.

    ``config``: a :class:`perception.config.Config` (or a config file path); ``checkpoint``: a checkpoint
    path, a loaded checkpoint dict, or ``None`` (random weights, for tests); ``device``: 'cpu', 'cuda' or
    'auto' (:func:`perception.runtime.device.resolve_device`; fp16 autocast on CUDA). ``use_ema``: load the
    EMA weights when the checkpoint has them. ``fp16``: autocast on CUDA (default None = on for CUDA; False
    runs fp32 there, for ``perception bench``). ``bf16``: bf16 autocast on a CPU with native bf16 (AVX512-BF16
    / AMX; :mod:`perception.models.precision`); a CPU without it runs fp32 and ``precision_note`` says so.
    Boxes, map probabilities and occupancy labels are decoded in fp32 either way.
    A checkpoint whose weights do not fit the config's model is a ``ValueError`` naming both. Per-condition
    BatchNorm statistics (``sensor_norms``, estimated for the weights that run) serve frames without a sensor.
    """

    def __init__(self, config, checkpoint=None, device="cpu", use_ema=False, fp16=None, bf16=False):
        self.device = resolve_device(device)
        self.cfg = load_config(config) if not isinstance(config, dict) else config
        self.autocast_dtype, self.precision_note = autocast_dtype(self.device.type, fp16 is None or bool(fp16),
                                                                  bool(bf16))
        if self.precision_note:
            warnings.warn(f"Predictor: {self.precision_note}", stacklevel=2)
        self.fp16 = self.autocast_dtype == torch.float16
        self.bf16 = self.autocast_dtype == torch.bfloat16
        self.precision = "fp16" if self.fp16 else "bf16" if self.bf16 else "fp32"  # what the model runs in
        self.tasks = tuple(self.cfg["model"]["tasks"])
        self.model = build_model(self.cfg["model"])
        ckpt = checkpoint if checkpoint is None or isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        self.weights = weight_set(ckpt or {}, use_ema)  # the set that runs: 'model' or 'ema'
        if ckpt is not None:
            try:
                self.model.load_state_dict(model_weights(ckpt, use_ema))
            except RuntimeError as e:  # missing / unexpected keys or shape mismatches
                cfg_name = getattr(self.cfg, "filename", None) or "the config"
                first = " ".join(line.strip() for line in str(e).strip().splitlines()[:3])[:400]
                raise ValueError(f"checkpoint {where_of(checkpoint)} does not fit the model of {cfg_name}: "
                                 f"{first}") from e
        self.model.to(self.device).eval()
        self.sensor_norms = None  # frames without a sensor: that condition's BatchNorm statistics (sensor_norms)
        if ckpt is not None and ckpt.get(SENSOR_NORMS_KEY) is not None:
            self.sensor_norms = SensorNorms(self.model, ckpt[SENSOR_NORMS_KEY], where=str(where_of(checkpoint)),
                                            weights=self.weights)
        # frames without LiDAR: free voxels filled from the training labels' prior (runtime/occ_prior.py)
        self.occ_fill_mode = self.cfg["model"].get("occ_prior_fill")
        self.camera_map_blend = self.model.camera_map_blend  # applied in M3Net.predict; here for the note
        self.occ_fill = load_fill(self.occ_fill_mode, ckpt, self.model.head.occ if "occ" in self.tasks else None,
                                  where=str(where_of(checkpoint)))
        # ... and their ground voxels' classes from the BEV map (runtime/occ_ground.py); with both tasks on Occ3D
        both = {"map", "occ"} <= set(self.tasks) and self.model.head.occ.grid == OCC3D_GRID
        self.occ_ground_t = self.cfg["model"].get("occ_ground_from_map") if both else None
        self.map_offsets = self.cfg["model"].get("map_logit_offsets")  # frames with LiDAR (runtime/map_offsets.py)
        # The test-time transform's settings (what M3Dataset(training=False) would use for this config).
        data = self.cfg["data"]
        self.cameras = tuple(c for c in CAMERA_NAMES if c in data["cameras"])
        self.image_aug = image_aug_params(data)
        self.num_sweeps = int(data["num_sweeps"])
        self.point_cloud_range = tuple(self.cfg["model"]["point_cloud_range"])
        # The cameras are decoded, warped and normalised in threads (the same item; docs/benchmarks.md, "On a GPU")
        threads = min(len(self.cameras), os.cpu_count() or 1)
        self.camera_pool = ThreadPoolExecutor(threads, thread_name_prefix="m3_cameras") if threads > 1 else None
        self.needs_lidar2ego = "occ" in self.tasks and self.model.head.occ.frame == "ego"
        self.fallbacks = {}  # 'no_lidar' | 'no_cameras' -> (Predictor, name) (set_fallback)
        memory_s = float(self.cfg["model"].get("map_memory_s") or 0.0)
        self.map_memory = MapMemory(memory_s) if memory_s > 0 and "map" in self.tasks else None

    def reset_memory(self):
        """Forget the BEV map memory (a new scene or log); nothing to do without one."""
        if self.map_memory is not None:
            self.map_memory.reset()

    def warm_up(self):
        """Run one synthetic frame (:func:`ring_frame`: the config's cameras on a ring, points in the range) through
        this model and its fallbacks, then forget it: the one-off costs of a first frame (numba compilation,
        allocator growth, cuDNN's algorithm search) are paid here, not by the first real frame. The frame has no
        ego pose, so the map memory does not keep it; the per-rig caches (BEV pooling plan, ray bins) are rebuilt
        for the real rig as they would be. Returns the seconds it took."""
        start = time.perf_counter()
        self.predict(ring_frame(self.cfg))  # ego2world None: the map memory keeps nothing (MapMemory.update)
        for predictor, _ in self.fallbacks.values():
            predictor.warm_up()
        return time.perf_counter() - start

    def _remember(self, pred, lidar2world, stamp_us):
        """Fuse ``pred.bev_probs`` with the map memory in place (timed as post-processing); returns ``pred``."""
        if self.map_memory is not None and pred.bev_probs is not None:
            t0 = time.perf_counter()
            pred.bev_probs, note = self.map_memory.update(pred.bev_probs, lidar2world, stamp_us)
            pred.warnings = list(pred.warnings) + ([note] if note else [])
            pred.timings_ms["postprocess"] = pred.timings_ms.get("postprocess", 0.0) + (time.perf_counter() - t0) * 1e3
        return pred

    def _finish(self, pred, used_lidar, lidar2ego):
        """The map-reading last steps, in place and noted (timed as post-processing); returns ``pred``. Without
        LiDAR (``model.occ_ground_from_map``): the ground voxels' classes from the map ``pred`` reports (after the
        memory; :func:`ground_from_map`). With LiDAR (``model.map_logit_offsets``): the map's per-class offsets
        (:func:`offset_map`)."""
        t0, ground = time.perf_counter(), self.occ_ground_t is not None and not used_lidar
        if ground and pred.occ_labels is not None and pred.bev_probs is not None:
            pred.occ_labels, changed = ground_from_map(pred.occ_labels, pred.bev_probs, lidar2ego, self.occ_ground_t)
            pred.warnings = list(pred.warnings) + [f"occupancy: {changed} ground voxels relabelled from the BEV map "
                                                   f"(model.occ_ground_from_map={self.occ_ground_t:g})"]
        if self.map_offsets is not None and used_lidar and pred.bev_probs is not None:
            pred.bev_probs = offset_map(pred.bev_probs, self.map_offsets)
        pred.timings_ms["postprocess"] = pred.timings_ms.get("postprocess", 0.0) + (time.perf_counter() - t0) * 1e3
        return pred

    # ------------------------------------------------------------------ fallback models
    def set_fallback(self, kind, predictor, name=None):
        """Run the Predictor ``predictor`` instead of this model on the frames of ``kind``: ``'no_lidar'`` (no
        LiDAR points) or ``'no_cameras'`` (no usable camera); ``name`` (e.g. its config file) goes into the
        notes. ``ValueError`` says why a model cannot stand in (:func:`fallback.fallback_problem`)."""
        if not isinstance(predictor, Predictor):
            raise ValueError(f"fallback {kind}: expected a Predictor, got {type(predictor).__name__}")
        problem = fallback_problem(self, kind, predictor)
        if problem:
            raise ValueError(problem)
        predictor.map_memory = None  # this Predictor's memory spans every frame, whichever model ran it
        self.fallbacks[kind] = (predictor, name or kind)

    # ------------------------------------------------------------------ preprocessing
    def batch_for(self, sample, has_lidar=True):
        """The test-time batch of one ``sample`` on the device (no ground truth), and the problems found."""
        item, problems = inference_item(sample, self.cameras, self.image_aug, self.num_sweeps, self.point_cloud_range,
                                        pool=self.camera_pool)
        batch = collate([item])
        if not has_lidar:
            batch["lidar_mask"][:] = False
        return to_device(batch, self.device), problems

    def withheld_batch(self, sample, withhold=()):
        """:meth:`batch_for` with the sensors of ``withhold`` (checked names, see :meth:`predict_sample`) kept
        from the model: the cameras dropped from ``sample``, and without LiDAR no point reaches any branch
        (camera depth input, refiners, cues)."""
        withhold = check_withhold(withhold)
        sample = without_cameras(sample, withhold)
        batch, problems = self.batch_for(sample, has_lidar="lidar" not in withhold)
        if "lidar" in withhold:
            batch["points"] = [p[:0] for p in batch["points"]]
        return batch, problems

    # ------------------------------------------------------------------ inference
    def _uses(self, sample, has_lidar):
        """``(LiDAR used, cameras used)``: what of ``sample`` this model can run on."""
        use_lidar = has_lidar and self.model.lidar_encoder is not None
        use_cams = bool(set(sample.cameras) & set(self.cameras)) and self.model.camera_encoder is not None
        return use_lidar, use_cams

    def _empty(self, notes):
        """The result of a frame with no usable modality (no boxes, zero BEV, all-free occupancy)."""
        occ = self.model.head.occ if "occ" in self.tasks else None  # the configured grid: Occ3D or OpenOccupancy
        return empty_prediction(notes, (len(BEV_MAP_CLASSES),) + BEV_MAP_GRID.shape if "map" in self.tasks else None,
                                occ.grid.shape if occ else None, occ.free_index if occ else 0)

    def _run(self, batch, notes, t0):
        condition = sensor_condition(batch, self.model.lidar_encoder is not None, self.model.camera_encoder is not None)
        if self.sensor_norms is not None:
            if self.sensor_norms.use(condition) is not None:
                notes = notes + [f"BatchNorm statistics of the {condition.replace('_', ' ')} condition"]
        t1 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None
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
        if condition == "no_lidar" and self.occ_fill is not None and pred.occ_labels is not None:
            pred.occ_labels, filled = fill_free(pred.occ_labels, *self.occ_fill)
            pred.warnings = pred.warnings + [f"occupancy: {filled} free voxels filled from the training prior "
                                             f"(model.occ_prior_fill={self.occ_fill_mode})"]
        if condition == "no_lidar" and self.camera_map_blend and pred.bev_probs is not None:  # in model.predict
            pred.warnings = pred.warnings + [f"map: {self.camera_map_blend:g} of it from the camera branch's map head "
                                             "(model.camera_map_blend)"]
        pred.timings_ms = {
            "preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3, "postprocess": (time.perf_counter() - t2) * 1e3,
        }
        return pred

    def predict(self, frame: Frame) -> Prediction:
        """Run on a live :class:`Frame`."""
        t0 = time.perf_counter()
        notes = []
        sample, has_lidar = frame_to_sample(frame, notes, self.needs_lidar2ego)
        lidar2world = None if frame.ego2world is None else sample.lidar2global
        use_lidar, use_cams = self._uses(sample, has_lidar)
        fallback = choose_fallback(self.fallbacks, has_lidar, use_cams)
        if fallback is not None:
            pred = run_fallback(fallback, lambda predictor: predictor.predict(frame))
            return self._remember(pred, lidar2world, sample.timestamp)
        if not has_lidar:
            notes.append("no LiDAR points")
        if not use_cams:
            notes.append("no usable camera")
        for note in notes:
            warnings.warn(f"Predictor: {note}", stacklevel=2)
        if not use_lidar and not use_cams:
            return self._empty(notes)  # no map evidence: the memory is left as it is
        batch, _ = self.batch_for(sample, has_lidar)
        pred = self._remember(self._run(batch, notes, t0), lidar2world, sample.timestamp)
        return self._finish(pred, use_lidar, sample.lidar2ego)

    def predict_sample(self, sample: Sample, withhold=()) -> Prediction:
        """Run on a dataset :class:`Sample` (evaluation), through the same test-time transform.

        ``withhold``: sensors kept from the model, as if they had dropped out (the degraded-sensor rows of
        the learning benchmark): ``'lidar'``, ``'cameras'`` (all six) and/or camera names. The prediction's
        ``warnings`` name them; with nothing left the result is the empty one, as in :meth:`predict`."""
        t0 = time.perf_counter()
        withhold = check_withhold(withhold)
        notes = [f"{name} withheld" for name in withhold]
        sample = without_cameras(sample, withhold)
        use_lidar, use_cams = self._uses(sample, "lidar" not in withhold)
        fallback = choose_fallback(self.fallbacks, "lidar" not in withhold, use_cams)
        if fallback is not None:
            pred = run_fallback(fallback, lambda predictor: predictor.predict_sample(sample, withhold))
            return self._remember(pred, sample.lidar2global, sample.timestamp)
        if not use_lidar and not use_cams:
            return self._empty(notes)  # no map evidence: the memory is left as it is
        batch, problems = self.withheld_batch(sample, withhold)
        notes += [message for kind, _, message in problems if kind != "camera_missing"]
        pred = self._remember(self._run(batch, notes, t0), sample.lidar2global, sample.timestamp)
        return self._finish(pred, use_lidar, sample.lidar2ego)
