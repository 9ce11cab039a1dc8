"""Writes ``tests/data/pre_head_split.pth``: a checkpoint of the model as it was BEFORE the multi-task head was
split into per-task modules (issue #18), with an input batch and that model's own predictions on it.

Kept for the record: it ran ONCE, at commit eff7413, with the old code (the flat ``model.head`` keys such as
``num_det_queries`` / ``occ_lidar_cues``, state-dict keys ``head.det_init.*``, ``head.occ_count_all``, ...):

    git worktree add /work/before eff7413
    PYTHONPATH=/work/before python tests/data/make_pre_head_split_checkpoint.py /work/before

It does not run against the current code (whose config rejects the old flat keys). ``tests/test_checkpoint_compat.py``
loads the file with the current code through the normal loading path (``torch.load(weights_only=True)``, the key
map of ``perception.models.weights``) and checks that the predictions are the same.

The model: ``configs/tiny.py`` without the camera (LiDAR pillars only), shrunk (16 channels, one decoder layer,
d_model 16) so that the file stays small, with every head part present: detection with ``det_upsample=2`` and the
dense offset head, map, occupancy with the LiDAR cue refiner, the box refiner. Seeded random weights, a few
layers scaled up so that the outputs are not all near their initial priors, and non-zero occupancy class counts
(so the inference-time prior correction does something).
"""

import hashlib
import sys
from pathlib import Path

import torch

# The model, as --cfg-options of configs/tiny.py in the OLD (flat model.head) layout.
OLD_OPTIONS = [
    "model.camera=None", "data.cameras=()",
    "model.lidar.out_channels=16", "model.lidar.pillar_channels=16", "model.lidar.layer_channels=(16, 32)",
    "model.lidar.layer_nums=(1, 1)",
    "model.fusion.out_channels=16", "model.fusion.fused_channels=16", "model.fusion.backbone_channels=(16, 32)",
    "model.fusion.backbone_layers=(1, 1)",
    "model.head.num_layers=1", "model.head.d_model=16", "model.head.num_heads=2", "model.head.ffn_dim=32",
    "model.head.num_det_queries=30", "model.head.det_upsample=2", "model.head.det_offset_head=True",
    "model.head.occ_channels=8", "model.head.occ_height_bins=4", "model.head.occ_bev_height_bins=4",
    "model.refiner.channels=(16, 32)", "model.score_threshold=0.0",
]
# Fixed flat indices at which the dense outputs are recorded (besides their sums / histogram / hash).
NUM_PROBES = 512


def make_batch():
    """Two LiDAR-only samples (LiDAR frame, metres): ground, three box-shaped clusters (moved in the second
    sample) and clutter. ``lidar2ego``: nuScenes-like, 90 deg about z."""
    g = torch.Generator().manual_seed(0)
    points = []
    for shift in (0.0, 7.0):
        ground = torch.rand(1200, 3, generator=g) * torch.tensor([80.0, 80.0, 0.2]) - torch.tensor([40.0, 40.0, 1.9])
        boxes = []
        for cx, cy, length, w, h in ((8.0 + shift, 3.0, 4.5, 1.9, 1.6), (-12.0, 15.0 - shift, 10.0, 2.8, 3.0),
                                     (4.0, -9.0, 0.7, 0.6, 1.7)):
            rel = torch.rand(200, 3, generator=g) - 0.5
            boxes.append(rel * torch.tensor([length, w, h]) + torch.tensor([cx, cy, -1.8 + h / 2]))
        clutter = torch.rand(200, 3, generator=g) * torch.tensor([100.0, 100.0, 6.0]) - torch.tensor([50.0, 50.0, 2.0])
        xyz = torch.cat([ground, *boxes, clutter])
        # intensity, time lag
        extra = torch.cat([torch.rand(len(xyz), 1, generator=g) * 255, torch.zeros(len(xyz), 1)], 1)
        points.append(torch.cat([xyz, extra], 1).float())
    lidar2ego = torch.tensor([[0.0, 1.0, 0.0, 0.94], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.84],
                              [0.0, 0.0, 0.0, 1.0]])
    return {
        "points": points,
        "lidar_mask": torch.tensor([True, True]),
        "bev_aug": torch.eye(4)[None].repeat(2, 1, 1),
        "lidar2ego": lidar2ego[None].repeat(2, 1, 1),
    }


def summarise(results):
    """``model.predict`` outputs: boxes / scores / labels in full; ``bev_probs`` and ``occ_labels`` as sums,
    values at fixed probe indices, and (occupancy) a class histogram and the SHA-256 of the uint8 bytes."""
    g = torch.Generator().manual_seed(1)
    out = []
    for r in results:
        bev, occ = r["bev_probs"].float(), r["occ_labels"]
        bev_probe = torch.randint(bev.numel(), (NUM_PROBES,), generator=g)
        occ_probe = torch.randint(occ.numel(), (NUM_PROBES,), generator=g)
        out.append({
            "boxes": r["boxes"].clone(), "scores": r["scores"].clone(), "labels": r["labels"].clone(),
            "bev_sum": bev.double().sum(dim=(1, 2)), "bev_probe": bev_probe, "bev_values": bev.flatten()[bev_probe],
            "occ_shape": list(occ.shape), "occ_bincount": torch.bincount(occ.flatten().long(), minlength=256),
            "occ_sha256": hashlib.sha256(occ.contiguous().numpy().tobytes()).hexdigest(),
            "occ_probe": occ_probe, "occ_values": occ.flatten()[occ_probe].clone(),
        })
    return out


def main(old_repo, out_path):
    import perception
    from perception.config import load_config
    from perception.models import build_model
    from perception.training.checkpoint import rng_state, save_checkpoint

    print(f"perception from {Path(perception.__file__).parent} (must be the old code's)")
    from perception.training.optim import build_optimizer, build_scheduler

    cfg = load_config(Path(old_repo) / "configs" / "tiny.py", OLD_OPTIONS)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    head = model.head
    with torch.no_grad():
        torch.nn.init.normal_(head.det_init.heatmap_head[-1].weight, std=1.0)
        torch.nn.init.normal_(head.det_init.offset_head[-1].weight, std=0.3)
        torch.nn.init.normal_(head.det_head.cls[-1].weight, std=2.0)
        for layer in (*head.occ_head.mlp, *head.occ_head.cue_refiner):  # voxel logits that vary over the grid
            if isinstance(layer, torch.nn.Conv1d):
                torch.nn.init.normal_(layer.weight, std=1.0)
                torch.nn.init.zeros_(layer.bias)
        head.occ_head.cue_refiner[0].weight[:, -6:] *= 300  # the six LiDAR cues (< 1) against logits of ~100
        for p in head.map_head.pixel_embed[-1].parameters():
            torch.nn.init.normal_(p, std=0.5)
        for p in (*model.refiner.quality.parameters(), *model.refiner.out.parameters()):
            torch.nn.init.normal_(p, std=0.5)
        head.occ_count_all.copy_(5000 + 100 * torch.arange(18, dtype=torch.float64))  # a shift of -0.3 ... 0.3
        head.occ_count_sampled.copy_(5000 + 100 * torch.arange(17, -1, -1, dtype=torch.float64))
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        results = model.predict(batch)
    optimizer = build_optimizer(model, float(cfg.train.lr), float(cfg.train.weight_decay))
    scheduler = build_scheduler(optimizer, cfg.train.schedule, float(cfg.train.lr), 10, float(cfg.train.pct_start))
    state = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": None,
        "ema": None,  # train.ema is False in tiny
        "epoch": 0,
        "step": 0,
        "config": cfg.to_dict(),
        "rng": rng_state(),
        # for tests/test_checkpoint_compat.py
        "test_generator": {"commit": "eff7413", "config": "configs/tiny.py", "cfg_options": OLD_OPTIONS},
        "test_batch": batch,
        "test_predictions": summarise(results),
    }
    save_checkpoint(out_path, state)
    print(f"wrote {out_path} ({Path(out_path).stat().st_size / 1024:.0f} KiB)")
    for r in results:
        occ = torch.bincount(r["occ_labels"].flatten().long(), minlength=18)
        print(f"  {len(r['boxes'])} boxes, scores {r['scores'][:8].tolist()}, labels {r['labels'].tolist()}, occupancy "
              f"histogram {occ.tolist()}")


if __name__ == "__main__":
    old = sys.argv[1] if len(sys.argv) > 1 else "/work/before"
    main(old, Path(__file__).resolve().parent / "pre_head_split.pth")
