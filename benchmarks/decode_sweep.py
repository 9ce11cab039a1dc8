"""Detection decoding sweep on a trained checkpoint: inference-only knobs, scored with the devkit.

The BEV encoders (cameras, LiDAR, fusion) run once per val sample; each variant then re-runs the shared
decoder + heads, the decoding and the point refiner with its own settings and is scored with the official
detection metric (``perception.eval.detection``). That is how ``configs/tiny.py`` chose its refiner passes,
score weight and score threshold (docs/benchmarks.md; on the v1 world's val scenes, which were also the
reported ones then). Sweep the learning benchmark's **val** dataset only: a dataroot marked as its test set
(``LEARNING_BENCHMARK_TEST_SET``, written by ``benchmarks/learn_synthetic.py``) is refused. Variant keys:

- ``score_threshold``: first-stage boxes kept (``model.score_threshold``),
- ``iterations`` / ``score_weight``: refiner passes and the weight of its point-based quality in the score
  (``model.refiner``), ``refine``: false scores the first stage alone,
- ``num_det_queries``: heatmap peaks taken as detection queries (``model.head.det.num_queries``).

    python benchmarks/decode_sweep.py configs/tiny.py outputs/run11/fusion/work/latest.pth \\
        --dataroot .cache/learn/synth_s20_k10_seed0 --out outputs/sweep_run11 \\
        --variants '{"shipped": {}, "two_passes": {"iterations": 2}, "no_refiner": {"refine": false}}'

Prints one line per variant (mAP, car AP and its AP@0.5 / AP@4 m, per-class AP) and writes
``OUT/summary.json``; each variant's submission and devkit metrics go to ``OUT/<variant>/``.
"""

import argparse
import json
import os
from pathlib import Path

import torch
from nuscenes.nuscenes import NuScenes

from perception.config import load_config
from perception.eval.detection import evaluate_detection, lidar_boxes_to_submission, make_submission, write_submission
from perception.eval.runner import load_split_samples, split_sample_tokens
from perception.runtime import Predictor

TEST_MARKER = "LEARNING_BENCHMARK_TEST_SET"  # a dataroot holding this file is never used for choosing settings
KNOBS = {"score_threshold", "iterations", "score_weight", "refine", "num_det_queries"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="config file the checkpoint was trained with, e.g. configs/tiny.py")
    p.add_argument("checkpoint", help="checkpoint file, e.g. outputs/run11/fusion/work/latest.pth")
    p.add_argument("--dataroot", required=True, help="nuScenes-format dataroot holding the split")
    p.add_argument("--version", default="v1.0-trainval", help="nuScenes version (default v1.0-trainval)")
    p.add_argument("--split", default="val", help="split scored (default val)")
    p.add_argument("--out", required=True, help="output folder: summary.json and one folder per variant")
    p.add_argument("--variants", default='{"config": {}}', help="JSON {name: {knob: value}}; {} = the config's values")
    return p.parse_args(argv)


def parse_variants(text):
    variants = json.loads(text)
    for name, knobs in variants.items():
        unknown = set(knobs) - KNOBS
        if unknown:
            raise ValueError(f"--variants {name!r}: unknown knob(s) {sorted(unknown)}; known: {sorted(KNOBS)}")
    return variants


def main(argv=None):
    args = parse_args(argv)
    if Path(args.dataroot, TEST_MARKER).exists():  # written by benchmarks/learn_synthetic.py
        raise SystemExit(f"decode_sweep: {args.dataroot} is the learning benchmark's test set; choose settings on "
                         "its val dataset (a number tuned on the set it is reported on is not a result)")
    variants = parse_variants(args.variants)
    predictor = Predictor(load_config(args.config), args.checkpoint)
    model = predictor.model
    if model.refiner is None and any({"iterations", "score_weight"} & set(k) for k in variants.values()):
        raise ValueError(f"{args.config}: no model.refiner, so 'iterations' / 'score_weight' cannot be swept")
    defaults = dict(score_threshold=model.score_threshold, num_det_queries=model.head.det.queries.num_queries,
                    refine=model.refiner is not None)
    if model.refiner is not None:
        defaults.update(iterations=model.refiner.iterations, score_weight=model.refiner.score_weight)

    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    tokens = split_sample_tokens(nusc, args.split)
    samples = load_split_samples(nusc, args.split, tokens, os.path.join(args.out, "index"))
    encoded = []  # (sample, batch, task BEVs): the encoders do not depend on any knob
    with torch.inference_mode():
        for s in samples:
            batch, _ = predictor.batch_for(s)
            encoded.append((s, batch, model.encode(batch)[0]))

    summary = {}
    for name, knobs in variants.items():
        k = {**defaults, **knobs}
        model.head.det.queries.num_queries = int(k["num_det_queries"])
        if model.refiner is not None:
            model.refiner.iterations, model.refiner.score_weight = int(k["iterations"]), float(k["score_weight"])
        det = {}
        with torch.inference_mode():
            for s, batch, task_bevs in encoded:
                out = model.head(task_bevs, batch)["det"]
                r = model.head.det.decode(out, float(k["score_threshold"]), model.max_boxes)[0]
                if k["refine"]:  # the second stage as M3Net.predict runs it (LiDAR frame)
                    r = model.refine_boxes([r], batch)[0]
                det[s.token] = lidar_boxes_to_submission(s.token, r["boxes"].numpy(), r["scores"].numpy(),
                                                         r["labels"].numpy(), s.lidar2global)
        folder = os.path.join(args.out, name)
        path = write_submission(os.path.join(folder, "results_nusc.json"), make_submission(det))
        metrics, _ = evaluate_detection(nusc, path, args.split, folder)
        car = metrics["per_class"]["car"]
        summary[name] = dict(knobs=k, mAP=metrics["mAP"], NDS=metrics["NDS"], car_ap=car["AP"],
                             per_class_ap={c: v["AP"] for c, v in metrics["per_class"].items()})
        print(f"{name:>16}: mAP {metrics['mAP']:.4f}  car AP {car['AP']:.4f} (@0.5 m {car['AP@0.5']:.3f}, "
              f"@4 m {car['AP@4.0']:.3f})  " + " ".join(f"{c} {v['AP']:.3f}" for c, v in metrics["per_class"].items()),
              flush=True)
    Path(args.out, "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
