"""MonoScene scene-class affinity losses (Cao & de Charette 2022) on flattened voxels.

Both losses push the precision, recall and specificity of the soft prediction towards 1 with a BCE.
"""

import torch


def _bce_to_one(x):
    # BCE(x, 1) = -log(x), written out: F.binary_cross_entropy refuses fp16 inputs under autocast
    return -torch.log(x.float().clamp(1e-6, 1 - 1e-6))


def sem_scal_loss(probs, labels):
    """Semantic scene-class affinity loss.

    ``probs``: ``(P, C)`` softmax probabilities; ``labels``: ``(P,)`` int64. For every class present in
    ``labels``: BCE(precision, 1) + BCE(recall, 1) (+ BCE(specificity, 1) when some voxels are not that class),
    averaged over those classes. 0 when ``P == 0``.
    """
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    terms = []
    for c in torch.unique(labels).tolist():
        p = probs[:, c]
        t = (labels == c).float()
        tp = (p * t).sum()
        loss = _bce_to_one(tp / p.sum().clamp(min=1e-6)) + _bce_to_one(tp / t.sum())
        if (1 - t).sum() > 0:
            loss = loss + _bce_to_one(((1 - p) * (1 - t)).sum() / (1 - t).sum())
        terms.append(loss)
    return torch.stack(terms).mean()


def geo_scal_loss(probs, labels, free_index):
    """Geometric scene-class affinity loss on occupied (any class but ``free_index``) vs free voxels.

    ``probs``: ``(P, C)`` softmax probabilities; ``labels``: ``(P,)`` int64. 0 when ``P == 0``.
    """
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    empty = probs[:, free_index]
    occ_p = 1 - empty
    occ_t = (labels != free_index).float()
    inter = (occ_p * occ_t).sum()
    loss = _bce_to_one(inter / occ_p.sum().clamp(min=1e-6))
    if occ_t.sum() > 0:
        loss = loss + _bce_to_one(inter / occ_t.sum())
    if (1 - occ_t).sum() > 0:
        loss = loss + _bce_to_one(((1 - occ_t) * empty).sum() / (1 - occ_t).sum())
    return loss
