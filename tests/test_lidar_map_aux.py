"""``model.lidar_map_weight`` (:class:`BranchMapAux` with ``sensor='lidar'``): a training-only map loss on the
LiDAR BEV alone. It trains its head and the LiDAR encoder and nothing after the fusion or in the camera branch,
adds nothing for a sample without LiDAR, changes no prediction, and leaves every other module's initial weights
as they are without it (it is built last)."""

import pytest
import torch

from perception.config import load_config
from perception.models import build_model
from test_training import REPO, _one_sample_batch

OPTIONS = ["model.map_memory_s=0", "model.camera_map_weight=0", "model.camera_map_blend=0"]


def test_lidar_map_loss_trains_the_lidar_branch_alone_and_leaves_inference_alone(real_dir):
    cfg = load_config(REPO / "configs" / "tiny.py", [*OPTIONS, "model.lidar_map_weight=5.0"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    torch.manual_seed(0)
    plain = build_model(load_config(REPO / "configs" / "tiny.py", OPTIONS).model)
    with_head = {k: v for k, v in model.state_dict().items() if not k.startswith("lidar_map.")}
    assert with_head.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in with_head.items())  # built last: same init

    batch = _one_sample_batch(cfg, real_dir)
    batch["gt_bev"] = torch.zeros_like(batch["gt_bev"])
    batch["gt_bev"][:, 0, :100] = 1  # drivable area ahead of the LiDAR (+x)
    batch["gt_bev_valid"] = torch.ones_like(batch["gt_bev_valid"])
    losses = model(batch)
    assert losses["lidar_map"] > 0 and "lidar_map" not in plain.train()(batch)
    losses["lidar_map"].backward()
    assert sum(p.grad.abs().sum() for p in model.lidar_map.parameters()) > 0
    assert sum(p.grad.abs().sum() for p in model.lidar_encoder.parameters() if p.grad is not None) > 0
    for part in (model.neck, model.head, model.camera_encoder):  # nothing after the fusion, nothing of the cameras
        assert all(p.grad is None for p in part.parameters())
    no_lidar = dict(batch, lidar_mask=torch.zeros_like(batch["lidar_mask"]))
    assert model(no_lidar)["lidar_map"] == 0  # nothing to learn from a frame without LiDAR

    model.eval()
    before = model.predict(batch)[0]["bev_probs"]
    with torch.no_grad():
        for p in model.lidar_map.parameters():
            p.add_(1.0)
    assert torch.equal(model.predict(batch)[0]["bev_probs"], before)  # not used at inference


def test_a_model_without_lidar_or_map_refuses_it():
    with pytest.raises(ValueError, match="model.lidar_map_weight in .*tiny_camera.py: needs model.lidar"):
        build_model(load_config(REPO / "configs" / "tiny_camera.py", ["model.lidar_map_weight=1.0"]).model)
    with pytest.raises(ValueError, match="model.lidar_map_weight in .*tiny_det.py: needs model.lidar and the 'map'"):
        build_model(load_config(REPO / "configs" / "tiny_det.py", ["model.lidar_map_weight=1.0"]).model)
