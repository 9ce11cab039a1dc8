"""Training from a config: :func:`train_from_config` loads the config, builds the model and the training set
(after checking that every trained task has labels), and runs a :class:`perception.training.trainer.Trainer`,
in a single process or under ``torchrun``. ``perception train`` and ``perception demo`` call it.
"""

import json
import sys
from pathlib import Path

from perception.config import load_config
from perception.data.collate import collate
from perception.data.nuscenes_index import VERSION_SPLITS
from perception.environment import append_environment
from perception.models import build_model
from perception.training.data import load_split, make_dataset, modality_dropout_transform
from perception.training.distributed import cleanup_distributed, init_distributed
from perception.training.label_check import check_label_coverage
from perception.training.trainer import Trainer, seed_everything


def train_from_config(
    config, work_dir=None, dataroot=None, version=None, max_steps=None, resume=False, cfg_options=None,
    device="auto", progress=True, max_minutes=None,
) -> dict:
    """Load ``config``, build the model and the training set, train (single process or under torchrun).

    ``dataroot`` / ``version`` override the data section; a new ``version`` also selects its official
    split names (e.g. ``mini_train`` / ``mini_val`` for ``v1.0-mini``) unless ``cfg_options`` set them.
    ``work_dir`` defaults to ``work_dirs/<config name>``. ``max_minutes`` stops training after that much wall
    clock. Returns the last log record (``{}`` on ranks > 0).
    """
    overrides = []
    if dataroot is not None:
        overrides.append(f"data.dataroot={str(dataroot)!r}")
    if version is not None:
        if version not in VERSION_SPLITS:
            raise ValueError(f"--version must be one of {sorted(VERSION_SPLITS)}, got {version!r}")
        splits = VERSION_SPLITS[version]
        overrides += [f"data.version={version!r}", f"data.train_split={splits[0]!r}", f"data.val_split={splits[-1]!r}"]
    overrides += list(cfg_options or [])
    cfg = load_config(config, overrides)  # checks data.occ_format against the occupancy grid, before any index build
    work_dir = Path(work_dir) if work_dir is not None else Path("work_dirs") / Path(config).stem
    ctx = init_distributed(device)
    try:
        seed_everything(int(cfg.train.seed))
        model = build_model(cfg.model)
        samples = load_split(cfg.data, "train", ctx)
        # A task without labels for most samples would train its head on a zero loss: refuse (ValueError).
        for line in check_label_coverage(samples, cfg.model.tasks, cfg.data.occ_format, cfg.data.openocc_root,
                                         where=f"split {cfg.data.train_split!r} of {cfg.data.dataroot}"):
            if ctx.is_main:
                print(f"[train] warning: {line}", file=sys.stderr, flush=True)
        dataset = make_dataset(cfg, samples, training=True)
        trainer = Trainer(
            model, dataset, collate, cfg.train, work_dir, config_dict=cfg.to_dict(), ctx=ctx,
            batch_transform=modality_dropout_transform(cfg.data), max_steps=max_steps, progress=progress,
            max_minutes=max_minutes,
        )
        if ctx.is_main:
            work_dir.mkdir(parents=True, exist_ok=True)
            (work_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        if resume and not trainer.resume():
            raise FileNotFoundError(f"--resume: no checkpoint {work_dir / 'latest.pth'}")
        if ctx.is_main:  # the machine this part of the run trains on (CPU kernels round by instruction set)
            append_environment(work_dir / "environment.jsonl", start_step=trainer.step)
        last = trainer.fit()
        return last if ctx.is_main else {}
    finally:
        cleanup_distributed()
