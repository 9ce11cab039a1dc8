"""Fusion neck: MAFI modality independence under masks, per-task weights, gradients, missing modalities."""

import pytest
import torch

from perception.models.fusion.neck import FusedBEVNeck

TASKS = ("det", "map", "occ")


def _neck(fusion="mafi", lidar_channels=12, camera_channels=8):
    torch.manual_seed(0)
    return FusedBEVNeck(lidar_channels, camera_channels, 16, TASKS, fusion=fusion, fused_channels=16,
                        backbone_channels=(16, 16), backbone_layers=(1, 1))


def _maps(seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 12, 16, 16, generator=gen), torch.randn(2, 8, 16, 16, generator=gen)


@pytest.mark.parametrize("train", [True, False])
def test_masked_modality_does_not_affect_that_sample(train):
    neck = _neck().train(train)
    lidar, camera = _maps(0)
    other_lidar, other_camera = _maps(1)
    lidar_mask, camera_mask = torch.tensor([False, True]), torch.tensor([True, False])
    with torch.no_grad():
        ref = neck(lidar, camera, lidar_mask, camera_mask)
        # Sample 0 has no LiDAR: replacing its LiDAR map changes nothing for it.
        out = neck(torch.stack([other_lidar[0], lidar[1]]), camera, lidar_mask, camera_mask)
        for t in TASKS:
            torch.testing.assert_close(out[t][0], ref[t][0], rtol=0, atol=0)
        # Sample 1 has no cameras: replacing its camera map changes nothing for it.
        out = neck(lidar, torch.stack([camera[0], other_camera[1]]), lidar_mask, camera_mask)
        for t in TASKS:
            torch.testing.assert_close(out[t][1], ref[t][1], rtol=0, atol=0)
        # ...while a present modality does matter (the checks above could fail).
        out = neck(torch.stack([lidar[0], other_lidar[1]]), camera, lidar_mask, camera_mask)
        assert not torch.allclose(out["det"][1], ref["det"][1])


def test_per_task_weights_and_gradients_reach_both_se_branches():
    neck = _neck()
    lidar, camera = _maps(2)
    out = neck(lidar, camera, torch.tensor([True, True]), torch.tensor([True, True]))
    assert set(out) == set(TASKS) and all(o.shape == (2, 16, 16, 16) for o in out.values())
    assert not torch.allclose(out["det"], out["map"])  # task-specific channel weights
    sum(o.square().mean() for o in out.values()).backward()
    assert neck.mafi.lidar_weights.fc.weight.grad.abs().sum() > 0
    assert neck.mafi.camera_weights.fc.weight.grad.abs().sum() > 0
    assert neck.mafi.lidar_weights.fc.weight is not neck.mafi.camera_weights.fc.weight  # two SE sets
    w_lidar, w_camera = neck.mafi.task_weights(lidar, camera, torch.tensor([False, True]), torch.tensor([True, False]))
    assert not w_lidar["det"][0].any() and w_lidar["det"][1].all()
    assert w_camera["map"][0].all() and not w_camera["map"][1].any()


@pytest.mark.parametrize("fusion", ["mafi", "conv"])
def test_missing_modalities_give_finite_outputs(fusion):
    neck = _neck(fusion)
    lidar, camera = _maps(3)
    cases = [
        (lidar, camera, [True, False], [False, True]),  # one sample per modality
        (None, camera, [False, False], [True, True]),  # LiDAR encoder disabled for the batch
        (lidar, None, [True, True], [False, False]),  # no cameras at all
        (lidar, camera, [True, True], [False, False]),  # all cameras masked
    ]
    for lid, cam, lm, cm in cases:
        out = neck(lid, cam, torch.tensor(lm), torch.tensor(cm))
        assert all(torch.isfinite(o).all() and o.shape == (2, 16, 16, 16) for o in out.values())
    if fusion == "conv":
        assert out["det"] is out["map"]  # the baseline shares one map
    with pytest.raises(ValueError, match="both None"):
        neck(None, None, torch.tensor([True, True]), torch.tensor([True, True]))


def test_camera_only_neck_and_bad_inputs():
    neck = _neck(lidar_channels=0)
    _, camera = _maps(4)
    cam_mask = torch.tensor([[True, False], [False, False]])  # (B, N_cam) is reduced with any()
    out = neck(None, camera, torch.tensor([False, False]), cam_mask)
    assert torch.isfinite(out["occ"]).all()
    with pytest.raises(ValueError, match="camera_bev"):
        neck(None, camera[:, :5], torch.tensor([False, False]), cam_mask)
    with pytest.raises(ValueError, match="tasks"):
        FusedBEVNeck(4, 4, 8, ("det", "segmentation"))
