"""The training loop: single process or DDP (``torchrun``), AMP on CUDA, clipping, EMA, exact resume.

The trainer is independent of the model and data: it takes a ``model`` whose ``forward(batch)`` returns a
dict of named, already-weighted loss tensors (their sum is optimised; each is logged), a map-style
``dataset`` and its ``collate_fn``. An optional ``batch_transform(batch, generator)`` runs after
collation (modality dropout); its ``numpy.random.Generator`` is seeded from ``(seed, step, rank)`` so a resumed
run draws the same numbers as an uninterrupted one.

Checkpoints (``W/epoch_N.pth`` every ``checkpoint_interval`` epochs, the newest ``keep_checkpoints`` of them
kept; ``W/latest.pth`` with each of those and at the end) hold model / optimizer / scheduler / scaler / EMA
states, ``epoch`` (completed epochs), ``step`` (optimizer steps), the config as a plain dict and the RNG
states; :mod:`perception.training.checkpoint`. :func:`perception.training.from_config.train_from_config` builds a
Trainer from a config.
"""

import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from perception.config_schema import REQUIRED, SCHEMA
from perception.data.collate import to_device
from perception.models.precision import autocast_dtype
from perception.models.weights import upgrade_state_dict
from perception.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from perception.training.distributed import DistContext, all_reduce_mean
from perception.training.ema import ModelEMA
from perception.training.logger import TrainLogger
from perception.training.optim import build_optimizer, build_scheduler


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch part-way (skipping the batches already trained on).

    The order of an epoch depends only on ``(seed, epoch)``; with ``skip`` samples skipped the remaining
    order is the tail of the same permutation, which is what makes mid-epoch resume exact.
    """

    def __init__(self, dataset, num_replicas, rank, seed, shuffle=True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_position(self, epoch: int, skip: int):
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip :])

    def __len__(self):
        return self.num_samples - self.skip


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id):
    # Each worker's numpy / python RNG follows torch's per-worker seed (itself derived from the base seed).
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


class Trainer:
    """Runs ``train_cfg['epochs']`` epochs (or stops after ``max_steps`` optimizer steps).

    - ``train_cfg``: the validated ``train`` section of the config (:data:`perception.config_schema.SCHEMA`).
    - ``config_dict``: the whole config as plain dicts, stored in every checkpoint.
    - ``ctx``: :class:`DistContext` (rank, world size, device); the default is one CPU process.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        dataset,
        collate_fn: Callable,
        train_cfg: dict,
        work_dir,
        config_dict: dict | None = None,
        ctx: DistContext | None = None,
        batch_transform: Callable | None = None,
        max_steps: int | None = None,
        progress: bool = True,
        max_minutes: float | None = None,
    ):
        # Keys the caller left out take the schema's defaults (``perception.config`` validates real configs).
        self.cfg = {**{k: v for k, v in SCHEMA["train"].items() if v is not REQUIRED}, **train_cfg}
        self.max_minutes = None if max_minutes is None else float(max_minutes)
        self.ctx = ctx or DistContext()
        self.work_dir = Path(work_dir)
        self.config_dict = config_dict or {}
        self.batch_transform = batch_transform
        self.max_steps = max_steps if max_steps is not None else self.cfg.get("max_steps")
        self.progress = progress
        if len(dataset) == 0:
            raise ValueError("training dataset is empty")
        if int(self.cfg["epochs"]) < 1:
            raise ValueError(f"train.epochs must be >= 1, got {self.cfg['epochs']}")

        seed_everything(int(self.cfg["seed"]))
        self.model = model.to(self.ctx.device)
        self.ddp = (
            DistributedDataParallel(
                self.model,
                device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda" else None,
                find_unused_parameters=True,  # single-task configs / dropped modalities leave parameters unused
            )
            if self.ctx.distributed
            else self.model
        )
        self.sampler = ResumableSampler(dataset, self.ctx.world_size, self.ctx.rank, int(self.cfg["seed"]))
        # The loader draws its workers' base seed from its own generator (re-seeded every epoch), not from
        # the global torch RNG: otherwise a resumed run's dropout etc. would see a shifted RNG stream.
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            dataset,
            batch_size=int(self.cfg["batch_size"]),
            sampler=self.sampler,
            collate_fn=collate_fn,
            num_workers=int(self.cfg["workers"]),
            worker_init_fn=_worker_init,
            pin_memory=self.ctx.device.type == "cuda",
            drop_last=False,
            generator=self.loader_generator,
        )
        self.steps_per_epoch = math.ceil(self.sampler.num_samples / int(self.cfg["batch_size"]))
        self.total_steps = int(self.cfg["epochs"]) * self.steps_per_epoch
        # The LR schedule spans epochs x steps per epoch (so a run cut by max_steps resumes exactly), except for
        # a wall-clock-budgeted run (max_minutes) with max_steps: its planned length is max_steps, the schedule
        # spans those (resume such a run with the same max_steps).
        self.schedule_steps = self.total_steps
        if self.max_minutes is not None and self.max_steps is not None:
            self.schedule_steps = max(1, min(self.total_steps, int(self.max_steps)))
        self.optimizer = build_optimizer(self.model, float(self.cfg["lr"]), float(self.cfg["weight_decay"]))
        self.scheduler = build_scheduler(self.optimizer, self.cfg["schedule"], float(self.cfg["lr"]),
                                         self.schedule_steps, float(self.cfg["pct_start"]))
        self.use_amp = bool(self.cfg["amp"]) and self.ctx.device.type == "cuda"  # fp16 + GradScaler on GPU
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        # bf16 on CPU (train.cpu_bf16) needs no scaler: bf16 has the exponent range of fp32.
        self.autocast_dtype, note = autocast_dtype(self.ctx.device.type, self.use_amp,
                                                   bool(self.cfg["cpu_bf16"]))
        if note and self.ctx.is_main:
            print(f"[train] warning: train.cpu_bf16: {note}", file=sys.stderr, flush=True)
        self.ema = ModelEMA(self.model, float(self.cfg["ema_decay"])) if self.cfg["ema"] else None
        self.step = 0
        self.logger = TrainLogger(self.work_dir, enabled=self.ctx.is_main)

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        return {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.use_amp else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "epoch": self.step // self.steps_per_epoch,  # completed epochs
            "step": self.step,
            "config": self.config_dict,
            "rng": rng_state(),
        }

    def save(self, name: str):
        if self.ctx.is_main:
            save_checkpoint(self.work_dir / name, self.state_dict())

    def save_epoch(self, epoch: int):
        """After completed ``epoch`` (1-based): ``epoch_N.pth`` + ``latest.pth`` every ``checkpoint_interval``
        epochs, deleting epoch files beyond the newest ``keep_checkpoints`` (a tiny-model checkpoint is ~140 MB;
        a run of many short epochs would otherwise fill the disk)."""
        interval, keep = int(self.cfg["checkpoint_interval"]), int(self.cfg["keep_checkpoints"])
        if interval <= 0 or epoch % interval != 0:
            return
        self.save(f"epoch_{epoch}.pth")
        self.save("latest.pth")
        if keep >= 0 and self.ctx.is_main:
            for old in range(epoch - keep * interval, 0, -interval):
                (self.work_dir / f"epoch_{old}.pth").unlink(missing_ok=True)

    def resume(self, path=None) -> bool:
        """Restore everything from ``path`` (default ``W/latest.pth``). Returns False when there is none."""
        path = Path(path) if path is not None else self.work_dir / "latest.pth"
        if not path.is_file():
            return False
        ckpt = load_checkpoint(path, map_location="cpu")
        self.model.load_state_dict(upgrade_state_dict(ckpt["model"]))  # key names of older checkpoints mapped
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.use_amp and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict({**ckpt["ema"], "shadow": upgrade_state_dict(ckpt["ema"]["shadow"])})
        self.step = int(ckpt["step"])
        set_rng_state(ckpt["rng"])
        return True

    # ---------------------------------------------------------------- loop
    def _step_rng(self) -> np.random.Generator:
        # Depends only on (seed, step, rank): a resumed run draws the same numbers.
        return np.random.default_rng((int(self.cfg["seed"]), self.step, self.ctx.rank))

    def train_step(self, batch) -> dict:
        """One optimizer step on one collated batch; returns the loss values (floats) of this process."""
        self.ddp.train()
        batch = to_device(batch, self.ctx.device)
        if self.batch_transform is not None:
            batch = self.batch_transform(batch, self._step_rng())
        with torch.autocast(device_type=self.ctx.device.type, dtype=self.autocast_dtype,
                            enabled=self.autocast_dtype is not None):
            losses = self.ddp(batch)
        if not isinstance(losses, dict) or not losses:
            raise ValueError("model forward must return a non-empty dict of named loss tensors")
        total = sum(v.float() for v in losses.values())
        if not torch.isfinite(total):
            bad = [k for k, v in losses.items() if not torch.isfinite(v)]
            raise FloatingPointError(f"non-finite loss at step {self.step}: {bad}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        grad_norm = None
        if self.cfg["grad_clip"]:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.cfg["grad_clip"])))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["loss"] = float(total.detach())
        if grad_norm is not None:
            values["grad_norm"] = grad_norm
        return values

    def fit(self) -> dict:
        """Train until ``epochs`` are done, ``max_steps`` reached or ``max_minutes`` of wall clock spent (checked
        after each step; the step that crosses the budget is logged and saved); returns the last logged record."""
        last = {}
        limit = self.total_steps if self.max_steps is None else min(self.total_steps, int(self.max_steps))
        bar = tqdm(total=limit, initial=self.step, disable=not (self.progress and self.ctx.is_main), desc="train")
        t0 = time.time()
        out_of_time = False
        while self.step < limit:
            epoch = self.step // self.steps_per_epoch
            done_in_epoch = self.step - epoch * self.steps_per_epoch
            self.sampler.set_position(epoch, done_in_epoch * int(self.cfg["batch_size"]))
            self.loader_generator.manual_seed(int(self.cfg["seed"]) * 1000 + epoch)
            if hasattr(self.loader.dataset, "set_epoch"):  # per-epoch augmentation draws (M3Dataset)
                self.loader.dataset.set_epoch(epoch)
            for batch in self.loader:
                values = self.train_step(batch)
                values = all_reduce_mean(values, self.ctx)
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
                out_of_time = self.max_minutes is not None and time.time() - t0 >= 60.0 * self.max_minutes
                if self.step % int(self.cfg["log_interval"]) == 0 or self.step == limit or out_of_time:
                    last = {"step": self.step, "epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"], **values}
                    last["time_s"] = round(time.time() - t0, 3)
                    self.logger.log(last)
                if self.step >= limit or out_of_time:
                    break
            if out_of_time:
                break
            if self.step % self.steps_per_epoch == 0 and self.step // self.steps_per_epoch == epoch + 1:
                self.save_epoch(epoch + 1)
        self.save("latest.pth")
        bar.close()
        self.logger.close()
        return last
