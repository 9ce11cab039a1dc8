"""Loading trained weights: checkpoints written by :mod:`perception.training.checkpoint`.

Here, not in ``perception.training``, so that the runtime (ROS 2 node, replay, eval) loads a model without
importing the trainer. Loading is ``torch.load(weights_only=True)``: no code is unpickled.
"""

from pathlib import Path

import torch


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`perception.training.checkpoint.save_checkpoint` (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def model_weights(checkpoint: dict, use_ema: bool = False) -> dict:
    """The model state dict of a checkpoint (the EMA weights when ``use_ema`` and present)."""
    if "model" not in checkpoint:
        raise ValueError("checkpoint has no 'model' entry")
    if use_ema and checkpoint.get("ema") is not None:
        return checkpoint["ema"]
    return checkpoint["model"]
