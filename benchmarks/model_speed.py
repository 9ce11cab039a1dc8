"""Model speed and memory: inference latency per stage and a training step, for any config.

    python benchmarks/model_speed.py configs/nuscenes_full.py --device cuda --fp16 --points 300000

Inputs are synthetic tensors shaped like a real nuScenes frame (points uniformly in the point-cloud range,
six cameras on a ring with nuScenes-like intrinsics): the model's cost does not depend on their content,
except the LiDAR branch's on the number of occupied voxels, which ``--points`` sets. Prints one JSON
line; numbers for docs/benchmarks.md come from here, with the machine named.
"""

import argparse
import json
import platform
import time

import torch

from perception.config import load_config
from perception.models import build_model
from perception.runtime.ring_frame import ring_rig


def synthetic_batch(cfg, batch_size, num_points, device):
    """A batch in the format of docs/architecture.md with random content."""
    m = cfg.model
    x0, y0, z0, x1, y1, z1 = m.point_cloud_range
    lo, hi = torch.tensor([x0, y0, z0]), torch.tensor([x1, y1, z1])
    H, W = cfg.data.image_size
    n_cams = len(cfg.data.cameras)
    K, lidar2cam = (torch.as_tensor(m, dtype=torch.float32) for m in ring_rig(n_cams, W, H))
    K4 = torch.eye(4)
    K4[:3, :3] = K
    pts = []
    for _ in range(batch_size):
        xyz = lo + torch.rand(num_points, 3) * (hi - lo)
        pts.append(torch.cat([xyz, torch.rand(num_points, 1) * 255, torch.rand(num_points, 1) * 0.5], 1).to(device))
    B = batch_size
    eye = torch.eye(4).expand(B, 4, 4).contiguous()
    batch = {
        "points": pts,
        "lidar_mask": torch.ones(B, dtype=torch.bool),
        "images": torch.randn(B, n_cams, 3, H, W),
        "cam_mask": torch.ones(B, n_cams, dtype=torch.bool),
        "intrinsics": K.expand(B, n_cams, 3, 3).contiguous(),
        "lidar2cam": lidar2cam.expand(B, n_cams, 4, 4).contiguous(),
        "lidar2img": (K4 @ lidar2cam).expand(B, n_cams, 4, 4).contiguous(),
        "img_aug": torch.eye(3).expand(B, n_cams, 3, 3).contiguous(),
        "bev_aug": eye,
        "lidar2ego": eye.clone(),
        "gt_boxes": [torch.tensor([[5.0, 10.0, -1.0, 4.5, 1.9, 1.7, 0.3, 1.0, 0.0]], device=device)] * B,
        "gt_labels": [torch.zeros(1, dtype=torch.long, device=device)] * B,
        "gt_bev": (torch.rand(B, 6, 200, 200) > 0.7).float(),
        "gt_bev_valid": torch.ones(B, dtype=torch.bool),
        "gt_occ": torch.randint(0, 18, (B, 200, 200, 16)),
        "gt_occ_mask": torch.ones(B, 200, 200, 16, dtype=torch.bool),
        "gt_occ_valid": torch.ones(B, dtype=torch.bool),
        "meta": [{"token": f"bench{i}"} for i in range(B)],
    }
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(fn, device, warmup, iters):
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters * 1000.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--fp16", action="store_true", help="autocast fp16 (CUDA only)")
    p.add_argument("--points", type=int, default=34000, help="LiDAR points per frame (10 sweeps: ~300k)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-train", action="store_true", help="skip the training-step measurement")
    p.add_argument("--cfg-options", nargs="*", default=[])
    args = p.parse_args(argv)

    device = torch.device(args.device)
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg.model).to(device)
    batch = synthetic_batch(cfg, args.batch_size, args.points, device)
    amp = args.fp16 and device.type == "cuda"
    result = {
        "config": args.config,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "fp16": amp,
        "batch_size": args.batch_size,
        "points": args.points,
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
    }

    model.eval()
    stages = {}

    def infer():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            return model.predict(batch)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result["infer_ms"] = _time(infer, device, args.warmup, args.iters)
    if device.type == "cuda":
        result["infer_peak_mem_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30

    # Per stage: encoders + neck, then the head's forward and decoding.
    def enc():
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            return model.encode(batch)

    stages["encode_ms"] = _time(enc, device, 1, args.iters)
    result["stages"] = stages

    if not args.no_train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler(enabled=amp)

        def step():
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                losses = model(batch)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        result["train_step_ms"] = _time(step, device, 1, max(1, args.iters // 2))
        if device.type == "cuda":
            result["train_peak_mem_GiB"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
