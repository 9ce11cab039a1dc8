"""Loading trained weights: checkpoints written by :mod:`perception.training.checkpoint`.

Here, not in ``perception.training``, so that the runtime (ROS 2 node, replay, eval) loads a model without
importing the trainer. Loading is ``torch.load(weights_only=True)``: no code is unpickled.

State-dict keys renamed since a checkpoint was written are mapped to today's names by
:func:`upgrade_state_dict`, which :func:`model_weights` (the Predictor, eval, bench and demo load through it) and
the trainer's resume apply: a checkpoint of any earlier version loads strictly, with the same outputs.
"""

from pathlib import Path

import torch

# The split of the multi-task head into one module per task (issue #18; checkpoints of commit eff7413 and
# before): old key prefix -> new key prefix, the first match wins. The parameters keep their order and values.
HEAD_SPLIT_KEY_MAP = (
    ("head.det_up.", "head.det.up."),  # the detection BEV up-sampler (det_upsample > 1; Identity otherwise)
    ("head.det_init.", "head.det.queries."),  # DetQueryInit: heatmap, offset head, class embedding
    ("head.det_head.", "head.det.head."),  # DetHead: the query FFNs
    ("head.map_init.", "head.map.queries."),  # MapQueryInit
    ("head.map_head.", "head.map.head."),  # MapHead
    ("head.occ_init.", "head.occ.queries."),  # OccQueryInit
    ("head.occ_cues.", "head.occ.cues."),  # LidarOccCues (no parameters)
    ("head.occ_head.", "head.occ.head."),  # OccHead (+ cue_refiner)
    ("head.occ_count_all", "head.occ.sampler.count_all"),  # class counts for the prior correction
    ("head.occ_count_sampled", "head.occ.sampler.count_sampled"),
)
# The old head registered the two count buffers for every task set; without occupancy (no ``head.occ_head.*``
# key) they were never written (all zero) and have no place in today's model: they are dropped.
_OLD_OCC_COUNTS = ("head.occ_count_all", "head.occ_count_sampled")


def upgrade_state_dict(state: dict) -> dict:
    """``state`` (a model state dict, any version) with today's key names (:data:`HEAD_SPLIT_KEY_MAP`), in the
    same order and with the same tensors. Keys already current pass unchanged (idempotent)."""
    has_occ = any(k.startswith("head.occ_head.") or k.startswith("head.occ.") for k in state)
    out = {}
    for key, value in state.items():
        if key in _OLD_OCC_COUNTS and not has_occ:
            continue
        for old, new in HEAD_SPLIT_KEY_MAP:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`perception.training.checkpoint.save_checkpoint` (``weights_only=True``:
    no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def weight_set(checkpoint: dict, use_ema: bool = False) -> str:
    """Which of a checkpoint's weights :func:`model_weights` returns: ``'ema'`` when ``use_ema`` and it has them,
    else ``'model'``."""
    return "ema" if use_ema and checkpoint.get("ema") is not None else "model"


def model_weights(checkpoint: dict, use_ema: bool = False) -> dict:
    """The model state dict of a checkpoint (the EMA weights when ``use_ema`` and present), with today's key
    names (:func:`upgrade_state_dict`)."""
    if "model" not in checkpoint:
        raise ValueError("checkpoint has no 'model' entry")
    if weight_set(checkpoint, use_ema) == "ema":
        ema = checkpoint["ema"]  # the trainer's ModelEMA.state_dict(): {'updates', 'shadow': state dict}
        return upgrade_state_dict(ema["shadow"] if "shadow" in ema else ema)
    return upgrade_state_dict(checkpoint["model"])
