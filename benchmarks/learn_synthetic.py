"""Learning benchmark on the synthetic world: does the tiny model learn, per modality, within a CPU budget,
and by how much does it beat what needs no sensor at all? Reported on a test set never used for choosing.

Protocol (docs/benchmarks.md, "Learning on synthetic data"):

1. Three datasets from three data seeds (``perception synth``, world ``--world``, default v2): ``train``
   (trains every model), ``val`` (the only set any setting was chosen on: ``benchmarks/decode_sweep.py``
   scores val) and ``test`` (reported here, nothing else reads it). Every scene of a dataset is in the split
   its role uses (``generate_dataset(split=...)``).
2. For each training seed (``--seeds``; the data stay the same, the initialisation and the sample order
   change): ``fusion`` (``--config``), ``lidar`` (configs/tiny_lidar.py) and ``camera`` (configs/tiny_camera.py:
   no LiDAR encoder, ``use_lidar_depth=False``: the camera branch sees no points at inference; LiDAR depth
   still supervises its depth in training) each train for a fixed step count (``--steps``; the docs' protocol
   uses the counts 30 minutes gave on the 2-core VM) or, without ``--steps``, for at most the wall-clock budget
   (a short calibration sets the step count, and so the LR schedule, to fit it).
3. Each is scored on the test set with ``perception eval``; the fusion model also with sensors withheld
   (``--withhold``): no LiDAR, no cameras, the three rear cameras (this one, and the full model beside it,
   scored on the front half only: ``--region front``, what the three front cameras can see). The withheld rows
   score the fusion checkpoint after ``perception calibrate-norms`` on the train set (its BatchNorm statistics
   per sensor condition; a frame with every sensor runs exactly as before), as a deployment would ship it.
4. The no-input prior (:mod:`perception.eval.prior`: mean training BEV rasters, per-voxel most frequent seen
   occupancy label, no boxes) is fitted on train and scored on test in the same table.
5. ``OUT/summary.json`` (every run, its commit and the machine it trained on; the SHA-256 of the three
   dataroots, ``data_digest``: one summary never mixes datasets) and ``OUT/results.md`` (mean +- std over seeds).

    # calibrated to the wall clock (a loaded machine gives fewer steps)
    python benchmarks/learn_synthetic.py --out outputs/learn_v2 --seeds 0,1,2 --minutes 30
    # the docs' protocol: the step counts 30 minutes gave on the 2-core VM, so that a seed's number does not
    # depend on how loaded the shared machine was while it trained (--minutes only caps a run)
    python benchmarks/learn_synthetic.py --out outputs/learn_v2 --steps fusion=1753,lidar=2148,camera=1199 --minutes 60
"""

import argparse
import fcntl
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from decode_sweep import TEST_MARKER  # benchmarks/ is on sys.path when run as a script
from nuscenes.nuscenes import NuScenes

from perception.bench.runner import machine_kind
from perception.environment import read_environment
from perception.eval.prior import fit_prior, write_prior_results
from perception.eval.runner import load_split_samples, score_saved, split_sample_tokens
from perception.synth.generate import generate_dataset
from perception.training.logger import read_log

REPO = Path(__file__).resolve().parents[1]
VERSION = "v1.0-trainval"
VARIANT_CONFIGS = {"lidar": REPO / "configs" / "tiny_lidar.py", "camera": REPO / "configs" / "tiny_camera.py"}
# Rows scored from the fusion model with sensors withheld at test time: name -> (--withhold, --region). The
# three front cameras see the front half: that row and the full model are compared there (region 'front').
DEGRADED = {"fusion, no LiDAR": (["lidar"], "all"), "fusion, no cameras": (["cameras"], "all"),
            "fusion, front region": ([], "front"),
            "fusion, front 3 cameras, front region": (["CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"], "front")}
COLUMNS = ("mAP", "NDS", "car_ap", "bev_miou", "occ_miou", "occ_geometry_iou")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--world", default="v2", choices=("v1", "v2"), help="synthetic world version (perception synth)")
    p.add_argument("--scenes", default="24,8,20", help="train,val,test scene counts (test >= 20 for a result)")
    p.add_argument("--samples-per-scene", type=int, default=10)
    p.add_argument("--data-seeds", default="1000,2000,3000", help="train,val,test data seeds (all different)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds (train.seed), >= 3 for a result")
    p.add_argument("--minutes", type=float, default=30.0, help="training budget per run (wall clock)")
    p.add_argument("--config", default=str(REPO / "configs" / "tiny.py"), help="the fusion config")
    p.add_argument("--variants", default="fusion,lidar,camera")
    p.add_argument("--choose", action="store_true",
                   help="a run that chooses a setting (e.g. --cfg-options data.modality_dropout.lidar=0.1): score "
                        "on the val dataset instead of test; its table is results_val.md and says so")
    p.add_argument("--no-prior", action="store_true", help="skip the no-input prior row")
    p.add_argument("--no-degraded", action="store_true", help="skip the withheld-sensor rows")
    p.add_argument("--cache", default=str(REPO / ".cache" / "learn"))
    p.add_argument("--calib-steps", type=int, default=6, help="steps timed to fit the step count to the budget")
    p.add_argument("--steps", default=None,
                   help="fixed step counts instead of calibrating to --minutes: N for every variant, or "
                        "fusion=N,lidar=N,camera=N (e.g. the docs' protocol); --minutes then only caps a run")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides for every variant (as in perception train)")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8), help="synthesis processes")
    return p.parse_args(argv)


def perception_cmd(*args):
    return [sys.executable, "-m", "perception.cli.main", *map(str, args)]


def commit():
    out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty else "")


def make_data(args, cache):
    """``{role: dataroot}`` for train / val / test, synthesized once into ``cache``."""
    scenes = dict(zip(("train", "val", "test"), (int(v) for v in args.scenes.split(",")), strict=True))
    seeds = dict(zip(("train", "val", "test"), (int(v) for v in args.data_seeds.split(",")), strict=True))
    if len(set(seeds.values())) != 3:
        raise ValueError(f"--data-seeds must be three different seeds, got {args.data_seeds}")
    roots = {}
    for role in ("train", "val", "test"):
        root = Path(cache) / f"{args.world}_{role}_s{scenes[role]}_k{args.samples_per_scene}_seed{seeds[role]}"
        if not (root / VERSION / "sample.json").exists():
            print(f"[learn] synthesizing {role}: {scenes[role]} x {args.samples_per_scene} into {root}", flush=True)
            generate_dataset(root, scenes=scenes[role], samples_per_scene=args.samples_per_scene, seed=seeds[role],
                             workers=args.workers, world=args.world, split="train" if role == "train" else "val")
        if role == "test":  # benchmarks/decode_sweep.py refuses to choose settings on it
            (root / TEST_MARKER).write_text("reported by benchmarks/learn_synthetic.py only\n")
        roots[role] = root
    return roots


def data_digest(root):
    """SHA-256 of a dataroot's data files (relative paths and bytes, in path order): two datasets with the same
    digest are the same bytes. Left out: the index ``*.pkl`` (built by training, from the data) and the test-set
    marker (written by this script)."""
    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix == ".pkl" or path.name == TEST_MARKER:
            continue
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def calibrate(config, dataroot, work, steps, cfg_options):
    """Seconds per training step of ``config`` (median over ``steps`` after one warm-up step)."""
    subprocess.run(perception_cmd("train", config, "--work-dir", work, "--dataroot", dataroot, "--version", VERSION,
                                  "--max-steps", steps + 1, "--cfg-options", "train.log_interval=1", *cfg_options),
                   check=True, stdout=subprocess.DEVNULL)
    times = [r["time_s"] for r in read_log(Path(work) / "log.jsonl")]
    deltas = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    return deltas[len(deltas) // 2]


def fixed_steps(text, variant):
    """The step count ``--steps`` gives ``variant`` (None: calibrate to the wall-clock budget)."""
    if text is None:
        return None
    if "=" not in text:
        return int(text)
    counts = dict(item.split("=") for item in text.split(","))
    if variant not in counts:
        raise SystemExit(f"--steps {text} names no step count for the variant {variant!r}")
    return int(counts[variant])


def train(config, root, vdir, args, options, variant):
    """Train one run; returns its record (steps, minutes, first/last loss, the commit it trained at).

    A run whose ``trained.json`` exists is not trained again: a benchmark cut short resumes where it stopped,
    and a model trained by a ``--choose`` run (on train, scored on val) can be scored on test as it is. A run
    stopped mid-training (``plan.json`` and a checkpoint, no ``trained.json``) continues from its last epoch
    checkpoint with the same planned steps (``perception train --resume``: the same model as without the stop)."""
    done, plan, work = vdir / "trained.json", vdir / "plan.json", vdir / "work"
    if done.exists():
        print(f"[learn] reusing the model trained in {work} ({done})", flush=True)
        return json.loads(done.read_text())
    resume = plan.exists() and (work / "latest.pth").exists()
    if resume:
        steps = json.loads(plan.read_text())["steps"]
        print(f"[learn] resuming {work} towards its planned {steps} steps", flush=True)
    else:
        steps = fixed_steps(args.steps, variant)
        if steps is None:
            step_s = calibrate(config, root, vdir / "calib", args.calib_steps, options)
            steps = max(10, int(0.97 * args.minutes * 60 / step_s))
        vdir.mkdir(parents=True, exist_ok=True)
        plan.write_text(json.dumps({"steps": steps}))
    t0 = time.time()
    subprocess.run(perception_cmd("train", config, "--work-dir", work, "--dataroot", root, "--version",
                                  VERSION, "--max-steps", steps, "--max-minutes", args.minutes,
                                  *(["--resume"] if resume else []),
                                  "--cfg-options", "train.epochs=100000", *options), check=True)
    log = read_log(work / "log.jsonl")
    # train_min: this process's part only when resumed (the stopped part's minutes are not known)
    trained = {"steps": log[-1]["step"], "train_min": round((time.time() - t0) / 60, 2), "resumed": resume,
               "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"], "train_commit": commit(),
               # the machine of each start (bf16 / fp32 CPU kernels round by instruction set: perception.environment)
               "environment": read_environment(work / "environment.jsonl")}
    done.write_text(json.dumps(trained, indent=1))
    return trained


def evaluate(config, checkpoint, root, out, options, withhold=(), region="all"):
    cmd = perception_cmd("eval", config, checkpoint, "--dataroot", root, "--version", VERSION, "--split", "val",
                         "--out", out, "--region", region, *(["--withhold", *withhold] if withhold else []),
                         *(["--cfg-options", *options] if options else []))
    subprocess.run(cmd, check=True)
    return headline(json.loads((Path(out) / "metrics.json").read_text()))


def calibrate_norms(config, checkpoint, train_root, out, options):
    """``perception calibrate-norms`` on the train set (kept when ``out`` exists: a resumed benchmark)."""
    if not Path(out).exists():
        subprocess.run(perception_cmd("calibrate-norms", config, checkpoint, "--dataroot", train_root, "--version",
                                      VERSION, "--split", "train", "--out", out,
                                      *(["--cfg-options", *options] if options else [])), check=True)
    return out


def score_prior(roots, out, scored="test"):
    """Fit the no-input prior on train, score it on ``scored`` (test, or val) through the saved-results path."""
    train_nusc = NuScenes(version=VERSION, dataroot=str(roots["train"]), verbose=False)
    samples = load_split_samples(train_nusc, "train", split_sample_tokens(train_nusc, "train"), str(out / "index"))
    prior = fit_prior(samples)
    test_nusc = NuScenes(version=VERSION, dataroot=str(roots[scored]), verbose=False)
    paths = write_prior_results(prior, split_sample_tokens(test_nusc, "val"), out / "results")
    metrics = score_saved(test_nusc, "val", str(out / "eval"), paths["results"], paths.get("bev_results"),
                          paths.get("occ_results"))
    return headline(metrics)


def headline(metrics):
    """The benchmark's numbers from ``metrics.json`` (None where a task is absent)."""
    det = metrics.get("detection") or {}
    ap = {c: row.get("AP") for c, row in (det.get("per_class") or {}).items()}
    occ = metrics.get("occupancy") or {}
    return {"mAP": det.get("mAP"), "NDS": det.get("NDS"), "car_ap": ap.get("car"), "per_class_ap": ap,
            "bev_miou": (metrics.get("bev_map") or {}).get("mIoU"),
            "bev_per_class": (metrics.get("bev_map") or {}).get("per_class"),
            "occ_miou": occ.get("mIoU"), "occ_geometry_iou": occ.get("geometry_IoU"),
            "degraded": metrics.get("degraded")}


def mean_std(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return None, None
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0


def table(runs):
    """Markdown: one row per model / condition, mean +- std over the training seeds, with the commits."""
    lines = ["| row | seeds | " + " | ".join(COLUMNS) + " | commit |", "|---" * (len(COLUMNS) + 3) + "|"]
    for row, records in runs.items():
        cells = []
        for col in COLUMNS:
            m, s = mean_std([r.get(col) for r in records])
            cells.append("n/a" if m is None else f"{m:.3f} ± {s:.3f}")
        # the commit a model was trained at (a reused model is scored at a later one: both are in summary.json)
        commits = ", ".join(sorted({r.get("train_commit", r["commit"]) for r in records}))
        lines.append(f"| {row} | {len(records)} | " + " | ".join(cells) + f" | {commits} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    roots = make_data(args, args.cache)
    digests = {role: data_digest(root) for role, root in roots.items()}
    scored = "val" if args.choose else "test"  # a run that chooses a setting never sees the test set

    def update_summary(change):
        # several processes may fill one summary (e.g. one per training seed, one core each): read it again
        # under a lock, so that no process writes back a copy without the others' rows
        with open(out / "summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"runs": {}}
            change(summary)
            summary_path.write_text(json.dumps(summary, indent=1, default=str))
            return summary

    def start(summary):
        if summary.setdefault("scored_on", scored) != scored:
            raise SystemExit(f"{summary_path} holds rows scored on {summary['scored_on']}: use another --out")
        threads = os.environ.get("OMP_NUM_THREADS", "default")
        if summary.setdefault("data_digest", digests) != digests:  # one summary, one set of datasets
            raise SystemExit(f"{summary_path} holds rows of other datasets (data_digest differs): use another --out")
        summary.update(data={role: str(root) for role, root in roots.items()},
                       machine=f"{machine_kind()}, torch threads {threads}")
        summary.setdefault("invocations", []).append(vars(args))

    def record(row, seed, values):
        def add(summary):
            rows = summary["runs"].setdefault(row, [])
            summary["runs"][row] = [r for r in rows if r.get("seed") != seed] + [
                {"seed": seed, "commit": commit(), "cfg_options": args.cfg_options, **values}]
        update_summary(add)

    update_summary(start)
    if not args.no_prior:
        record("no-input prior", None, score_prior(roots, out / "prior", scored))
    for seed in (int(s) for s in args.seeds.split(",")):
        for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
            config = args.config if variant == "fusion" else str(VARIANT_CONFIGS[variant])
            vdir = out / f"seed{seed}" / variant
            options = [f"train.seed={seed}", *args.cfg_options]
            trained = train(config, roots["train"], vdir, args, options, variant)
            ckpt = vdir / "work" / "latest.pth"
            row = {"fusion": "fusion", "lidar": "LiDAR only", "camera": "camera only"}[variant]
            record(row, seed, {**trained, **evaluate(config, ckpt, roots[scored], vdir / scored, args.cfg_options)})
            if variant == "fusion" and not args.no_degraded:
                calibrated = calibrate_norms(config, ckpt, roots["train"], vdir / "work" / "calibrated.pth",
                                             args.cfg_options)
                for name, (withhold, region) in DEGRADED.items():
                    tag = "_".join([w.lower() for w in withhold] + [region])
                    record(name, seed, evaluate(config, calibrated, roots[scored], vdir / f"{scored}_without_{tag}",
                                                args.cfg_options, withhold, region))
    name, heading = ("results_val.md", "Scored on VAL (a run that chooses settings; not a result)\n\n") \
        if args.choose else ("results.md", "")
    runs = update_summary(lambda summary: None)["runs"]  # with the rows of any process beside this one
    (out / name).write_text(heading + table(runs) + "\n")
    print(heading + table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
