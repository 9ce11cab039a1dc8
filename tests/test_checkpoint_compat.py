"""A checkpoint written before the multi-task head was split into task modules (issue #18) loads with today's code
through the normal loading path and predicts exactly what the old code predicted; the old flat config keys are
errors naming their new place.

``tests/data/pre_head_split.pth`` was written once, with the old code (commit eff7413), by
``tests/data/make_pre_head_split_checkpoint.py`` (kept for the record): a small LiDAR-only tiny with every head part
(detection with ``det_upsample=2`` and the offset head, map, occupancy with the cue refiner, the box refiner),
non-zero occupancy class counts, an input batch and the old model's ``predict`` outputs on it.
"""

import hashlib
from pathlib import Path

import pytest
import torch

from perception.config import load_config
from perception.config_schema import MOVED_HEAD_KEYS
from perception.models import build_model
from perception.models.weights import HEAD_SPLIT_KEY_MAP, load_checkpoint, model_weights, upgrade_state_dict

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "configs" / "tiny.py"
OLD_CHECKPOINT = REPO / "tests" / "data" / "pre_head_split.pth"
# The generator's OLD_OPTIONS in today's layout (model.head.det / .map / .occ sub-sections).
NEW_OPTIONS = [
    "model.camera=None", "data.cameras=()", "model.occ_prior_fill=None", "model.camera_map_blend=0",
    "model.occ_ground_from_map=None",
    "model.lidar.out_channels=16", "model.lidar.pillar_channels=16", "model.lidar.layer_channels=(16, 32)",
    "model.lidar.layer_nums=(1, 1)",
    "model.fusion.out_channels=16", "model.fusion.fused_channels=16", "model.fusion.backbone_channels=(16, 32)",
    "model.fusion.backbone_layers=(1, 1)",
    "model.head.num_layers=1", "model.head.d_model=16", "model.head.num_heads=2", "model.head.ffn_dim=32",
    "model.head.det.num_queries=30", "model.head.det.upsample=2", "model.head.det.offset_head=True",
    "model.head.occ.channels=8", "model.head.occ.height_bins=4", "model.head.occ.bev_height_bins=4",
    "model.refiner.channels=(16, 32)", "model.score_threshold=0.0",
    "model.head.map.train_stride=2",  # tiny's value at eff7413 (tiny trains on the full grid since 19ceba5)
    "model.map_memory_s=0",  # the BEV map memory came later (tiny: 8 s); 0 predicts as the old code did
    "model.camera_map_weight=0",  # the camera map loss came later (tiny: 10); this model has no camera
    "model.head.map.aux_blend=0",  # the map's blend of its two predictions came later (tiny: per class)
]
# model keys added since eff7413, at the values that behave as before
ADDED_MODEL_KEYS = {"map_memory_s": 0.0, "camera_map_weight": 0.0, "camera_occ_weight": 0.0, "occ_prior_fill": None,
                    "camera_map_blend": 0.0, "occ_ground_from_map": None, "map_logit_offsets": None,
                    "lidar_map_weight": 0.0}


@pytest.fixture(scope="module")
def old():
    return load_checkpoint(OLD_CHECKPOINT)  # torch.load(weights_only=True)


def _flat_to_sections(head):
    """An old flat ``model.head`` dict in today's layout (:data:`MOVED_HEAD_KEYS`)."""
    out = {}
    for key, value in head.items():
        if key in MOVED_HEAD_KEYS:
            task, name = MOVED_HEAD_KEYS[key].split(".")
            out.setdefault(task, {})[name] = value
        else:
            out[key] = value
    return out


def test_the_new_layout_config_is_the_old_one(old):
    stored = old["config"]["model"]  # as the old code wrote it (flat model.head)
    new = load_config(TINY, NEW_OPTIONS).to_dict()["model"]
    assert "num_det_queries" in stored["head"] and "det" not in stored["head"]
    assert new["head"]["occ"].pop("grid") == "occ3d"  # named in today's base config, the old default
    assert new["head"]["map"].pop("aux_blend") == 0  # added since (see NEW_OPTIONS): 0 predicts as before
    assert _flat_to_sections(stored["head"]) == new["head"]
    rest = {k: v for k, v in new.items() if k != "head"}
    assert {k: rest.pop(k) for k in ADDED_MODEL_KEYS} == ADDED_MODEL_KEYS
    assert {k: v for k, v in stored.items() if k != "head"} == rest


def test_old_state_dict_keys_map_onto_the_new_model(old):
    torch.manual_seed(0)
    model = build_model(load_config(TINY, NEW_OPTIONS).model)
    state = old["model"]
    assert any(k.startswith("head.det_init.") for k in state) and "head.occ_count_all" in state
    upgraded = upgrade_state_dict(state)
    assert set(upgraded) == set(model.state_dict()) and len(upgraded) == len(state)
    assert upgrade_state_dict(upgraded) == upgraded  # idempotent: today's keys pass unchanged
    assert torch.equal(upgraded["head.occ.sampler.count_all"], state["head.occ_count_all"])
    assert upgraded["head.occ.sampler.count_all"].sum() > 0 and upgraded["head.occ.sampler.count_sampled"].sum() > 0
    # every renamed key comes from one of the documented prefixes, parameter order unchanged
    renamed = {k for k in state if k not in upgraded}
    assert renamed and all(any(k.startswith(o) for o, _ in HEAD_SPLIT_KEY_MAP) for k in renamed)
    names = [n for n, _ in model.named_parameters()]
    assert [k for k in upgraded if k in dict(model.named_parameters())] == names
    # an old model without occupancy had the (zero) count buffers too: dropped
    det_only = {k: v for k, v in state.items() if not k.startswith(("head.occ_init", "head.occ_head", "head.occ_cues"))}
    assert not any("count" in k for k in upgrade_state_dict(det_only))
    # the EMA entry of a checkpoint (the trainer's {'updates', 'shadow'}) is mapped too
    shadow = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    ema = {"model": state, "ema": {"updates": 3, "shadow": shadow}}
    model.load_state_dict(model_weights(ema, use_ema=True))
    assert torch.equal(model.head.det.head.cls[-1].bias, state["head.det_head.cls.2.bias"] + 1)


def test_old_checkpoint_predicts_what_the_old_code_predicted(old):
    """The normal loading path (Predictor: weights_only load, key map, strict load_state_dict), then the
    model's own ``predict`` on the stored batch: boxes, scores and labels as stored; the BEV map probabilities and
    the occupancy labels by their recorded sums, probes, histogram and hash."""
    from perception.runtime import Predictor

    predictor = Predictor(load_config(TINY, NEW_OPTIONS), OLD_CHECKPOINT)  # strict: every key must fit
    with torch.no_grad():
        results = predictor.model.predict(old["test_batch"])
    expected = old["test_predictions"]
    assert len(results) == len(expected) == 2
    for r, e in zip(results, expected, strict=True):
        assert len(e["boxes"]) == 30 and e["occ_bincount"].count_nonzero() > 1  # the record is not trivial
        assert torch.equal(r["labels"], e["labels"])
        torch.testing.assert_close(r["boxes"], e["boxes"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(r["scores"], e["scores"], rtol=1e-5, atol=1e-6)
        bev = r["bev_probs"].float()
        torch.testing.assert_close(bev.double().sum(dim=(1, 2)), e["bev_sum"], rtol=1e-6, atol=1e-3)
        torch.testing.assert_close(bev.flatten()[e["bev_probe"]], e["bev_values"], rtol=1e-5, atol=1e-6)
        occ = r["occ_labels"]
        assert list(occ.shape) == e["occ_shape"] and occ.dtype == torch.uint8
        assert torch.equal(torch.bincount(occ.flatten().long(), minlength=256), e["occ_bincount"])
        assert torch.equal(occ.flatten()[e["occ_probe"]], e["occ_values"])
        assert hashlib.sha256(occ.contiguous().numpy().tobytes()).hexdigest() == e["occ_sha256"]


@pytest.mark.parametrize("old_key, new_key, value", [
    ("occ_grid", "occ.grid", "'openocc'"), ("num_det_queries", "det.num_queries", "50"),
    ("det_upsample", "det.upsample", "2"), ("occ_lidar_cues", "occ.lidar_cues", "False"),
    ("map_train_stride", "map.train_stride", "1"),
])
def test_old_flat_head_keys_name_their_new_place(old_key, new_key, value, tmp_path):
    moved = rf"model\.head\.{old_key} moved to model\.head\.{new_key}"
    with pytest.raises(ValueError, match=rf"{moved} \(file .*tiny\.py\)"):
        load_config(TINY, [f"model.head.{old_key}={value}"])
    config = tmp_path / "old_layout.py"  # a config file of the old layout
    config.write_text(f"_base_ = [{str(TINY)!r}]\nmodel = dict(head=dict({old_key}={value}))\n")
    with pytest.raises(ValueError, match=rf"{moved} \(file .*old_layout\.py\)"):
        load_config(config)


def test_a_stored_old_layout_config_gets_the_same_error(old):
    """A config stored before the split (a checkpoint's 'config', an exported ONNX file's metadata) is not
    re-validated by load_config: build_model names the moved key too."""
    from perception.config import _wrap

    cfg = _wrap(old["config"], "pre_head_split.pth")
    with pytest.raises(ValueError,
                       match=r"model\.head\.\w+ moved to model\.head\.(det|map|occ)\.\w+ \(file pre_head_split\.pth\)"):
        build_model(cfg["model"])
