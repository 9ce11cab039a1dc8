"""Losses of the multi-task heads against hand-computed small cases."""

import math

import torch

from perception.models.losses.dice import dice_loss
from perception.models.losses.focal import gaussian_focal_loss, sigmoid_focal_loss
from perception.models.losses.lovasz import lovasz_softmax_flat
from perception.models.losses.scene_affinity import geo_scal_loss, sem_scal_loss


def test_sigmoid_focal_matches_formula():
    logits = torch.tensor([0.0, 2.0])
    target = torch.tensor([1.0, 0.0])
    out = sigmoid_focal_loss(logits, target)
    # positive (p = 0.5): 0.25 * (1 - .5)^2 * -log(.5)
    p2 = 1 / (1 + math.exp(-2.0))  # negative: 0.75 * p^2 * -log(1 - p)
    expected = torch.tensor([0.25 * 0.25 * math.log(2), 0.75 * p2**2 * -math.log(1 - p2)])
    assert torch.allclose(out, expected, atol=1e-6)


def test_gaussian_focal_hand_case():
    logits = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([[1.0, 0.5]])
    # pos: -log(.5) * .5^2 ; neg: -log(.5) * .5^2 * (1 - .5)^4 ; one peak
    expected = math.log(2) * 0.25 + math.log(2) * 0.25 * 0.0625
    assert abs(gaussian_focal_loss(logits, target).item() - expected) < 1e-6
    # no peak: divided by 1, not by 0
    assert torch.isfinite(gaussian_focal_loss(logits, torch.zeros(1, 2)))


def test_dice_hand_case():
    logits = torch.tensor([[[10.0, -10.0, 10.0, -10.0]]])  # p ~ [1, 0, 1, 0]
    target = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])
    # 1 - (2*1 + 1) / (2 + 1 + 1) = 0.25
    assert abs(dice_loss(logits, target).item() - 0.25) < 1e-3


def test_lovasz_perfect_is_zero_and_hand_case():
    labels = torch.tensor([0, 1, 1, 2])
    perfect = torch.nn.functional.one_hot(labels, 3).float()
    assert lovasz_softmax_flat(perfect, labels).item() == 0.0
    probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    lab = torch.tensor([0, 1])
    # class 0: errors sorted [0.5 (fg pixel), 0.5 (bg pixel)]; jaccard after k: [1 - 0/1, 1 - 0/2] = [1, 1]
    # -> grad [1, 0] -> loss 0.5; class 1 symmetric -> mean 0.5
    assert abs(lovasz_softmax_flat(probs, lab).item() - 0.5) < 1e-6
    assert lovasz_softmax_flat(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)).item() == 0.0


def _lovasz_per_class(probs, labels):
    """The loss written class by class (one sort each), as in Berman et al.'s reference code."""
    losses = []
    for c in torch.unique(labels).tolist():
        fg = (labels == c).float()
        errors_sorted, perm = torch.sort((fg - probs[:, c]).abs(), descending=True)
        gt = fg[perm]
        jaccard = 1.0 - (gt.sum() - gt.cumsum(0)) / (gt.sum() + (1 - gt).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        losses.append(torch.dot(errors_sorted, jaccard))
    return torch.stack(losses).mean()


def test_lovasz_batched_sort_equals_per_class_form():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (3000,), generator=g)
    labels[:1500] = 6  # a dominant class, as "free" in occupancy; class 3 absent
    labels[labels == 3] = 2
    logits = torch.randn(3000, 7, generator=g, requires_grad=True)
    got = lovasz_softmax_flat(logits.softmax(-1), labels)
    want = _lovasz_per_class(logits.softmax(-1), labels)
    (g_got,) = torch.autograd.grad(got, logits)
    (g_want,) = torch.autograd.grad(want, logits)
    assert abs(got.item() - want.item()) < 1e-6 and got.item() > 0.1
    assert torch.allclose(g_got, g_want, atol=1e-7) and g_got.abs().sum() > 0


def test_scene_affinity_prefers_correct_prediction():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    good = torch.nn.functional.one_hot(labels, 3).float() * 0.98 + 0.01
    bad = torch.full((6, 3), 1 / 3)
    assert sem_scal_loss(good, labels) < 0.1 < sem_scal_loss(bad, labels)
    assert geo_scal_loss(good, labels, free_index=2) < 0.1 < geo_scal_loss(bad, labels, free_index=2)
