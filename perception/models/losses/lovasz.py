"""Lovasz-softmax loss (Berman et al. 2018): a convex surrogate of the per-class Jaccard (IoU) loss."""

import torch


def lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    ``gt_sorted``: ``(..., P)`` float 0/1 ground truth ordered like the sorted errors (last dimension).
    """
    gts = gt_sorted.sum(-1, keepdim=True)
    intersection = gts - gt_sorted.cumsum(-1)
    union = gts + (1 - gt_sorted).cumsum(-1)
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], -1)


def lovasz_softmax_flat(probs, labels):
    """Lovasz-softmax over flattened voxels/pixels.

    ``probs``: ``(P, C)`` class probabilities (softmax output); ``labels``: ``(P,)`` int64 in ``[0, C)``.
    Averages over the classes present in ``labels`` (the usual ``classes='present'``). Returns 0 (with a
    graph to ``probs``) when ``P == 0``.

    All present classes are sorted in one ``(C', P)`` sort rather than one sort per class: the same loss and
    gradient (tests/test_losses.py compares the per-class form), ~2x faster on CPU for 32k voxels x 18 classes.
    """
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"lovasz_softmax_flat: probs (P, C) and labels (P,), got {tuple(probs.shape)} and "
                         f"{tuple(labels.shape)}")
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    present = torch.unique(labels)
    fg = (labels[None, :] == present[:, None]).to(probs.dtype)  # (C', P)
    errors = (fg - probs.t()[present]).abs()
    errors_sorted, perm = torch.sort(errors, dim=1, descending=True)
    return (errors_sorted * lovasz_grad(fg.gather(1, perm))).sum(1).mean()
