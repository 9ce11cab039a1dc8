"""Learning benchmark on synthetic data: does the tiny model learn, per modality, within a CPU time budget?

1. synthesizes ``--scenes`` x ``--samples-per-scene`` keyframes (cached under ``--cache``; ~80 % train scenes,
   ~20 % held-out val scenes),
2. trains each variant (``fusion`` = ``--config``, ``lidar`` = configs/tiny_lidar.py, ``camera`` =
   configs/tiny_camera.py) for at most its wall-clock budget: a short calibration measures the step time and
   the run's step count (and so its LR schedule) is set to fit the budget, ``--max-minutes`` caps it,
3. evaluates each on the val scenes with ``perception eval`` (devkit detection mAP / NDS / per-class AP,
   BEV map mIoU, Occ3D mIoU),
4. writes ``OUT/<variant>/loss_curves.png`` (from ``log.jsonl``) and ``OUT/summary.json``.

    python benchmarks/learn_synthetic.py --minutes 30 --out outputs/learn --modalities fusion,lidar,camera
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANT_CONFIGS = {"lidar": REPO / "configs" / "tiny_lidar.py", "camera": REPO / "configs" / "tiny_camera.py"}
TARGETS = {"car_ap": 0.6, "map_present": 0.35, "bev_miou": 0.5, "occ_miou": 0.3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=20)
    p.add_argument("--samples-per-scene", type=int, default=10)
    p.add_argument("--minutes", type=float, default=30.0, help="training budget per variant (wall clock)")
    p.add_argument("--minutes-single", type=float, default=None,
                   help="budget of the lidar / camera variants (default --minutes)")
    p.add_argument("--config", default=str(REPO / "configs" / "tiny.py"), help="the fusion config")
    p.add_argument("--out", required=True)
    p.add_argument("--modalities", default="fusion,lidar,camera")
    p.add_argument("--cache", default=str(REPO / ".cache" / "learn"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calib-steps", type=int, default=6, help="steps timed to fit the step count to the budget")
    p.add_argument("--steps", type=int, default=None,
                   help="fusion step count (sets its LR schedule) instead of the calibrated one; --minutes still caps")
    p.add_argument("--steps-single", type=int, default=None, help="the same for the lidar / camera variants")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every variant (as in perception train), e.g. model.head.det_offset_head=True")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                   help="processes synthesizing the dataset (the files do not depend on it)")
    return p.parse_args(argv)


def perception_cmd(*args):
    return [sys.executable, "-m", "perception.cli.main", *map(str, args)]


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def calibrate(config, dataroot, work, steps, cfg_options=()):
    """Seconds per training step of ``config`` (median over ``steps`` after one warm-up step)."""
    subprocess.run(perception_cmd("train", config, "--work-dir", work, "--dataroot", dataroot, "--version",
                                  "v1.0-trainval", "--max-steps", steps + 1, "--cfg-options", "train.log_interval=1",
                                  *cfg_options),
                   check=True, stdout=subprocess.DEVNULL)
    times = [r["time_s"] for r in read_log(Path(work) / "log.jsonl")]
    deltas = sorted(b - a for a, b in zip(times, times[1:]))
    return deltas[len(deltas) // 2]


def plot_curves(log, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in log[0] if k.startswith("loss_") or k == "depth"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = [r["step"] for r in log]
    axes[0].plot(steps, [r["loss"] for r in log], label="total")
    axes[0].set_yscale("log")
    for i, k in enumerate(keys):  # matplotlib cycles 10 colours: dash the next ten so no two lines look alike
        axes[1].plot(steps, [r[k] for r in log], label=k, linestyle="-" if i < 10 else "--")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def headline(metrics):
    """The benchmark's numbers from ``metrics.json`` (None where a task is absent). ``map_present``: mean AP
    over the classes with a finite AP (the synthetic val scenes hold all 10 classes)."""
    det = metrics.get("detection") or {}
    ap = {c: row.get("AP") for c, row in (det.get("per_class") or {}).items()}
    present = [v for v in ap.values() if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return {
        "mAP": det.get("mAP"), "NDS": det.get("NDS"), "car_ap": ap.get("car"),
        "map_present": sum(present) / len(present) if present else None, "per_class_ap": ap,
        "bev_miou": (metrics.get("bev_map") or {}).get("mIoU"),
        "bev_per_class": (metrics.get("bev_map") or {}).get("per_class"),
        "occ_miou": (metrics.get("occupancy") or {}).get("mIoU"),
        "occ_geometry_iou": (metrics.get("occupancy") or {}).get("geometry_IoU"),
    }


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataroot = Path(args.cache) / f"synth_s{args.scenes}_k{args.samples_per_scene}_seed{args.seed}"
    version = "v1.0-trainval"
    summary = {"machine": f"{os.cpu_count()} CPU cores, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}",
               "dataroot": str(dataroot), "scenes": args.scenes, "samples_per_scene": args.samples_per_scene,
               "targets_fusion": TARGETS, "variants": {}}
    if not (dataroot / version / "sample.json").exists():
        from perception.synth.generate import generate_dataset

        t0 = time.time()
        print(f"[learn] synthesizing {args.scenes} x {args.samples_per_scene} into {dataroot}", flush=True)
        generate_dataset(dataroot, scenes=args.scenes, samples_per_scene=args.samples_per_scene, seed=args.seed,
                         workers=args.workers)
        summary["synth_seconds"] = round(time.time() - t0, 1)
    for variant in [m.strip() for m in args.modalities.split(",") if m.strip()]:
        config = args.config if variant == "fusion" else str(VARIANT_CONFIGS[variant])
        minutes = args.minutes if variant == "fusion" or args.minutes_single is None else args.minutes_single
        vdir = out / variant
        work = vdir / "work"
        fixed = args.steps if variant == "fusion" else args.steps_single
        if fixed is None:  # the step count (and so the LR schedule) that fits the budget
            step_s = calibrate(config, str(dataroot), str(vdir / "calib"), args.calib_steps, args.cfg_options)
            steps = max(10, int(0.97 * minutes * 60 / step_s))
            print(f"[learn] {variant}: {step_s:.2f} s/step -> {steps} steps in {minutes} min", flush=True)
        else:
            step_s, steps = None, fixed
        t0 = time.time()
        subprocess.run(perception_cmd("train", config, "--work-dir", work, "--dataroot", dataroot, "--version", version,
                                      "--max-steps", steps, "--max-minutes", minutes,
                                      "--cfg-options", "train.epochs=100000", *args.cfg_options), check=True)
        train_s = time.time() - t0
        log = read_log(work / "log.jsonl")
        plot_curves(log, vdir / "loss_curves.png", f"{variant}: {Path(config).name}, {log[-1]['step']} steps, {train_s / 60:.1f} min")
        t0 = time.time()
        eval_dir = vdir / "eval"
        eval_cmd = perception_cmd("eval", config, work / "latest.pth", "--dataroot", dataroot, "--version", version,
                                  "--split", "val", "--out", eval_dir,
                                  *(["--cfg-options", *args.cfg_options] if args.cfg_options else []))
        if subprocess.run(eval_cmd).returncode != 0:  # e.g. a GPU problem: the CPU gives the same scores, slower
            print(f"[learn] {variant}: evaluation failed on the default device; again on the CPU", flush=True)
            subprocess.run(eval_cmd + ["--device", "cpu"], check=True)
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        record = {"config": str(Path(config).relative_to(REPO)) if Path(config).is_relative_to(REPO) else config,
                  "cfg_options": args.cfg_options, "budget_min": minutes,
                  "calib_step_s": None if step_s is None else round(step_s, 3), "steps": log[-1]["step"],
                  "train_min": round(train_s / 60, 2), "eval_min": round((time.time() - t0) / 60, 2),
                  "first_loss": log[0], "last_loss": log[-1], **headline(metrics)}
        summary["variants"][variant] = record
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"[learn] {variant}: " + json.dumps({k: record[k] for k in ("steps", "mAP", "NDS", "car_ap", "map_present",
                                                                          "bev_miou", "occ_miou")}, default=str), flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"[learn] summary written to {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
