"""``perception calibrate-norms``: add BatchNorm statistics per sensor condition to a trained checkpoint.

    perception calibrate-norms CONFIG CHECKPOINT --dataroot D [--split train] [--samples 120] --out NEW.pth

A model trained with LiDAR and cameras normalizes with statistics of inputs that had both; a frame without
LiDAR (or without cameras) then leaves the range its layers learned. This re-estimates the statistics of
the layers after the withheld sensor on training samples with it withheld (perception.models.sensor_norms);
the weights are unchanged and a frame with every sensor runs exactly as before. The Predictor (eval, ROS 2
node, replay) uses them on the frames that lack the sensor, and says so in the prediction's notes.

A model with an Occ3D occupancy head also gets the split's per-voxel most frequent label ('occ_prior', from
all its frames with labels): with model.occ_prior_fill set, a frame without LiDAR fills the voxels the model
calls free from it (perception.runtime.occ_prior).

Use the training split: statistics estimated on the set a result is reported on would be tuned on it.
NEW.pth is the input checkpoint plus a 'sensor_norms' entry (and 'occ_prior'); the input file is not changed.
The statistics fit the checkpoint's 'model' weights (the ones a Predictor loads by default), or with --ema its
EMA weights; a Predictor that runs the other set refuses them.
"""

import os
import warnings

# frames per condition: the number the val choice used (docs/benchmarks.md, "BatchNorm statistics per sensor condition")
DEFAULT_SAMPLES = 120


def add_parser(subparsers):
    p = subparsers.add_parser("calibrate-norms", help="add per-sensor-condition BatchNorm statistics to a checkpoint",
                              description=__doc__)
    p.add_argument("config", help="model config (.py), the one the checkpoint was trained with")
    p.add_argument("checkpoint", help="trained checkpoint .pth (a fusion model: LiDAR and cameras)")
    p.add_argument("--dataroot", required=True, help="nuScenes dataroot of the training data")
    p.add_argument("--version", default="v1.0-trainval", help="nuScenes version folder (default v1.0-trainval)")
    p.add_argument("--split", default="train", help="split the samples come from (default train)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"frames per condition, drawn at random from the split (default {DEFAULT_SAMPLES})")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw (default 0)")
    p.add_argument("--conditions", nargs="+", default=["no_lidar", "no_cameras"], choices=["no_lidar", "no_cameras"],
                   help="sensor conditions to estimate (default both)")
    p.add_argument("--ema", action="store_true",
                   help="estimate for the checkpoint's EMA weights (Predictor use_ema=True), not its 'model' ones")
    p.add_argument("--out", required=True, metavar="NEW.pth", help="checkpoint to write (not the input)")
    p.add_argument("--overwrite", action="store_true", help="replace NEW.pth when it exists")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys (the same overrides the model was trained with)")
    p.set_defaults(func=run)


def run(args):
    if os.path.abspath(args.out) == os.path.abspath(args.checkpoint):
        raise ValueError(f"--out {args.out} is the input checkpoint: write the calibrated one to another file")
    if os.path.exists(args.out) and not args.overwrite:
        raise FileExistsError(f"--out {args.out} exists (pass --overwrite to replace it)")

    def progress(condition, i, n):
        if i == n or i % 20 == 0:
            print(f"{condition}: {i}/{n} frames", flush=True)

    entry = calibrate_checkpoint(args.config, args.checkpoint, args.dataroot, args.out, version=args.version,
                                 split=args.split, samples=args.samples, seed=args.seed, conditions=args.conditions,
                                 ema=args.ema, cfg_options=args.cfg_options, progress=progress)
    layers = ", ".join(f"{c}: {len(s)} layers" for c, s in entry["conditions"].items())
    prior = f"; occupancy prior of {entry['occ_prior_samples']} frames" if entry.get("occ_prior_samples") else ""
    print(f"wrote {args.out} ({layers}; {entry['samples']} frames of {args.split} each{prior})")
    return 0


def calibrate_checkpoint(config, checkpoint, dataroot, out, version="v1.0-trainval", split="train",
                         samples=DEFAULT_SAMPLES, seed=0, conditions=("no_lidar", "no_cameras"), ema=False,
                         cfg_options=(), progress=None):
    """Write ``out``: ``checkpoint`` plus its ``sensor_norms`` entry, estimated on ``samples`` frames of ``split``
    per condition (the command above, and ``perception demo``), and the ``occ_prior`` entry of an Occ3D occupancy
    head. Returns the ``sensor_norms`` entry (``occ_prior_samples``: the prior's frames, 0 without one)."""
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from nuscenes.nuscenes import NuScenes

    from perception.config import load_config, occupancy_grid_name
    from perception.eval.runner import load_split_samples, split_sample_tokens
    from perception.models.sensor_norms import SENSOR_NORMS_KEY
    from perception.models.weights import load_checkpoint
    from perception.runtime import Predictor
    from perception.runtime.occ_prior import OCC_PRIOR_KEY, fit_occ_prior
    from perception.runtime.sensor_calibration import calibrate_sensor_norms
    from perception.training.checkpoint import save_checkpoint

    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    if not os.path.isdir(os.path.join(dataroot, version)):  # the devkit would assert: a traceback
        raise FileNotFoundError(f"--dataroot {dataroot}: no nuScenes tables folder {version}/ in it")
    cfg = load_config(config, list(cfg_options))
    if cfg.model.get("lidar") is None or cfg.model.get("camera") is None:
        raise ValueError(f"{config}: the model reads one sensor only; the conditions are those of a fusion model "
                         "(a single-sensor model without its sensor has nothing to run on)")
    ckpt = load_checkpoint(checkpoint)
    if ema and ckpt.get("ema") is None:
        raise ValueError(f"--ema: checkpoint {checkpoint} has no EMA weights (trained with train.ema=False)")
    cfg.model["occ_prior_fill"] = None  # the estimate runs the network only; the prior is what this writes
    # The camera map head (model.camera_map_blend) keeps its trained statistics: it trained on camera BEVs with and
    # without the LiDAR depth input (half each), and candidate H was chosen so (docs/benchmarks.md).
    cfg.model["camera_map_blend"] = 0.0
    try:  # without an earlier entry: it is replaced, and it may fit the other weights
        predictor = Predictor(cfg, {k: v for k, v in ckpt.items() if k != SENSOR_NORMS_KEY}, use_ema=ema)
    except ValueError as e:
        raise ValueError(f"{checkpoint}: {e}") from e
    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    tokens = split_sample_tokens(nusc, split)
    frames = load_split_samples(nusc, split, tokens, os.path.join(os.path.dirname(str(out)) or ".", "index"))
    entry = calibrate_sensor_norms(predictor, frames, conditions, samples, seed, progress)
    entry.update(dataroot=os.path.abspath(dataroot), split=split)
    extra = {}
    if "occ" in cfg.model.tasks and occupancy_grid_name(cfg.model) == "occ3d":
        try:
            extra[OCC_PRIOR_KEY] = fit_occ_prior(frames, split)
        except ValueError as e:  # the norms need no labels: they are still written
            warnings.warn(f"--dataroot {dataroot}: {e}; {out} gets no occupancy prior", stacklevel=2)
    save_checkpoint(out, {**{k: v for k, v in ckpt.items() if k != OCC_PRIOR_KEY}, SENSOR_NORMS_KEY: entry, **extra})
    entry["occ_prior_samples"] = extra[OCC_PRIOR_KEY]["samples"] if extra else 0
    return entry
