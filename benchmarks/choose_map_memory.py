"""Choose the BEV map memory's time constant (``model.map_memory_s``) on the learning benchmark's val set.

The model runs once over the val split with the memory off (each frame's own map); each candidate time
constant then replays those maps through :class:`perception.runtime.map_memory.MapMemory` (the runtime's own
class, frames in time order, a new memory per scene, as ``perception eval`` runs it) and is scored with the
BEVFusion map protocol (:class:`perception.eval.bev_iou.BevIou`). A dataroot marked as the benchmark's test set
(``LEARNING_BENCHMARK_TEST_SET``) is refused: nothing is chosen on the set that is reported.

The rule (written before the run): the shortest time constant whose val BEV mIoU is within ``--tolerance``
(0.001) of the best candidate's; no memory (0) is a candidate too. A short memory forgets a pose drift or a
changed road sooner, so it wins a tie.

    python benchmarks/choose_map_memory.py configs/tiny.py FUSION.pth --dataroot .cache/learn/v2_val_s8_k10_seed2000 \\
        --out outputs/choose_map_memory

Writes ``OUT/summary.json`` and prints one line per time constant.
"""

import argparse
import json
from pathlib import Path

from decode_sweep import TEST_MARKER  # benchmarks/ is on sys.path when run as a script
from nuscenes.nuscenes import NuScenes

from perception.config import load_config
from perception.eval.bev_iou import BevIou
from perception.eval.runner import load_split_samples, split_sample_tokens
from perception.runtime import Predictor
from perception.runtime.map_memory import MapMemory


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--dataroot", required=True, help="the learning benchmark's val dataroot")
    p.add_argument("--version", default="v1.0-trainval")
    p.add_argument("--split", default="val")
    p.add_argument("--out", required=True)
    p.add_argument("--time-constants", default="1,2,4,8,16,1000", help="candidates in seconds (0 is always one)")
    p.add_argument("--tolerance", type=float, default=0.001)
    p.add_argument("--bf16", action="store_true", help="the model under bf16 autocast (as perception eval --bf16)")
    return p.parse_args(argv)


def frame_maps(predictor, samples):
    """``[(scene, lidar2global, stamp_us, bev_probs, gt)]`` of ``samples`` in order, each frame alone."""
    out = []
    for s in samples:
        pred = predictor.predict_sample(s)
        out.append((s.scene_name, s.lidar2global, s.timestamp, pred.bev_probs, s.bev_map))
    return out


def score(frames, time_constant_s):
    """BEVFusion map scores of ``frames`` with a memory of ``time_constant_s`` seconds (0: none)."""
    iou, memory, scene = BevIou(), None, None
    for name, lidar2world, stamp, probs, gt in frames:
        if time_constant_s > 0:
            if name != scene:
                memory, scene = MapMemory(time_constant_s), name
            probs, _ = memory.update(probs, lidar2world, stamp)
        iou.update(probs, gt)
    return iou.compute()


def choose(results, tolerance):
    """The shortest time constant within ``tolerance`` of the best mIoU (``results``: {seconds: mIoU})."""
    best = max(results.values())
    return min(t for t, v in results.items() if v >= best - tolerance)


def main(argv=None):
    args = parse_args(argv)
    root = Path(args.dataroot)
    if (root / TEST_MARKER).exists():
        raise SystemExit(f"--dataroot {root} is the learning benchmark's test set ({TEST_MARKER}): choose on val")
    cfg = load_config(args.config, ["model.map_memory_s=0"])
    predictor = Predictor(cfg, args.checkpoint, device="cpu", bf16=args.bf16)
    nusc = NuScenes(version=args.version, dataroot=str(root), verbose=False)
    tokens = split_sample_tokens(nusc, args.split)
    samples = load_split_samples(nusc, args.split, tokens, str(Path(args.out) / "index"))
    frames = frame_maps(predictor, samples)
    candidates = [0.0] + [float(t) for t in args.time_constants.split(",")]
    rows = {t: score(frames, t) for t in candidates}
    miou = {t: r["mIoU"] for t, r in rows.items()}
    chosen = choose(miou, args.tolerance)
    for t, r in rows.items():
        per_class = " ".join(f"{k} {v:.3f}" for k, v in r["per_class"].items())
        print(f"map_memory_s {t:>7g}: BEV mIoU {r['mIoU']:.4f}  {per_class}{'  <- chosen' if t == chosen else ''}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({
        "config": args.config, "checkpoint": args.checkpoint, "dataroot": str(root), "split": args.split,
        "samples": len(samples), "tolerance": args.tolerance, "chosen": chosen,
        "rows": {str(t): {"mIoU": r["mIoU"], "per_class": r["per_class"]} for t, r in rows.items()},
    }, indent=1))


if __name__ == "__main__":
    main()
