"""``perception eval``: score a model or saved predictions with the official protocols.

Model mode:  ``perception eval CONFIG CHECKPOINT --dataroot D --version V --split S [--out DIR]``
(inference through ``perception.runtime.Predictor``; under ``torchrun`` each rank infers a shard).
Saved mode:  ``perception eval --results FILE [--bev-results DIR] [--occ-results DIR] --dataroot D ...``
(formats: ``perception.eval.results_io``). Both write ``DIR/metrics.json``, print a per-class table and
save PNG plots under ``DIR/plots``. Saved predictions are validated before any scoring.

Occupancy is scored with the Occ3D protocol (mIoU, RayIoU), or with the OpenOccupancy protocol against the
nuScenes-Occupancy labels of ``--openocc-root DIR`` (``DIR/scene_<scene token>/occupancy/<lidar token>.npy``):
in model mode when the config's ``model.head.occ.grid`` is ``'openocc'`` (``--openocc-root`` then defaults to
the config's ``data.openocc_root``), in saved mode for ``--occ-results`` on the OpenOccupancy grid.
"""

import os

from perception.cli.fallback_args import add_fallback_arguments, fallback_models


def add_parser(subparsers):
    p = subparsers.add_parser("eval", help="evaluate detections, BEV maps and occupancy (official protocols)",
                              description=__doc__)
    p.add_argument("config", nargs="?", help="model config (model mode)")
    p.add_argument("checkpoint", nargs="?", help="checkpoint .pth (model mode)")
    p.add_argument("--dataroot", required=True, help="nuScenes dataroot")
    p.add_argument("--version", default="v1.0-trainval", help="nuScenes version folder (default v1.0-trainval)")
    p.add_argument("--split", default="val", help="nuScenes split name (devkit create_splits_scenes; default val)")
    p.add_argument("--out", default="eval_out", help="output folder for metrics.json and plots (default eval_out)")
    p.add_argument("--results", help="detection submission JSON (global frame)")
    p.add_argument("--bev-results", help="folder of <sample_token>.npz with bev_probs")
    p.add_argument("--occ-results", help="folder of <sample_token>.npz with occ_labels")
    p.add_argument("--allow-partial", action="store_true",
                   help="saved mode: score only the split samples present (model mode always infers the whole split)")
    p.add_argument("--no-rayiou", action="store_true", help="skip RayIoU (saved mode)")
    p.add_argument("--openocc-root", metavar="DIR",
                   help="nuScenes-Occupancy labels: score occupancy with the OpenOccupancy protocol (model mode: "
                        "default the config's data.openocc_root when its model.head.occ.grid is 'openocc')")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config keys, a.b=c (model mode; the same overrides the model was trained with)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="model mode: where the model runs (auto: CUDA when available, fp16 there; default auto)")
    p.add_argument("--bf16", action="store_true",
                   help="model mode: bf16 autocast on a CPU with native bf16 (AVX512-BF16 / AMX; else fp32, with a "
                        "warning); metrics.json records the precision that ran")
    p.add_argument("--withhold", nargs="+", default=[], metavar="SENSOR",
                   help="model mode: sensors kept from the model on every sample, as if they had dropped out "
                        "(lidar, cameras, or camera names such as CAM_BACK); metrics.json counts degraded samples")
    add_fallback_arguments(p)
    p.add_argument("--region", choices=("all", "front"), default="all",
                   help="model mode: score only what lies in this region around the ego (front: ego x > 0, the "
                        "half the three front cameras see; no RayIoU there); default all")
    p.set_defaults(func=run)


def config_openocc_root(cfg):
    """The loaded config's ``data.openocc_root`` when it predicts occupancy on the OpenOccupancy grid, else None."""
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.eval.runner import occupancy_protocol

    if "occ" in cfg.model.tasks and occupancy_protocol(cfg) == "openocc":
        return cfg.data.openocc_root
    return None


def run(args):
    saved = args.results or args.bev_results or args.occ_results
    if saved and (args.config or args.checkpoint):
        raise ValueError("give either CONFIG CHECKPOINT (model mode) or --results/--bev-results/--occ-results")
    if saved and (args.withhold or args.region != "all" or fallback_models(args)):
        raise ValueError("--withhold, --region, --no-lidar-model and --no-camera-model apply to model mode "
                         "(CONFIG CHECKPOINT), not to saved predictions")
    if not saved and not (args.config and args.checkpoint):
        raise ValueError("model mode needs CONFIG and CHECKPOINT (or pass --results for saved predictions)")
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from nuscenes.nuscenes import NuScenes

    from perception.eval import runner

    if not saved:
        from perception.config import load_config

        cfg = load_config(args.config, list(args.cfg_options))  # once: the runner takes the loaded config
        openocc_root = args.openocc_root if args.openocc_root is not None else config_openocc_root(cfg)
        runner.evaluate_checkpoint(cfg, args.checkpoint, args.dataroot, args.version, args.split, args.out,
                                   openocc_root=openocc_root, device=args.device, withhold=args.withhold,
                                   region=args.region, bf16=args.bf16, fallbacks=fallback_models(args))
        return 0
    if not os.path.isdir(os.path.join(args.dataroot, args.version)):  # the devkit would assert: a traceback
        raise FileNotFoundError(f"--dataroot {args.dataroot}: no nuScenes tables folder {args.version}/ in it")
    nusc = NuScenes(version=args.version, dataroot=args.dataroot, verbose=False)
    metrics = runner.score_saved(nusc, args.split, args.out, results=args.results, bev_dir=args.bev_results,
                                 occ_dir=args.occ_results, allow_partial=args.allow_partial,
                                 with_rays=not args.no_rayiou, openocc_root=args.openocc_root)
    print(f"metrics written to {args.out}/metrics.json")
    return 0 if metrics else 1
