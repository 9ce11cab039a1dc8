"""Choose the BEV map's per-class logit offsets (``model.map_logit_offsets``) on the learning benchmark's val set.

Each model runs once over the val split as shipped (map memory and all) with the offsets off; every candidate
offset b then goes through :func:`perception.runtime.map_offsets.offset_map` (the runtime's own function, the same
b for every class) and is scored with the BEVFusion map protocol (:class:`perception.eval.bev_iou.BevIou`). A
class's IoU depends on its own offset only, so one pass per b gives every class's curve. ``--prior-bev`` scores
the no-input prior's raster (a saved ``bev_probs`` .npz) the same way, so that the prior can be calibrated like
the model. A dataroot marked as the benchmark's test set (``LEARNING_BENCHMARK_TEST_SET``) is refused.

The rule (docs/benchmarks.md, candidate J; written before the run): per class, the val IoU is averaged over the
models given (the training seeds); the chosen offset is the one closest to 0 whose mean IoU is within
``--tolerance`` (0.001) of the best. The offsets are adopted when they raise the val mIoU of every model.

    python benchmarks/choose_map_offsets.py configs/tiny.py S0.pth S1.pth S2.pth \\
        --dataroot .cache/learn/v2_val_s8_k10_seed2000 --out outputs/choose_map_offsets

Writes ``OUT/summary.json`` and prints each class's chosen offset.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from decode_sweep import TEST_MARKER  # benchmarks/ is on sys.path when run as a script
from nuscenes.nuscenes import NuScenes

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES
from perception.eval.bev_iou import BevIou
from perception.eval.runner import load_split_samples, split_sample_tokens
from perception.runtime import Predictor
from perception.runtime.map_offsets import offset_map


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="the fusion config (its model.map_logit_offsets are turned off here)")
    p.add_argument("checkpoints", nargs="*", help="one per training seed")
    p.add_argument("--prior-bev", help="a saved no-input prior .npz (key bev_probs): score it instead of models")
    p.add_argument("--dataroot", required=True, help="the learning benchmark's val dataroot")
    p.add_argument("--version", default="v1.0-trainval", help="nuScenes version folder (default v1.0-trainval)")
    p.add_argument("--split", default="val", help="split name in that dataroot (default val)")
    p.add_argument("--out", required=True, help="folder for summary.json (and the split's index)")
    p.add_argument("--offsets", default="-3,-2.5,-2,-1.5,-1,-0.75,-0.5,-0.25,0.25,0.5,0.75,1,1.5,2,2.5,3",
                   help="candidate logits, comma-separated (0 is always one)")
    p.add_argument("--tolerance", type=float, default=0.001,
                   help="mean IoU within which of a class's best the offset closest to 0 wins (default 0.001)")
    p.add_argument("--bf16", action="store_true", help="the model under bf16 autocast (as perception eval --bf16)")
    return p.parse_args(argv)


def model_maps(config, checkpoint, samples, bf16):
    """The remembered map of each of ``samples`` (time order, a new memory per scene, as ``perception eval``)."""
    predictor = Predictor(load_config(config, ["model.map_logit_offsets=None"]), checkpoint, bf16=bf16)
    maps, scene = [], None
    for s in samples:
        if s.scene_name != scene:
            predictor.reset_memory()
            scene = s.scene_name
        maps.append(predictor.predict_sample(s).bev_probs)  # (6, 200, 200), LiDAR frame
    return maps


def curves(maps, gts, offsets):
    """``{b: {class: IoU}}``: each candidate offset applied to every class, BEVFusion-scored."""
    out = {}
    for b in offsets:
        iou = BevIou()
        for probs, gt in zip(maps, gts, strict=True):
            iou.update(offset_map(probs, [b] * len(BEV_MAP_CLASSES)), gt)
        out[b] = iou.compute()["per_class"]
    return out


def choose(per_model, offsets, tolerance):
    """Per class the offset closest to 0 within ``tolerance`` of the best mean IoU over the models."""
    chosen = []
    for name in BEV_MAP_CLASSES:
        mean = {b: float(np.mean([c[b][name] for c in per_model])) for b in offsets}
        best = max(mean.values())
        chosen.append(min((b for b, v in mean.items() if v >= best - tolerance), key=abs))
    return chosen


def main(argv=None):
    args = parse_args(argv)
    root = Path(args.dataroot)
    if (root / TEST_MARKER).exists():
        raise SystemExit(f"--dataroot {root} is the learning benchmark's test set ({TEST_MARKER}): choose on val")
    if bool(args.checkpoints) == bool(args.prior_bev):
        raise SystemExit("give model checkpoints or --prior-bev, not both")
    nusc = NuScenes(version=args.version, dataroot=str(root), verbose=False)
    samples = load_split_samples(nusc, args.split, split_sample_tokens(nusc, args.split), str(Path(args.out) / "index"))
    gts = [s.bev_map for s in samples]
    offsets = sorted({0.0} | {float(b) for b in args.offsets.split(",")})
    if args.prior_bev:
        prior = np.load(args.prior_bev)["bev_probs"].astype(np.float32)
        runs = {args.prior_bev: [prior] * len(samples)}
    else:
        runs = {c: model_maps(args.config, c, samples, args.bf16) for c in args.checkpoints}
    per_model = [curves(maps, gts, offsets) for maps in runs.values()]
    chosen = choose(per_model, offsets, args.tolerance)

    def miou(curve, per_class_offsets):
        return float(np.mean([curve[b][n] for b, n in zip(per_class_offsets, BEV_MAP_CLASSES, strict=True)]))

    before = [miou(c, [0.0] * len(BEV_MAP_CLASSES)) for c in per_model]
    after = [miou(c, chosen) for c in per_model]
    for b, name in zip(chosen, BEV_MAP_CLASSES, strict=True):
        ious = " ".join(f"{np.mean([c[o][name] for c in per_model]):.3f}" for o in offsets)
        print(f"{name:14s} chosen {b:+.2f}   mean IoU at {offsets}: {ious}")
    adopted = all(a > b for a, b in zip(after, before, strict=True))
    print(f"val mIoU per model: {[round(v, 4) for v in before]} -> {[round(v, 4) for v in after]}; "
          f"{'adopted' if adopted else 'not adopted'} (every model must gain)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({
        "config": args.config, "runs": list(runs), "dataroot": str(root), "split": args.split,
        "samples": len(samples), "tolerance": args.tolerance, "offsets": offsets,
        "chosen": dict(zip(BEV_MAP_CLASSES, chosen, strict=True)), "adopted": adopted,
        "val_miou_before": before, "val_miou_after": after,
        "curves": [{str(b): c[b] for b in offsets} for c in per_model],
    }, indent=1))


if __name__ == "__main__":
    main()
