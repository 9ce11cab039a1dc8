"""Lovasz-softmax loss (Berman et al. 2018): a convex surrogate of the per-class Jaccard (IoU) loss."""

import torch


def lovasz_grad(gt_sorted):
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    ``gt_sorted``: ``(P,)`` float 0/1 ground truth ordered like the sorted errors.
    """
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax_flat(probs, labels):
    """Lovasz-softmax over flattened voxels/pixels.

    ``probs``: ``(P, C)`` class probabilities (softmax output); ``labels``: ``(P,)`` int64 in ``[0, C)``.
    Averages over the classes present in ``labels`` (the usual ``classes='present'``). Returns 0 (with a
    graph to ``probs``) when ``P == 0``.
    """
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"lovasz_softmax_flat: probs (P, C) and labels (P,), got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    losses = []
    for c in torch.unique(labels).tolist():
        fg = (labels == c).float()
        errors = (fg - probs[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg[perm])))
    return torch.stack(losses).mean()
