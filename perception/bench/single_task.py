"""``perception bench --compare-single-task``: the multi-task model against its single-task counterparts on the
same frames, interleaved frame by frame so that machine load hits all of them alike. Latencies in ms (medians
of the end-to-end ``predict_sample`` wall clock).
"""

import os
import time

import numpy as np

from perception.bench.runner import make_predictor
from perception.config import head_task_section, load_config
from perception.models.weights import load_checkpoint, model_weights


def single_task_configs(config):
    """``{task: config}`` of the single-task counterparts: ``<name>_<task>.py`` beside the config when it
    exists (``tiny_det.py``, ...), else the config itself with ``model.tasks=(task,)`` (and no box refiner
    without 'det', no camera map loss nor its no-LiDAR blend without 'map'). Each value is ``(path, cfg_options)``."""
    cfg = load_config(config)
    base, ext = os.path.splitext(str(config))
    out = {}
    for task in cfg.model.tasks:
        path = f"{base}_{task}{ext}"
        if os.path.isfile(path):
            out[task] = (path, [])
        else:
            options = [f"model.tasks=('{task}',)"]
            if task != "det":
                options.append("model.refiner=None")
            if task != "occ" and head_task_section(cfg.model, "occ").get("lidar_cues"):
                options.append("model.head.occ.lidar_cues=False")
            if task != "map" and float(cfg.model.camera_map_weight) > 0:  # the camera map loss needs 'map'
                options += ["model.camera_map_weight=0", "model.camera_map_blend=0"]  # and so does its blend
            out[task] = (str(config), options)
    return out


def _load_matching(model, state):
    """Load the entries of a multi-task ``state`` dict whose names and shapes fit ``model`` (shared encoders,
    neck and the task's own head); the rest keep their initial weights."""
    own = model.state_dict()
    fit = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    model.load_state_dict(fit, strict=False)
    return len(fit), len(own)


def compare_single_task(multi, config, checkpoint, device, frames, warmup=2, cfg_options=()):
    """Multi-task predictor ``multi`` against the single-task configs (:func:`single_task_configs`) on the
    same samples, interleaved frame by frame (rotating the order). Returns ``{'multitask_ms',
    'single_task_ms': {task: ms}, 'multitask_ratio', ...}`` (medians of the end-to-end latency)."""
    samples = multi["_samples"]
    predictors = {"multi": multi["_predictor"]}
    state = model_weights(load_checkpoint(checkpoint)) if checkpoint else None
    loaded = {}
    for task, (path, options) in single_task_configs(config).items():
        p = make_predictor(path, None, device, multi["fp16"], False, "torch", list(cfg_options) + options,
                           bf16=multi.get("bf16", False))
        if state is not None:
            loaded[task] = _load_matching(p.model, state)
        predictors[task] = p
    for p in predictors.values():
        for i in range(warmup):
            p.predict_sample(samples[i % len(samples)])
    names = list(predictors)
    times = {n: [] for n in names}
    for i in range(frames):
        sample = samples[i % len(samples)]
        for k in range(len(names)):
            name = names[(i + k) % len(names)]
            t0 = time.perf_counter()
            predictors[name].predict_sample(sample)
            times[name].append((time.perf_counter() - t0) * 1e3)
    med = {n: float(np.median(v)) for n, v in times.items()}
    singles = {n: med[n] for n in names if n != "multi"}
    out = {
        "multitask_ms": med["multi"],
        "single_task_ms": singles,
        "single_task_sum_ms": float(sum(singles.values())),
        "multitask_ratio": med["multi"] / sum(singles.values()),
        "single_task_configs": {t: " ".join([p] + o) for t, (p, o) in single_task_configs(config).items()},
        "frames": int(frames),
    }
    if loaded:
        out["single_task_weights"] = {t: f"{a}/{b} tensors from the multi-task checkpoint"
                                      for t, (a, b) in loaded.items()}
    return out
