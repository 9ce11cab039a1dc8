"""Focal losses: the Gaussian (CenterNet) focal loss for heatmaps and the sigmoid focal loss for logits."""

import torch
import torch.nn.functional as F


def gaussian_focal_loss(pred_logits, target, alpha=2.0, gamma=4.0, eps=1e-6, avg_factor=None):
    """CenterNet focal loss on a heatmap, summed over all cells and divided by ``max(avg_factor, 1)``
    (CenterPoint / TransFusion normalisation: the number of objects drawn in the heatmap); by default
    ``avg_factor`` is the number of peaks (cells with target 1).

    ``pred_logits`` and ``target`` have the same shape (e.g. ``(B, 10, X, Y)``); ``target`` holds Gaussian
    values in [0, 1] that are exactly 1 at object centres. With no peak the sum is divided by 1.
    """
    if pred_logits.shape != target.shape:
        raise ValueError(f"gaussian_focal_loss: pred {tuple(pred_logits.shape)} != target {tuple(target.shape)}")
    pred = pred_logits.sigmoid().clamp(eps, 1 - eps)
    pos = target.eq(1).float()
    neg = 1.0 - pos
    pos_loss = -torch.log(pred) * (1 - pred).pow(alpha) * pos
    neg_loss = -torch.log(1 - pred) * pred.pow(alpha) * (1 - target).pow(gamma) * neg
    norm = pos.sum() if avg_factor is None else torch.as_tensor(float(avg_factor), device=pred.device)
    return (pos_loss.sum() + neg_loss.sum()) / norm.clamp(min=1.0)


def sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0):
    """Element-wise sigmoid focal loss (RetinaNet), not reduced: ``-alpha_t (1 - p_t)^gamma log(p_t)``.

    ``target`` is a float tensor of 0/1 (or soft) labels with the shape of ``logits``.
    """
    if logits.shape != target.shape:
        raise ValueError(f"sigmoid_focal_loss: logits {tuple(logits.shape)} != target {tuple(target.shape)}")
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return alpha_t * (1 - p_t).pow(gamma) * ce
