"""``perception show``: render one sample as a BEV picture and a six-camera sheet.

    perception show SAMPLE_OR_INDEX --out DIR (--info FILE | --dataroot D --version V) [--num-sweeps N]
    perception show --surroundocc DIR FRAME --out DIR

SAMPLE_OR_INDEX is a sample token or an integer position in the info/index file. Writes
``DIR/<token>_bev.png`` and ``DIR/<token>_cameras.png`` and prints their paths. With ``--surroundocc`` (the
``tools/generate_occupancy_with_own_data`` folder of SurroundOcc: LiDAR, per-point semantics and boxes, no
cameras) only ``DIR/surroundocc_<FRAME>_bev.png`` is written, points coloured by their semantic label.
"""


def add_parser(subparsers):
    p = subparsers.add_parser("show", help="render a sample (BEV + cameras) to PNG files", description=__doc__)
    p.add_argument("sample", metavar="SAMPLE_OR_INDEX",
                   help="sample token, integer position, or FRAME with --surroundocc")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--info", help="info/index pickle (perception index or mmdet3d info file)")
    p.add_argument("--dataroot", help="nuScenes dataroot (sensor paths resolve against it)")
    p.add_argument("--version", help="nuScenes version (with --dataroot and no --info), e.g. v1.0-mini")
    p.add_argument("--num-sweeps", type=int, default=10, help="LiDAR sweeps merged into the picture (default 10)")
    p.add_argument("--surroundocc", metavar="DIR",
                   help="SurroundOcc own-data folder; SAMPLE_OR_INDEX is the frame number")
    p.set_defaults(func=run)


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.viz.pictures import render_sample, render_surroundocc_frame

    if args.surroundocc:
        print(render_surroundocc_frame(args.surroundocc, args.sample, args.out))
        return 0
    if not (args.info or (args.dataroot and args.version)):
        raise ValueError("give --info FILE, or --dataroot D and --version V")
    from perception.data.lookup import find_sample, load_samples

    sample = find_sample(load_samples(args.info, args.dataroot, args.version, args.num_sweeps), args.sample)
    for path in render_sample(sample, args.out):
        print(path)
    return 0
