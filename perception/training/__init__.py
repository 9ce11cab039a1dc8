"""Training: the loop (:class:`Trainer`), checkpoints, DDP set-up, EMA, logs. ``perception train`` drives it
through :func:`perception.training.from_config.train_from_config`."""

from perception.training.checkpoint import load_checkpoint, model_weights, save_checkpoint
from perception.training.distributed import DistContext, cleanup_distributed, init_distributed
from perception.training.trainer import Trainer

__all__ = [
    "DistContext",
    "Trainer",
    "cleanup_distributed",
    "init_distributed",
    "load_checkpoint",
    "model_weights",
    "save_checkpoint",
]
