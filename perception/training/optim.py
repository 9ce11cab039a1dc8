"""AdamW with a one-cycle or cosine learning-rate schedule stepped once per optimizer step."""

import torch

from perception.config_schema import SCHEDULES


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_scheduler(optimizer, schedule: str, lr: float, total_steps: int, pct_start: float = 0.4):
    """``'onecycle'``: OpenPCDet's adam_onecycle (warm-up from lr/10 over ``pct_start``, then cosine to
    ~0, momentum 0.95 -> 0.85); ``'cosine'``: cosine from ``lr`` to ``lr * 1e-3`` over ``total_steps``."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=total_steps, pct_start=pct_start, div_factor=10.0,
            base_momentum=0.85, max_momentum=0.95,
        )
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=lr * 1e-3)
    raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {schedule!r}")
