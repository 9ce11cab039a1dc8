"""Checkpoints that load with ``torch.load(path, weights_only=True)``.

Only tensors and plain Python types go in: model / optimizer / scheduler state dicts, epoch and step
counters, the config as a plain dict, and the RNG states (numpy's state array stored as a tensor).
Files are written atomically (temporary file, then rename) so a killed run never leaves a torn file.
"""

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from perception.config import load_config
from perception.models import build_model

# Loading lives with the model (the runtime loads weights without the trainer); re-exported for training code.
from perception.models.weights import load_checkpoint, model_weights  # noqa: F401


def rng_state() -> dict:
    """The python, numpy, torch (and CUDA) global RNG states as plain types / tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    """Inverse of :func:`rng_state`."""
    python = state["python"]
    # weights_only loading returns lists where tuples were saved; random.setstate needs tuples.
    random.setstate((python[0], tuple(python[1]), python[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, state: dict):
    """Write ``state`` (tensors / plain types only) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
    except (OSError, RuntimeError) as err:  # a full disk surfaces as RuntimeError("... unexpected pos ...")
        tmp.unlink(missing_ok=True)  # the previous ``path`` (if any) is untouched
        free_mb = shutil.disk_usage(path.parent).free / 2**20
        raise OSError(
            f"could not write checkpoint {path} ({free_mb:.0f} MiB free on its disk; the previous file, if any, "
            f"is kept): {err}"
        ) from err
    os.replace(tmp, path)


def checkpoint_mismatch(config, checkpoint):
    """None when the weights of ``checkpoint`` load strictly into the model that ``config`` builds now, else
    the first line of the reason (a checkpoint written by an older version of the model does not fit)."""
    model = build_model(load_config(config).model)
    try:
        model.load_state_dict(model_weights(load_checkpoint(checkpoint)), strict=True)
    except (RuntimeError, KeyError, ValueError) as e:
        return (str(e).strip().splitlines() or [type(e).__name__])[0]
    return None


def checkpoint_fits(config, checkpoint) -> bool:
    """True when :func:`checkpoint_mismatch` finds nothing: the demo retrains a cached checkpoint that does not fit."""
    return checkpoint_mismatch(config, checkpoint) is None
