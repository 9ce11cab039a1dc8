"""``perception demo``: the README's main command, end to end on embedded synthetic data.

1. synthesizes a small nuScenes-format dataset (cached under ``--cache``),
2. trains the ``tiny`` config on it (reusing the cached checkpoint when one exists) and adds its BatchNorm
   statistics per sensor condition (``calibrated.pth``, ``perception calibrate-norms``),
3. evaluates it on the held-out synthetic scenes with the official protocols and prints the scores,
4. renders one validation sample (BEV + cameras, with predictions) to PNG files,
5. converts one validation scene into a ROS 2 bag and replays it through the perception node's code
   (``perception convert`` + ``perception replay``): ``replay/<scene>_perception.mcap`` holds the sensor data
   and the predictions; open it in Foxglove (see the README, "Log replay").
"""

import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="synthesize data, train the tiny model, evaluate it and render a sample",
        description=__doc__,
    )
    p.add_argument("--cache", default=str(REPO / ".cache" / "demo"),
                   help="where data, checkpoints, metrics and PNGs are kept (default .cache/demo)")
    p.add_argument("--scenes", type=int, default=6, help="synthetic scenes to generate (>= 2, default 6)")
    p.add_argument("--samples-per-scene", type=int, default=8, help="keyframes per synthetic scene (default 8)")
    p.add_argument("--config", default=str(REPO / "configs" / "tiny.py"),
                   help="model config to train (default configs/tiny.py)")
    # Defaults sized so that the whole demo (synthesis, training, eval, rendering) ends in < 10 min on 2 CPU cores.
    # 240 steps at tiny's batch 1 see as many samples as 120 at batch 2, in about the same time.
    p.add_argument("--max-steps", type=int, default=240,
                   help="training steps (the LR schedule spans them; default 240, ~5 min on 2 CPU cores)")
    p.add_argument("--max-minutes", type=float, default=6.0,
                   help="stop training after this many minutes of wall clock whatever the step (default 6)")
    p.add_argument("--retrain", action="store_true", help="ignore a cached checkpoint and train again")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic dataset (default 0)")
    p.add_argument("--replay-frames", type=int, default=20,
                   help="LiDAR frames of the replayed scene (default 20, ~1 min on 2 CPU cores; 0 = the whole scene)")
    p.set_defaults(func=run)


def run(args):
    cache = Path(args.cache)
    dataroot = cache / f"synth_s{args.scenes}_k{args.samples_per_scene}_seed{args.seed}"
    version = "v1.0-trainval"
    t0 = time.time()
    # Arguments checked before minutes of synthesis: a bad config or scene count is one line at once.
    if args.scenes < 2:
        raise ValueError(f"--scenes must be >= 2 (a training and a validation scene), got {args.scenes}")
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.config import load_config

    load_config(args.config)
    from perception.synth.generate import generate_dataset

    # Camera sweeps: the replay below and the README's sensor_player stream every LiDAR sweep, and the node
    # needs images near each. A dataroot cached before they existed is written again (same keyframe files).
    if not (dataroot / version / "sample.json").exists() or not any((dataroot / "sweeps" / "CAM_FRONT").glob("*.jpg")):
        print(f"[demo] synthesizing {args.scenes} scenes into {dataroot}")
        generate_dataset(dataroot, scenes=args.scenes, samples_per_scene=args.samples_per_scene, seed=args.seed,
                         camera_sweeps=True, workers=2)
    else:
        print(f"[demo] reusing synthetic dataset {dataroot}")

    work_dir = cache / "work" / Path(args.config).stem
    ckpt = work_dir / "latest.pth"
    from perception.training.checkpoint import checkpoint_mismatch

    mismatch = ckpt.exists() and not args.retrain and checkpoint_mismatch(args.config, ckpt)
    if mismatch:
        print(f"[demo] {ckpt}: {mismatch}")
        print(f"[demo] cached checkpoint {ckpt} does not fit the current {args.config} model: training again")
    if args.retrain or mismatch or not ckpt.exists():
        from perception.training.from_config import train_from_config

        print(f"[demo] training {args.config} -> {work_dir}")
        train_from_config(
            args.config, work_dir=str(work_dir), dataroot=str(dataroot), version=version, max_steps=args.max_steps,
            max_minutes=args.max_minutes,
        )
    else:
        print(f"[demo] reusing checkpoint {ckpt} (pass --retrain to train again)")
    note = undertrained_note(trained_steps(work_dir), args.max_steps, args.max_minutes)
    if note:
        print(f"[demo] warning: {note}")

    ckpt = calibrated_checkpoint(args.config, ckpt, dataroot, version)

    from perception.eval.runner import evaluate_checkpoint

    out_dir = cache / "eval" / Path(args.config).stem
    metrics = evaluate_checkpoint(
        args.config, str(ckpt), dataroot=str(dataroot), version=version, split="val", out_dir=str(out_dir)
    )
    print(f"[demo] metrics written to {out_dir / 'metrics.json'}")

    from perception.viz.pictures import render_prediction

    pngs = render_prediction(args.config, str(ckpt), dataroot=str(dataroot), version=version, out_dir=str(out_dir))
    for p in pngs:
        print(f"[demo] rendered {p}")
    replay_scene(dataroot, version, str(ckpt), args.config, cache / "replay", args.replay_frames)
    print(f"[demo] done in {time.time() - t0:.0f} s")
    return 0 if metrics is not None else 1


def calibrated_checkpoint(config, ckpt, dataroot, version):
    """A fusion model's checkpoint with its per-sensor-condition BatchNorm statistics (``calibrated.pth`` beside
    ``ckpt``, estimated on the demo's training frames; ``perception calibrate-norms``): the one the demo scores and
    replays and the README's node runs, so that a frame without LiDAR or cameras is normalized as it should be.
    Reused while it is newer than ``ckpt``; a single-sensor model's ``ckpt`` is returned as it is."""
    from perception.cli.calibrate_norms import calibrate_checkpoint
    from perception.config import load_config

    model = load_config(config).model
    if model.get("lidar") is None or model.get("camera") is None:
        return ckpt
    out = Path(ckpt).with_name("calibrated.pth")
    if out.exists() and out.stat().st_mtime >= Path(ckpt).stat().st_mtime:
        print(f"[demo] reusing {out} (the checkpoint with per-sensor-condition statistics)")
        return out
    print(f"[demo] estimating BatchNorm statistics without LiDAR / without cameras on the training frames -> {out}")
    calibrate_checkpoint(config, ckpt, dataroot, out, version=version, split="train")
    return out


def trained_steps(work_dir):
    """The last step ``log.jsonl`` in ``work_dir`` records (the trainer logs the step it stops at), or None."""
    from perception.training.logger import read_log

    log = Path(work_dir) / "log.jsonl"
    if not log.exists():
        return None
    steps = [r["step"] for r in read_log(log) if r.get("step") is not None]
    return int(steps[-1]) if steps else None


def undertrained_note(steps, planned, minutes):
    """A warning when the checkpoint trained fewer than ``planned`` steps (the ``--max-minutes`` cap cut it on a
    slow or loaded machine, or it is a cached checkpoint of an earlier demo that planned fewer steps): its scores
    then say little about the model. None when it trained them all."""
    if steps is None or steps >= planned:
        return None
    return (f"the checkpoint trained {steps} of {planned} steps (--max-minutes {minutes:g} cut it, the machine being "
            f"slower or busier than the defaults assume, or it is cached from an earlier demo that planned fewer "
            f"steps); the scores below are of an undertrained model. "
            f"Run `perception demo --retrain` on an idle machine, or raise --max-minutes.")


def replay_scene(dataroot, version, ckpt, config, out_dir, max_frames=20):
    """Convert the first validation scene into a bag and replay it (inputs copied, keyframes scored)."""
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from nuscenes.utils.splits import create_splits_scenes

    from perception.data.nuscenes_index import VERSION_SPLITS
    from perception.data.scene_stream import SceneStream
    from perception.replay.convert import convert_scene
    from perception.replay.options import ReplayOptions
    from perception.replay.run import replay
    from perception.replay.sources import open_source
    from perception.runtime import Predictor

    val = set(create_splits_scenes()[VERSION_SPLITS[version][-1]])
    names = SceneStream.scene_names(dataroot, version)
    scene = next((n for n in names if n in val), names[0])
    bag = Path(out_dir) / f"{scene}.mcap"
    result = convert_scene(dataroot, version, scene, bag, overwrite=True)
    print(f"[demo] {result.line()}")
    out = Path(out_dir) / f"{scene}_perception.mcap"
    options = ReplayOptions(copy_inputs=True, max_frames=max_frames or None)
    replay(open_source(bag), Predictor(config, ckpt), out, options, overwrite=True)
    print(f"[demo] replayed {scene}: {out} holds the sensor data and the predictions; open it in Foxglove "
          f"(Open local file), 3D panel with fixed frame LIDAR_TOP, topics /LIDAR_TOP, /perception/markers, "
          f"/perception/occupancy, /markers/annotations (GT)")

