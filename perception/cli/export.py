"""``perception export``: the network of a trained model as an ONNX file (opset 17+), for all its tasks.

    perception export CONFIG CHECKPOINT --onnx OUT.onnx [--opset 20] [--check]

What is exported (one graph, batch 1): the pillar feature net and LiDAR BEV backbone, the image backbone
+ FPN, the depth net and BEV pooling (with the pooling ranks as inputs), the fusion neck, the task query
initialisation, the shared decoder and the det / map / occupancy heads (occupancy with the cue refiner).
The box refiner's PointNet goes to OUT.refiner.onnx when the config has one. What stays in Python
(perception.export.onnx_runtime, the same code the PyTorch path runs): hard voxelization (numba), the LiDAR
depth map, the BEV pooling ranks of the rig, the map / occupancy grid points and the occupancy LiDAR cues,
detection decoding (score, sort, threshold), the occupancy argmax, and the refiner's point gathering and
box update (docs/benchmarks.md, "ONNX export").

A checkpoint with BatchNorm statistics per sensor condition (`perception calibrate-norms`) also gets one graph
per condition, OUT.no_lidar.onnx / OUT.no_cameras.onnx: the same network with that condition's statistics.
ONNX Runtime then runs a frame without a sensor with its condition's graph, as the PyTorch path swaps the
statistics. With model.occ_prior_fill and a checkpoint that carries the occupancy prior, OUT.occ_prior.npy
holds it, and a frame without LiDAR is filled from it as in PyTorch.

The file's metadata holds the resolved config, so `perception bench --backend onnxruntime OUT.onnx` and
perception.export.onnx_runtime.OnnxPredictor need nothing else. --check runs ONNX Runtime on one synthetic
frame and compares every output with PyTorch (relative error < 1e-3, the same boxes after decoding), and each
condition graph on that frame with its sensor withheld.
"""


def add_parser(subparsers):
    p = subparsers.add_parser("export", help="export the network to ONNX (opset >= 17)", description=__doc__)
    p.add_argument("config", help="model config (.py)")
    p.add_argument("checkpoint", nargs="?", help="checkpoint .pth (omit with --random-weights)")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file")
    p.add_argument("--opset", type=int, default=20,
                   help="ONNX opset (default 20: 3D GridSample; >= 17 accepted where the graph allows it)")
    p.add_argument("--random-weights", action="store_true", help="export an untrained model (tests, timing)")
    p.add_argument("--check", action="store_true", help="compare ONNX Runtime with PyTorch on a synthetic frame")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")
    p.set_defaults(func=run)


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.export.onnx_export import check_export, export_onnx

    if args.checkpoint is None and not args.random_weights:
        raise ValueError("give CHECKPOINT (or --random-weights for an untrained model)")
    if args.opset < 17:
        raise ValueError(f"--opset must be >= 17, got {args.opset}")
    files = export_onnx(args.config, args.checkpoint, args.onnx, opset=args.opset, cfg_options=args.cfg_options)
    for f in files:
        print(f"wrote {f}")
    if args.check:
        report = check_export(args.onnx, args.config, args.checkpoint, cfg_options=args.cfg_options)
        for line in report["lines"]:
            print(line)
        if not report["ok"]:
            return 1
    return 0
