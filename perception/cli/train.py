"""``perception train CONFIG``: train a model, single process or under ``torchrun --nproc_per_node N``.

Writes ``W/epoch_N.pth`` every ``train.checkpoint_interval`` epochs (the newest ``train.keep_checkpoints``
kept) and ``W/latest.pth`` (loadable with ``torch.load(weights_only=True)``), ``W/log.jsonl`` (losses per
task) and ``W/config.json`` (the resolved config).
"""


def add_parser(subparsers):
    p = subparsers.add_parser("train", help="train a model from a config file", description=__doc__)
    p.add_argument("config", help="config file, e.g. configs/tiny.py")
    p.add_argument("--work-dir", default=None, help="output folder (default work_dirs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from WORK_DIR/latest.pth")
    p.add_argument("--dataroot", default=None, help="nuScenes-format dataroot (overrides data.dataroot)")
    p.add_argument("--version", default=None, help="v1.0-trainval | v1.0-mini | v1.0-test (overrides data.version)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this many minutes of training (wall clock)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="auto: CUDA when available (default)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys, a.b=c")
    p.set_defaults(func=run)


def run(args):
    # heavy imports (torch, numpy, ...) stay in the functions: `perception --help` imports this module
    from perception.training.from_config import train_from_config

    last = train_from_config(
        args.config, work_dir=args.work_dir, dataroot=args.dataroot, version=args.version,
        max_steps=args.max_steps, max_minutes=args.max_minutes, resume=args.resume, cfg_options=args.cfg_options,
        device=args.device,
    )
    if last:
        print("last step:", {k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()})
    return 0
