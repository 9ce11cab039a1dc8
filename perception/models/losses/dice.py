"""Soft Dice loss for per-class binary segmentation."""


def dice_loss(logits, target, eps=1.0):
    """Mean over batch and classes of ``1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps)``.

    ``logits``, ``target``: ``(B, C, ...)``; ``p = sigmoid(logits)``; sums run over the spatial dims.
    ``eps`` (default 1, "smooth" Dice) keeps empty classes finite: an empty class predicted empty scores 0.
    """
    if logits.shape != target.shape:
        raise ValueError(f"dice_loss: logits {tuple(logits.shape)} != target {tuple(target.shape)}")
    p = logits.sigmoid().flatten(2)
    t = target.flatten(2).float()
    inter = (p * t).sum(-1)
    dice = (2 * inter + eps) / (p.sum(-1) + t.sum(-1) + eps)
    return (1 - dice).mean()
