"""``model.head.map.aux_blend``: at inference the map logits are a blend of the query head's and the auxiliary
prediction's, with one weight or one per class; training, its losses and the weight-0 map are untouched."""

from pathlib import Path

import pytest
import torch

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES
from perception.models.heads.multitask import MultiTaskHead

REPO = Path(__file__).resolve().parents[1]
PCR = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)


def _head(blend):
    torch.manual_seed(0)
    return MultiTaskHead(("map",), 8, PCR, 6.4, num_layers=1, d_model=16, num_heads=2, ffn_dim=32,
                         map=dict(aux_blend=blend))


def _batch():
    gt = (torch.rand(2, len(BEV_MAP_CLASSES), 200, 200, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    return {"bev_aug": torch.eye(4)[None].repeat(2, 1, 1), "gt_bev": gt, "gt_bev_valid": torch.tensor([True, True])}


PER_CLASS = (0.5, 1.0, 0.5, 0.5, 0.0, 0.5)  # BEV_MAP_CLASSES order


@pytest.mark.parametrize("blend", [0.5, 1.0, PER_CLASS])
def test_inference_blends_the_two_predictions(blend):
    bev = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    plain, blended = _head(0.0).eval(), _head(blend).eval()
    blended.load_state_dict(plain.state_dict())  # the same weights: only the blend differs
    with torch.no_grad():
        want = plain({"map": bev}, _batch())["map"]  # (B, K, 200, 200) each
        got = blended({"map": bev}, _batch())["map"]
    assert not torch.allclose(want["logits"], want["aux_logits"], atol=1e-2)  # two different predictions
    torch.testing.assert_close(got["aux_logits"], want["aux_logits"])
    w = torch.tensor(blend).view(1, -1, 1, 1)  # (1, 1 or K, 1, 1)
    torch.testing.assert_close(got["logits"], (1 - w) * want["logits"] + w * want["aux_logits"])
    per_class = w.expand(1, len(BEV_MAP_CLASSES), 1, 1).flatten().tolist()  # K weights
    for k, wk in enumerate(per_class):  # each class its own weight: 0 keeps the query head's, 1 takes the aux's
        if wk in (0.0, 1.0):
            torch.testing.assert_close(got["logits"][:, k], (want["aux_logits"] if wk else want["logits"])[:, k])
    probs = blended.map.decode(got)[0]["bev_probs"]  # the decoded map is the blend's sigmoid
    torch.testing.assert_close(probs, got["logits"][0].sigmoid())


def test_training_and_losses_do_not_see_it():
    bev = torch.randn(2, 8, 16, 16, generator=torch.Generator().manual_seed(3))
    plain, blended = _head(0.0).train(), _head(1.0).train()
    blended.load_state_dict(plain.state_dict())
    want = plain({"map": bev}, _batch())
    got = blended({"map": bev}, _batch())
    torch.testing.assert_close(got["map"]["logits"], want["map"]["logits"])
    torch.testing.assert_close(blended.loss(got, _batch()), plain.loss(want, _batch()))


def test_a_weight_outside_0_1_is_refused_by_name():
    with pytest.raises(ValueError, match=r"model\.head\.map\.aux_blend must be a weight in \[0, 1\], got 1\.5"):
        _head(1.5)
    with pytest.raises(ValueError, match=r"aux_blend must be a weight in \[0, 1\], got -0\.1"):
        _head((0.5, 1.0, 0.5, -0.1, 0.0, 0.5))
    with pytest.raises(ValueError, match=r"aux_blend needs one weight or 6 \(one per map class: drivable_area, .*"
                                         r"divider\), got 5"):
        _head((0.5, 1.0, 0.5, 0.5, 0.0))
    cfg = load_config(REPO / "configs" / "tiny.py", ["model.head.map.aux_blend=0.5"])
    assert cfg.model["head"]["map"]["aux_blend"] == 0.5
    cfg = load_config(REPO / "configs" / "tiny.py", [f"model.head.map.aux_blend={PER_CLASS}"])
    assert tuple(cfg.model["head"]["map"]["aux_blend"]) == PER_CLASS
