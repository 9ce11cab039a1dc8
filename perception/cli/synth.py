"""``perception synth``: write a synthetic nuScenes-format dataroot (see ``perception.synth.generate``)."""

import argparse

from perception.synth.world import add_world_arguments, world_from_args  # dataclasses only: --help stays fast


def add_parser(subparsers):
    p = subparsers.add_parser(
        "synth",
        help="generate a synthetic nuScenes-format dataset (LiDAR, 6 cameras, boxes, map, Occ3D labels)",
        description="Write a complete nuScenes-format dataroot (13 v1.0 tables, LiDAR keyframes + sweeps, six "
        "cameras' JPEGs at keyframes and sweeps, map expansion, Occ3D labels) from a simulated street scene. Same "
        "arguments and seed give byte-identical files on one kind of CPU; another instruction set (AVX-512 against "
        "AVX2) moves a few label cells and float bits (docs/benchmarks.md).",
    )
    p.add_argument("--out", required=True, help="output dataroot folder (created)")
    p.add_argument("--scenes", type=int, default=2, help="number of scenes (>= 1; ~80%% train, >= 1 val)")
    p.add_argument("--samples-per-scene", type=int, default=10, help="keyframes per scene at 2 Hz (>= 2)")
    p.add_argument("--seed", type=int, default=0, help="random seed (deterministic output)")
    p.add_argument("--version", default="v1.0-trainval", choices=["v1.0-trainval", "v1.0-mini", "v1.0-test"],
                   help="nuScenes version folder and split names (v1.0-test: no annotations, no Occ3D labels)")
    p.add_argument("--sweeps-per-sample", type=int, default=4, help="LiDAR sweeps before each keyframe (0-19)")
    p.add_argument("--image-size", type=int, nargs=2, default=[640, 360], metavar=("W", "H"),
                   help="camera image width and height in pixels (intrinsics scaled from 1600x900)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes simulating scenes in parallel (the files do not depend on it; default 1)")
    p.add_argument("--split", choices=("train", "val"), default=None,
                   help="put every scene in this split (default: ~80%% train, >= 1 val)")
    p.add_argument("--camera-sweeps", action=argparse.BooleanOptionalAction, default=True,
                   help="also render the six cameras before every LiDAR sweep (sweeps/CAM_*), so that streaming the "
                        "dataroot (sensor_player, perception replay) gives the node images near every LiDAR sweep; "
                        "--no-camera-sweeps writes keyframe images only (training reads keyframes only; the keyframe "
                        "files are the same either way) and renders sweeps-per-sample + 1 times fewer images "
                        "(default: on)")
    add_world_arguments(p)
    p.set_defaults(func=run)


def run(args):
    from perception.synth.generate import generate_dataset

    summary = generate_dataset(args.out, scenes=args.scenes, samples_per_scene=args.samples_per_scene,
                               seed=args.seed, version=args.version, sweeps_per_sample=args.sweeps_per_sample,
                               image_size=tuple(args.image_size), workers=args.workers,
                               world=world_from_args(args), split=args.split,
                               camera_sweeps=args.camera_sweeps)
    print(f"wrote {summary['dataroot']} ({summary['version']}, world {args.world}): {summary['scenes']} scenes, "
          f"{summary['samples']} samples in {summary['seconds']:.1f} s")
    return 0
