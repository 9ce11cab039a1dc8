"""The measurements behind ``perception bench`` (see :mod:`perception.bench`).

Every frame goes through ``Predictor.predict_sample`` (the test-time transform, the model, the numpy
conversion) exactly as evaluation runs it. Stage times: the model's timing hook
(:mod:`perception.models.timing`: CPU ``perf_counter``; CUDA events, read after one synchronize per frame)
plus the Predictor's own ``preprocess`` / ``postprocess``; end-to-end latency: wall clock around
``predict_sample``. Reported per stage: median, p90 and mean over the timed frames (a stage that did not
run in a frame, e.g. the refiner without boxes, counts 0 there). The multi-task vs single-task comparison
is in :mod:`perception.bench.single_task`.
"""

import os
import resource
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from perception.bench.frames import dataroot_samples, synthetic_samples
from perception.config import load_config
from perception.environment import cpu_info
from perception.models.timing import StageTimer
from perception.runtime import Predictor

# Report order; "bev_pool" is inside "view_transform" and "occ_cues" is computed before the heads.
STAGES = ("preprocess", "voxelization", "lidar_backbone", "image_backbone", "view_transform", "bev_pool", "fusion",
          "queries", "decoder", "det_head", "map_head", "occ_cues", "occ_head", "decode", "refiner", "network",
          "postprocess")
NESTED = {"bev_pool": "view_transform"}
STAGE_LABELS = {
    "preprocess": "preprocess (test-time transform, collate)",
    "voxelization": "voxelization",
    "lidar_backbone": "LiDAR backbone (PFN + SECOND/FPN)",
    "image_backbone": "image backbone + FPN",
    "view_transform": "view transform (LiDAR depth, depth net, pooling)",
    "bev_pool": "  of which BEV pooling",
    "fusion": "fusion (MAFI + BEV backbone)",
    "queries": "task queries (projections, query init)",
    "decoder": "shared decoder",
    "det_head": "det head",
    "map_head": "map head",
    "occ_cues": "occupancy LiDAR cues",
    "occ_head": "occ head",
    "decode": "decode (boxes, map probs, occ argmax)",
    "refiner": "box refiner",
    "network": "ONNX Runtime session (network)",
    "postprocess": "postprocess (to numpy)",
}


def machine_kind(device="cpu"):
    """A short name of this machine's kind for the baseline: CPU model and count (and the GPU on CUDA)."""
    kind = f"{cpu_info()[0]} x{os.cpu_count()}"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        kind += f" / {torch.cuda.get_device_name()}"
    return kind


def _reset_peak_rss():
    """Reset the kernel's peak-RSS counter of this process (Linux ``clear_refs`` 5); False when unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb():
    """Peak resident set size of this process in MiB (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile_summary(values):
    """``{median_ms, p90_ms, mean_ms, min_ms}`` of a list of milliseconds."""
    a = np.asarray(values, dtype=np.float64)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "mean_ms": float(a.mean()),
            "min_ms": float(a.min())}


def make_predictor(config, checkpoint=None, device="cpu", fp16=False, compile_model=False, backend="torch",
                   cfg_options=(), onnx_path=None, bf16=False):
    """A Predictor for the bench: PyTorch (optionally ``torch.compile``d submodules, fp16 autocast on CUDA)
    or ONNX Runtime (``onnx_path``; :class:`perception.export.onnx_runtime.OnnxPredictor`)."""
    if backend == "onnxruntime":
        from perception.export.onnx_runtime import OnnxPredictor  # optional: ONNX Runtime (the export extra)

        return OnnxPredictor(onnx_path, device=device)
    if backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
    cfg = load_config(config, list(cfg_options)) if isinstance(config, (str, os.PathLike)) else config
    predictor = Predictor(cfg, checkpoint, device=device, fp16=fp16 if device == "cuda" else False, bf16=bf16)
    if compile_model:
        compile_submodules(predictor.model)
    return predictor


def compile_submodules(model):
    """``torch.compile`` the dense sub-networks (image backbone + FPN, depth net, LiDAR BEV backbone, fusion
    neck, decoder): the Python parts around them (voxelization, pooling, decoding) stay eager."""
    cam, lidar = model.camera_encoder, model.lidar_encoder
    if cam is not None:
        cam.backbone = torch.compile(cam.backbone, dynamic=False)
        cam.fpn = torch.compile(cam.fpn, dynamic=False)
        cam.depth_net = torch.compile(cam.depth_net, dynamic=False)
    if lidar is not None and hasattr(lidar, "bev_backbone"):
        lidar.bev_backbone = torch.compile(lidar.bev_backbone, dynamic=False)
    model.neck.backbone = torch.compile(model.neck.backbone, dynamic=False)
    model.head.decoder = torch.compile(model.head.decoder, dynamic=False)
    return model


def time_frames(predictor, samples, frames, warmup=2):
    """Run ``warmup`` then ``frames`` frames (cycling through ``samples``). Returns per-frame records
    ``{'total': ms, 'stages': {stage: ms}, 'boxes': K}`` and the peak memory (MiB) of the timed frames."""
    device = predictor.device
    for i in range(warmup):
        predictor.predict_sample(samples[i % len(samples)])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    reset = _reset_peak_rss()
    records = []
    with StageTimer(device) as timer:
        timer.collect()
        for i in range(frames):
            sample = samples[i % len(samples)]
            t0 = time.perf_counter()
            pred = predictor.predict_sample(sample)
            total = (time.perf_counter() - t0) * 1e3
            stages = timer.collect()
            stages["preprocess"] = pred.timings_ms.get("preprocess", 0.0)
            stages["postprocess"] = pred.timings_ms.get("postprocess", 0.0)
            records.append({"total": total, "stages": stages, "boxes": int(len(pred.boxes))})
    memory = {"cpu_peak_rss_mb": peak_rss_mb(), "cpu_peak_rss_reset": reset}
    if device.type == "cuda":
        memory["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return records, memory


def summarize(records):
    """``(latency summary, {stage: summary})`` over the frame records of :func:`time_frames`."""
    names = [s for s in STAGES if any(s in r["stages"] for r in records)]
    names += sorted({s for r in records for s in r["stages"]} - set(names))
    stages = {s: percentile_summary([r["stages"].get(s, 0.0) for r in records]) for s in names}
    return percentile_summary([r["total"] for r in records]), stages


def count_flops(predictor, sample):
    """FLOPs of one frame through the model (``torch.utils.flop_counter.FlopCounterMode``: matmuls,
    convolutions, attention; gathers, ``grid_sample``, the numba kernels and elementwise ops are not
    counted). Returns ``{'total': flops, 'by_module': {top-level module: flops}}``."""
    counter = FlopCounterMode(display=False, depth=2)
    with counter:
        predictor.predict_sample(sample)
    by_module = {}
    for name, ops in counter.get_flop_counts().items():
        if name != "Global" and name.count(".") == 0:
            by_module[name] = int(sum(ops.values()))
    return {"total": int(counter.get_total_flops()), "by_module": by_module}


def parameter_count(predictor):
    model = getattr(predictor, "torch_model", None) or predictor.model
    return int(sum(p.numel() for p in model.parameters()))


def run_bench(config, checkpoint=None, device="cpu", frames=20, warmup=2, fp16=False, compile_model=False,
              backend="torch", cfg_options=(), dataroot=None, version="v1.0-trainval", flops=True, samples=None,
              onnx_path=None, seed=0, bf16=False):
    """All numbers of one configuration; the dict ``perception bench --json`` writes (see the CLI doc)."""
    predictor = make_predictor(config, checkpoint, device, fp16, compile_model, backend, cfg_options, onnx_path,
                               bf16)
    cfg = predictor.cfg
    source = "given"
    if samples is None:
        if dataroot:
            samples, source = dataroot_samples(cfg, dataroot, version, frames), f"{dataroot} ({version})"
        else:
            samples, root = synthetic_samples(cfg, frames, seed=seed)
            source = f"synthetic ({root})"
    records, memory = time_frames(predictor, samples, frames, warmup)
    latency, stages = summarize(records)
    total_ms = sum(r["total"] for r in records)
    result = {
        "config": str(getattr(cfg, "filename", None) or config),
        "backend": backend,
        "device": device,
        "device_name": machine_kind(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fp16": bool(getattr(predictor, "fp16", False)),
        "bf16": bool(getattr(predictor, "bf16", False)),
        "compile": bool(compile_model),
        "frames": int(frames),
        "warmup": int(warmup),
        "frame_source": source,
        "points_per_frame": int(np.median([len(s.points) for s in samples[: min(len(samples), 4)]])),
        "fps": frames / (total_ms / 1e3) if total_ms > 0 else float("inf"),
        "latency_ms": latency,
        "stages": stages,
        "peak_mem_mb": memory.get("cuda_max_allocated_mb", memory["cpu_peak_rss_mb"]),
        "memory": memory,
        "params": parameter_count(predictor),
        "boxes_per_frame": float(statistics.median(r["boxes"] for r in records)),
    }
    if flops:
        result["flops_per_frame"] = count_flops(predictor, samples[0]) if backend == "torch" else None
    result["_samples"] = samples  # for --compare-single-task (dropped before writing JSON)
    result["_predictor"] = predictor
    return result


def format_table(result):
    """The stdout table of one bench result."""
    lines = [
        f"{result['config']}  backend={result['backend']}  device={result['device']} ({result['device_name']})  "
        f"threads={result['threads']}  fp16={result['fp16']}  bf16={result['bf16']}  "
        f"frames={result['frames']} after {result['warmup']} warm-up",
        f"{'stage':52s} {'median ms':>10s} {'p90 ms':>10s}",
    ]
    for name, s in result["stages"].items():
        lines.append(f"{STAGE_LABELS.get(name, name):52s} {s['median_ms']:10.1f} {s['p90_ms']:10.1f}")
    lat = result["latency_ms"]
    lines.append(f"{'end to end':52s} {lat['median_ms']:10.1f} {lat['p90_ms']:10.1f}")
    lines.append(f"frames/s {result['fps']:.2f}   peak memory {result['peak_mem_mb']:.0f} MiB   "
                 f"params {result['params'] / 1e6:.2f} M" + (
                     f"   FLOPs/frame {result['flops_per_frame']['total'] / 1e9:.2f} G"
                     if result.get("flops_per_frame") else ""))
    if "single_task" in result:
        st = result["single_task"]
        parts = ", ".join(f"{t} {ms:.1f}" for t, ms in st["single_task_ms"].items())
        lines.append(f"multi-task {st['multitask_ms']:.1f} ms vs single-task {parts} "
                     f"(sum {st['single_task_sum_ms']:.1f}) -> multitask_ratio {st['multitask_ratio']:.3f}")
    if "baseline" in result:
        lines.append(f"baseline: {result['baseline']['message']}")
    return "\n".join(lines)
