"""What teaches the fusion model's camera branch to work without LiDAR (issue 17's no-LiDAR row):
``CameraEncoder(lidar_depth_dropout=p)`` (the LiDAR depth input withheld, its target kept, a learned feature for
a camera without depth), ``model.camera_map_weight`` (:class:`BranchMapAux`, a training-only map loss on the
camera BEV before the fusion) and ``model.camera_occ_weight`` (:class:`CameraOccAux`, the same for occupancy);
``model.camera_map_blend``, the camera map head in the map of a frame without LiDAR."""

import math

import pytest
import torch
from torch import nn

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, DEFAULT_OCC_GRID, OCC3D_FREE, OCC_GRIDS
from perception.models import build_model
from perception.models.camera.encoder import CameraEncoder
from perception.models.heads.camera_map_aux import BranchMapAux
from test_models_camera import _tiny_setup
from test_training import REPO, _one_sample_batch


def _encoder(p):
    _, images, K, lidar2cam, points = _tiny_setup()
    torch.manual_seed(0)
    enc = CameraEncoder((64, 128), [-16.0, -16.0, -5.0, 16.0, 16.0, 3.0], 1.0, fpn_channels=32, context_channels=16,
                        depth_bins=(1.0, 25.0, 1.0), bev_pool_factor=2, lidar_depth_dropout=p)
    return enc, images, K, lidar2cam, points


def test_a_camera_without_lidar_depth_gets_the_learned_no_depth_feature():
    enc, images, K, lidar2cam, points = _encoder(0.5)
    cams, has_lidar = torch.ones(2, 2, dtype=torch.bool), torch.tensor([True, False])
    enc.eval()
    with torch.no_grad():
        before, _ = enc(images, cams, K, lidar2cam, points, has_lidar)
        enc.missing_depth.fill_(3.0)
        after, _ = enc(images, cams, K, lidar2cam, points, has_lidar)
    assert torch.equal(after[0], before[0])  # the sample with LiDAR depth: the encoder's output, as before
    assert (after[1] - before[1]).abs().max() > 1e-3  # the one without: the learned feature
    # The training path (encoder on the cameras with depth only) and the eval path (on all, then chosen) agree
    # when the layers normalize alike.
    sparse = torch.rand(4, 1, 8, 16) * 20 * (torch.rand(4, 1, 8, 16) > 0.7)
    sparse[1] = 0
    eval_out = enc.encode_depth(sparse)
    enc.train()
    enc.depth_encoder.eval()
    torch.testing.assert_close(enc.encode_depth(sparse), eval_out)
    assert torch.equal(eval_out[1], enc.missing_depth[0].expand_as(eval_out[1]))


def test_the_depth_encoder_learns_its_statistics_from_real_depth_maps_only():
    enc, images, K, lidar2cam, points = _encoder(1e-9)  # never drawn: only the sample without LiDAR lacks depth
    enc.train()
    first_bn = enc.depth_encoder[0][1]
    enc(images[:1], torch.ones(1, 2, dtype=torch.bool), K[:1], lidar2cam[:1], points[:1], torch.tensor([True]))
    alone = first_bn.running_mean.clone()
    first_bn.reset_running_stats()
    enc(images, torch.ones(2, 2, dtype=torch.bool), K, lidar2cam, points, torch.tensor([True, False]))
    torch.testing.assert_close(first_bn.running_mean, alone)  # the empty maps of sample 1 left out


def test_withheld_depth_input_keeps_its_depth_target():
    enc, images, K, lidar2cam, points = _encoder(0.999)
    enc.train()
    torch.manual_seed(1)
    bev, aux = enc(images, torch.ones(2, 2, dtype=torch.bool), K, lidar2cam, points, torch.tensor([True, True]))
    assert (aux["depth_target"] >= 0).sum() > 10  # supervised by the LiDAR it did not read
    (bev.mean() + enc.depth_loss(aux)).backward()
    assert enc.depth_encoder[0][0].weight.grad is None  # the input was withheld from every camera
    assert enc.missing_depth.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="lidar_depth_dropout"):
        CameraEncoder((64, 128), [-16.0, -16.0, -5.0, 16.0, 16.0, 3.0], 1.0, lidar_depth_dropout=1.0)
    with pytest.raises(ValueError, match="use_lidar_depth"):
        CameraEncoder((64, 128), [-16.0, -16.0, -5.0, 16.0, 16.0, 3.0], 1.0, lidar_depth_dropout=0.2,
                      use_lidar_depth=False)


def _check_camera_alone_loss(model, batch, losses, name, output):
    """The training-only loss ``name`` (module ``model.<name>``) trains its head and the camera branch and nothing
    after the fusion, adds nothing without cameras, and leaves the prediction ``output`` alone."""
    losses[name].backward()
    assert sum(p.grad.abs().sum() for p in getattr(model, name).parameters()) > 0
    assert model.camera_encoder.depth_net[0][0].weight.grad.abs().sum() > 0  # reaches the camera branch
    assert all(p.grad is None for p in model.neck.parameters())  # and nothing after the fusion
    assert all(p.grad is None for p in model.head.parameters())
    no_cams = dict(batch, cam_mask=torch.zeros_like(batch["cam_mask"]))
    assert model(no_cams)[name] == 0  # nothing to learn from a frame without cameras
    model.eval()
    before = model.predict(batch)[0][output]
    with torch.no_grad():
        for p in getattr(model, name).parameters():
            p.add_(1.0)
    assert torch.equal(model.predict(batch)[0][output], before)  # not used at inference


def test_camera_map_logits_follow_the_bev_augmentation():
    """A camera BEV rotated by the augmentation (+90 deg about z) gives the same map logits on the original-frame
    grid as the unrotated one with no augmentation."""
    pcr = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
    head = BranchMapAux(len(BEV_MAP_CLASSES), pcr, weight=1.0)
    head.net = nn.Identity()  # logits = the BEV itself
    n = 64
    plain = torch.rand(1, len(BEV_MAP_CLASSES), n, n)  # (1, 6, X, Y), original LiDAR frame
    ix, iy = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    rotated = torch.empty_like(plain)
    rotated[:, :, n - 1 - iy, ix] = plain[:, :, ix, iy]  # (x, y) -> (-y, x)
    rot = torch.eye(4)[None].clone()
    rot[0, :2, :2] = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    want = head(plain, torch.eye(4)[None])
    assert want.shape == (1, len(BEV_MAP_CLASSES), *BEV_MAP_GRID.shape)
    torch.testing.assert_close(head(rotated, rot), want, atol=1e-5, rtol=0)
    assert (head(rotated, torch.eye(4)[None]) - want).abs().max() > 0.1  # the augmentation matters


def test_camera_map_loss_trains_the_camera_branch_and_leaves_inference_alone(real_dir):
    cfg = load_config(REPO / "configs" / "tiny.py", ["model.camera_map_weight=10.0", "model.map_memory_s=0",
                                                     "model.camera.lidar_depth_dropout=0.5"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    batch = _one_sample_batch(cfg, real_dir)
    batch["gt_bev"] = torch.zeros_like(batch["gt_bev"])
    batch["gt_bev"][:, 0, :100] = 1  # drivable area ahead of the LiDAR (+x)
    batch["gt_bev_valid"] = torch.ones_like(batch["gt_bev_valid"])
    losses = model(batch)
    assert losses["camera_map"] > 0
    _check_camera_alone_loss(model, batch, losses, "camera_map", "bev_probs")
    with pytest.raises(ValueError, match="model.camera_map_weight"):
        build_model(load_config(REPO / "configs" / "tiny_lidar.py", ["model.camera_map_weight=1.0"]).model)


def test_camera_map_blend_takes_the_camera_head_in_only_without_lidar(real_dir):
    """With ``model.camera_map_blend`` w, a frame with cameras and no LiDAR gets the map ``(1 - w) * fused + w *
    sigmoid(camera head)``; a frame with LiDAR, the boxes and the occupancy are the model's as without it."""
    from perception.runtime import Predictor
    from test_occ_prior import _frames  # a real LiDAR sweep + camera, and the same without the points

    options = ["model.camera_map_weight=10.0", "model.map_memory_s=0", "model.score_threshold=0.0",
               "model.occ_prior_fill=None"]
    torch.manual_seed(0)
    plain = build_model(load_config(REPO / "configs" / "tiny.py", [*options, "model.camera_map_blend=0"]).model)
    torch.nn.init.normal_(plain.camera_map.net[-1].weight, std=0.5)  # a camera head whose map differs from the fused
    blend_cfg = load_config(REPO / "configs" / "tiny.py", [*options, "model.camera_map_blend=0.25"])
    blended = build_model(blend_cfg.model)
    blended.load_state_dict(plain.state_dict())
    plain.eval(), blended.eval()
    batch = _one_sample_batch(blend_cfg, real_dir)
    a, b = plain.predict(batch)[0], blended.predict(batch)[0]
    assert torch.equal(b["bev_probs"], a["bev_probs"])  # with LiDAR: the fused head alone
    no_lidar = dict(batch, lidar_mask=torch.zeros_like(batch["lidar_mask"]))
    a, b = plain.predict(no_lidar)[0], blended.predict(no_lidar)[0]
    with torch.no_grad():
        camera = blended.camera_map(blended.encode(no_lidar)[1]["camera_bev"], batch["bev_aug"])[0].sigmoid()
    torch.testing.assert_close(b["bev_probs"], 0.75 * a["bev_probs"] + 0.25 * camera)
    assert (b["bev_probs"] - a["bev_probs"]).abs().max() > 1e-2
    assert torch.equal(b["occ_labels"], a["occ_labels"]) and torch.equal(b["boxes"], a["boxes"])
    # The Predictor's no-LiDAR frame says where its map came from; its frame with LiDAR does not.
    full, without = _frames(real_dir)
    predictor = Predictor(blend_cfg, {"model": blended.state_dict()})
    with pytest.warns(UserWarning, match="no LiDAR points"):
        notes = predictor.predict(without).warnings
    assert "map: 0.25 of it from the camera branch's map head (model.camera_map_blend)" in notes
    assert not [n for n in predictor.predict(full).warnings if n.startswith("map:")]
    # refused: no camera map head (LiDAR-only; the loss off), a weight outside [0, 1]
    for config, blend_options in (("tiny_lidar.py", ["model.camera_map_blend=0.5"]),
                                  ("tiny.py", ["model.camera_map_weight=0", "model.camera_map_blend=0.5"]),
                                  ("tiny.py", ["model.camera_map_blend=1.5"])):
        with pytest.raises(ValueError, match="model.camera_map_blend"):
            build_model(load_config(REPO / "configs" / config, blend_options).model)


def _yaw(deg, t=(0.0, 0.0, 0.0)):
    m = torch.eye(4)
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    m[:2, :2] = torch.tensor([[c, -s], [s, c]])
    m[:3, 3] = torch.tensor(t)
    return m


def _occ_batch(cfg, real_dir):
    """A real LiDAR sweep + camera, with an Occ3D label volume (ego frame): the ground layer everywhere, a car
    block at x in [8, 12) m, y in [-4, 0) m, z in [-0.2, 1.4) m; lidar2ego as nuScenes' (LiDAR yawed ~90 deg,
    1 m forward, 1.8 m up) and a BEV augmentation (30 deg, 2 m shift): the loss must find each label where it is."""
    batch = _one_sample_batch(cfg, real_dir)
    grid = OCC_GRIDS[DEFAULT_OCC_GRID]
    nx, ny, nz = grid.shape
    labels = torch.full((1, nx, ny, nz), OCC3D_FREE, dtype=torch.int64)
    labels[..., 2] = 11  # driveable surface at z in [-0.2, 0.2) m
    ix = lambda v: int(round((v - grid.lower[0]) / grid.size[0]))  # noqa: E731
    iy = lambda v: int(round((v - grid.lower[1]) / grid.size[1]))  # noqa: E731
    labels[:, ix(8.0):ix(12.0), iy(-4.0):iy(0.0), 2:6] = 4  # car
    batch.update(gt_occ=labels, gt_occ_mask=torch.ones_like(labels, dtype=torch.bool),
                 gt_occ_valid=torch.tensor([True]), lidar2ego=_yaw(90.0, (1.0, 0.0, 1.8))[None],
                 bev_aug=_yaw(30.0, (2.0, -1.0, 0.0))[None])
    return batch


def test_camera_occ_loss_sees_each_label_at_its_voxel(real_dir):
    """The voxel centres the occupancy task hands the camera loss (augmented LiDAR frame), mapped back through the
    augmentation and lidar2ego, land in the ego-frame voxel whose label they carry: labels and points stay paired
    through the sampling and both frame changes."""
    cfg = load_config(REPO / "configs" / "tiny.py", ["model.camera_occ_weight=5.0", "model.map_memory_s=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    batch = _occ_batch(cfg, real_dir)
    seen = {}
    original = model.camera_occ.forward

    def spy(camera_bev, points):
        seen["points"] = points
        return original(camera_bev, points)

    model.camera_occ.forward = spy
    task_bevs, aux = model.encode(batch)
    outputs = model.head(task_bevs, batch)
    logits, labels, mask = model._camera_occ(aux["camera_bev"], outputs["occ"], batch)
    pts = seen["points"].reshape(-1, 3).double()  # (K, 3) augmented LiDAR frame
    k = pts.shape[0]
    assert k == cfg.model.head.occ.train_voxels and logits.shape == (1, 18, k, 1, 1)
    to_ego = batch["lidar2ego"][0].double() @ torch.linalg.inv(batch["bev_aug"][0].double())
    ego = pts @ to_ego[:3, :3].T + to_ego[:3, 3]  # (K, 3) ego frame, metres
    grid = OCC_GRIDS[DEFAULT_OCC_GRID]
    idx = ((ego - torch.tensor(grid.lower, dtype=torch.float64)) / torch.tensor(grid.size, dtype=torch.float64))
    idx = idx.floor().long()  # (K, 3) voxel of each centre
    want = batch["gt_occ"][0][idx[:, 0], idx[:, 1], idx[:, 2]]  # (K,)
    assert torch.equal(labels.reshape(-1), want)
    assert (want == 4).sum() > 100  # half the draws are occupied voxels: the car block is among them
    assert bool(mask.all())


def test_camera_occ_loss_trains_the_camera_branch_and_leaves_inference_alone(real_dir):
    cfg = load_config(REPO / "configs" / "tiny.py", ["model.camera_occ_weight=5.0", "model.map_memory_s=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    batch = _occ_batch(cfg, real_dir)
    losses = model(batch)
    assert "points" not in losses and losses["camera_occ"] > 0
    assert set(losses) >= {"loss_occ_ce", "camera_map"}  # the occupancy task's own loss is still there
    _check_camera_alone_loss(model, batch, losses, "camera_occ", "occ_labels")
    off = build_model(load_config(REPO / "configs" / "tiny.py", ["model.map_memory_s=0"]).model)
    assert off.camera_occ is None and not any(k.startswith("camera_occ") for k in off.state_dict())
    with pytest.raises(ValueError, match="model.camera_occ_weight"):
        build_model(load_config(REPO / "configs" / "tiny_lidar.py", ["model.camera_occ_weight=1.0"]).model)
    with pytest.raises(ValueError, match="model.camera_occ_weight"):
        build_model(load_config(REPO / "configs" / "tiny_det.py", ["model.camera_occ_weight=1.0"]).model)
