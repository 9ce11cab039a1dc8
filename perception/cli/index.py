"""``perception index``: build the project index (one pickle, every keyframe with its ``split``) from a
nuScenes dataroot through nuscenes-devkit. See :mod:`perception.data.nuscenes_index`.

Prints the samples written per split, then every count by reason (skipped samples, dropped sweeps, left-out
cameras, ...) and the first ``MAX_DETAILS`` cases by name (sample token and file)."""

MAX_DETAILS = 50


def add_parser(subparsers):
    p = subparsers.add_parser(
        "index",
        help="build the project index from a nuScenes dataroot",
        description="Index every keyframe of a nuScenes version into one pickle with a per-sample 'split' "
        "field (official split names); load it with perception.data.load_info_file(path, split='val').",
    )
    p.add_argument("--dataroot", required=True, help="nuScenes dataroot (holds samples/, sweeps/, <version>/)")
    p.add_argument("--version", required=True, help="table version, e.g. v1.0-trainval, v1.0-mini, v1.0-test")
    p.add_argument("--out", required=True, help="output pickle path")
    p.add_argument("--num-sweeps", type=int, default=10, help="LiDAR sweeps recorded per keyframe (default 10)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.data.nuscenes_index import build_index

    if args.num_sweeps < 0:
        raise ValueError(f"--num-sweeps must be >= 0, got {args.num_sweeps}")
    report = build_index(args.dataroot, args.version, args.out, num_sweeps=args.num_sweeps,
                         progress=not args.no_progress)
    print(f"wrote {report['samples']} samples to {args.out}; per split: {report['splits']}")
    for reason, count in sorted(report["counts"].items()):
        print(f"  {reason}: {count}")
    details = report["details"]
    for line in details[:MAX_DETAILS]:
        print(f"    {line}")
    if len(details) > MAX_DETAILS:
        print(f"    ... and {len(details) - MAX_DETAILS} more")
    return 0
