"""Camera branch: LSS lift geometry with a real nuScenes calibration, LiDAR depth map, encoder behaviour."""

import pickle

import numpy as np
import pytest
import torch

from perception.geometry import invert
from perception.models.camera.encoder import CameraEncoder
from perception.models.camera.lss import DepthBins, bev_pool, frustum_to_lidar, lidar_depth_map, make_frustum

LEGACY_PKL = "mmdetection3d/branch-1.0_47285b3f/tests/data/nuscenes/nus_info.pkl"
SWEEP_BIN = ("mmdetection3d/tests/data/nuscenes/sweeps/LIDAR_TOP/"
             "n008-2018-09-18-12-07-26-0400__LIDAR_TOP__1537287083900561.pcd.bin")
RANGE = [-54.0, -54.0, -5.0, 54.0, 54.0, 3.0]
# Image augmentation P: resize 1600x900 by 0.44 then crop 140 rows from the top -> 704 x 256.
P = np.array([[0.44, 0.0, 0.0], [0.0, 0.44, -140.0], [0.0, 0.0, 1.0]])


def _cam_front(real_dir):
    """Augmented intrinsics ``P @ K`` and ``lidar2cam = inv(sensor2lidar)`` of the real CAM_FRONT (float64)."""
    with open(real_dir / LEGACY_PKL, "rb") as f:
        cam = pickle.load(f)["infos"][0]["cams"]["CAM_FRONT"]
    sensor2lidar = np.eye(4)
    sensor2lidar[:3, :3] = cam["sensor2lidar_rotation"]
    sensor2lidar[:3, 3] = cam["sensor2lidar_translation"]
    return P @ cam["cam_intrinsic"], invert(sensor2lidar), sensor2lidar


def _as_batch(intrinsics, lidar2cam):
    return (torch.tensor(intrinsics, dtype=torch.float32)[None, None],
            torch.tensor(lidar2cam, dtype=torch.float32)[None, None])


def test_lifted_feature_lands_in_the_bev_cell_of_its_lidar_point(real_dir):
    K, lidar2cam, sensor2lidar = _cam_front(real_dir)
    stride, (h, w) = 8, (32, 88)
    bins = DepthBins(1.0, 60.0, 0.5)
    cell = 0.6
    for row, col, k in [(15, 40, 20), (12, 5, 77), (10, 80, 3)]:
        u, v, d = col * stride + 3.5, row * stride + 3.5, 1.0 + (k + 0.5) * 0.5
        # The LiDAR point that projects to (u, v) at depth d, from sensor2lidar directly (no inverse).
        p = (sensor2lidar @ np.r_[d * np.linalg.solve(K, [u, v, 1.0]), 1.0])[:3]
        assert RANGE[2] < p[2] < RANGE[5]  # inside the pooled z range
        proj = K @ (lidar2cam @ np.r_[p, 1.0])[:3]
        np.testing.assert_allclose([proj[0] / proj[2], proj[1] / proj[2], proj[2]], [u, v, d], atol=1e-6)
        cell_xy = (p[:2] - np.asarray(RANGE[:2])) / cell
        assert np.all(np.abs(cell_xy - np.round(cell_xy)) > 1e-3)  # not on a cell edge
        expected = [0, int(np.floor(cell_xy[0])), int(np.floor(cell_xy[1]))]

        geometry = frustum_to_lidar(make_frustum((h, w), stride, bins.centres()), *_as_batch(K, lidar2cam))
        torch.testing.assert_close(geometry[0, 0, k, row, col].double(), torch.from_numpy(p), atol=1e-4, rtol=0)
        depth = torch.zeros(1, 1, bins.num_bins, h, w)
        depth[0, 0, k, row, col] = 1.0  # all depth mass in bin k at this pixel only
        context = torch.ones(1, 1, 4, h, w)
        bev = bev_pool(depth, context, geometry, torch.ones(1, 1, dtype=torch.bool), RANGE, cell, (180, 180))
        assert torch.nonzero(bev.sum(1)).tolist() == [expected]  # x-first (b, ix, iy)
        assert torch.allclose(bev.sum(), torch.tensor(4.0))
        masked = bev_pool(depth, context, geometry, torch.zeros(1, 1, dtype=torch.bool), RANGE, cell, (180, 180))
        assert not masked.any()  # a masked camera contributes nothing


def test_lidar_depth_map_matches_numpy_projection(real_dir):
    K, lidar2cam, sensor2lidar = _cam_front(real_dir)
    stride, (h, w) = 8, (32, 88)
    real = np.fromfile(real_dir / SWEEP_BIN, dtype=np.float32).reshape(-1, 5)
    # Add points with a known projection: feature cell (row 12, col 30) at 7.3 m, and a farther one behind it.
    u, v = 30 * stride + 1.0, 12 * stride + 6.0
    known = [(sensor2lidar @ np.r_[d * np.linalg.solve(K, [u, v, 1.0]), 1.0])[:3] for d in (7.3, 20.0)]
    extra = np.concatenate([np.stack(known), np.zeros((2, 2))], 1).astype(np.float32)
    points = torch.from_numpy(np.concatenate([real, extra]))
    lidar2img = np.eye(4)
    lidar2img[:3, :3] = K
    lidar2img = lidar2img @ lidar2cam
    depth = lidar_depth_map([points], torch.tensor([True]), torch.tensor(lidar2img, dtype=torch.float32)[None, None],
                            torch.ones(1, 1, dtype=torch.bool), (h, w), stride)
    assert depth.shape == (1, 1, h, w)
    assert depth[0, 0, 12, 30].item() == pytest.approx(7.3, abs=1e-4)  # nearest of the two
    reference = np.zeros((h, w))
    proj = (lidar2img @ np.c_[points[:, :3].numpy().astype(np.float64), np.ones(len(points))].T).T
    for x, y, z, _ in proj:
        if z <= 1e-3:
            continue
        col, row = int(np.floor((x / z + 0.5) / stride)), int(np.floor((y / z + 0.5) / stride))
        if 0 <= row < h and 0 <= col < w and (reference[row, col] == 0 or z < reference[row, col]):
            reference[row, col] = z
    assert (reference > 0).sum() >= 1  # the known points; the real points must stay out (or match) too
    np.testing.assert_allclose(depth[0, 0].numpy(), reference, atol=1e-4)
    off = lidar_depth_map([points], torch.tensor([False]), torch.tensor(lidar2img, dtype=torch.float32)[None, None],
                          torch.ones(1, 1, dtype=torch.bool), (h, w), stride)
    assert not off.any()


def _tiny_setup(batch=2, cams=2):
    torch.manual_seed(0)
    encoder = CameraEncoder((64, 128), [-16.0, -16.0, -5.0, 16.0, 16.0, 3.0], 1.0, fpn_channels=32,
                            context_channels=16, depth_bins=(1.0, 25.0, 1.0), bev_pool_factor=2)
    # Cameras looking along LiDAR +y and -y (camera z forward, y down).
    K = torch.tensor([[60.0, 0.0, 64.0], [0.0, 60.0, 32.0], [0.0, 0.0, 1.0]]).expand(batch, cams, 3, 3).clone()
    lidar2cam = torch.eye(4).expand(batch, cams, 4, 4).clone()
    lidar2cam[:, 0, :3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    lidar2cam[:, 1, :3, :3] = torch.tensor([[-1.0, 0, 0], [0, 0, -1], [0, -1, 0]])
    images = torch.randn(batch, cams, 3, 64, 128)
    gen = torch.Generator().manual_seed(1)
    points = [torch.cat([torch.rand(3000, 3, generator=gen) * torch.tensor([30.0, 30, 3]) - torch.tensor([15.0, 15, 2]),
                         torch.zeros(3000, 2)], 1) for _ in range(batch)]
    return encoder, images, K, lidar2cam, points


def test_camera_encoder_forward_backward_and_depth_loss():
    encoder, images, K, lidar2cam, points = _tiny_setup()
    cam_mask = torch.tensor([[True, True], [True, False]])
    bev, aux = encoder(images, cam_mask, K, lidar2cam, points, torch.tensor([True, True]))
    assert bev.shape == (2, encoder.out_channels, 32, 32) and torch.isfinite(bev).all()
    assert aux["depth_logits"].shape == (2, 2, 24, 8, 16)
    assert (aux["depth_target"] >= 0).sum() > 10 and not (aux["depth_target"][1, 1] >= 0).any()
    loss = encoder.depth_loss(aux)
    assert loss.item() > 0
    (bev.mean() + loss).backward()
    assert encoder.backbone.stem[0].weight.grad.abs().sum() > 0
    assert encoder.depth_encoder[0][0].weight.grad.abs().sum() > 0
    _, aux = encoder(images, cam_mask, K, lidar2cam, points, torch.tensor([False, False]))
    assert encoder.depth_loss(aux).item() == 0.0  # no LiDAR -> no depth supervision
    _, aux = encoder(images, cam_mask, K, lidar2cam)
    assert "depth_target" not in aux and encoder.depth_loss(aux).item() == 0.0


def test_masked_camera_does_not_contribute_and_geometry_is_cached():
    encoder, images, K, lidar2cam, points = _tiny_setup()
    encoder.eval()
    cam_mask = torch.tensor([[True, False], [True, True]])
    with torch.no_grad():
        ref, _ = encoder(images, cam_mask, K, lidar2cam, points)
        other = images.clone()
        other[0, 1] = torch.randn(3, 64, 128)
        changed, _ = encoder(other, cam_mask, K, lidar2cam, points)
        torch.testing.assert_close(changed, ref, rtol=0, atol=0)
        other[0, 0] = torch.randn(3, 64, 128)
        assert not torch.allclose(encoder(other, cam_mask, K, lidar2cam, points)[0][0], ref[0])
        none, _ = encoder(images, torch.zeros(2, 2, dtype=torch.bool), K, lidar2cam, points)
    assert torch.isfinite(none).all()
    first = encoder.geometry(K, lidar2cam)
    assert encoder.geometry(K.clone(), lidar2cam.clone()) is first  # unchanged calibration: cached
    moved = lidar2cam.clone()
    moved[..., 0, 3] += 1.0
    assert encoder.geometry(K, moved) is not first


def test_camera_encoder_bad_inputs_raise():
    encoder, images, K, lidar2cam, _ = _tiny_setup()
    with pytest.raises(ValueError, match="images"):
        encoder(images[..., :32], torch.ones(2, 2, dtype=torch.bool), K, lidar2cam)
    with pytest.raises(ValueError, match="lidar2cam"):
        encoder(images, torch.ones(2, 2, dtype=torch.bool), K, lidar2cam[:, :1])
    with pytest.raises((ValueError, RuntimeError), match="not_a_real_model"):
        CameraEncoder((64, 128), [-16.0, -16.0, -5.0, 16.0, 16.0, 3.0], 1.0, backbone="not_a_real_model")


def test_full_published_camera_config_shape():
    torch.manual_seed(0)
    encoder = CameraEncoder((256, 704), RANGE, 0.6, fpn_channels=256, context_channels=80, bev_pool_factor=2).eval()
    K = torch.tensor([[560.0, 0.0, 352.0], [0.0, 560.0, 128.0], [0.0, 0.0, 1.0]]).expand(1, 6, 3, 3)
    lidar2cam = torch.eye(4).expand(1, 6, 4, 4).clone()
    lidar2cam[..., :3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    points = [torch.cat([torch.rand(500, 3) * 40 - 20, torch.zeros(500, 2)], 1)]
    with torch.no_grad():
        bev, aux = encoder(torch.randn(1, 6, 3, 256, 704), torch.ones(1, 6, dtype=torch.bool), K, lidar2cam, points)
    assert bev.shape == (1, 80, 180, 180) and aux["depth_logits"].shape == (1, 6, 118, 32, 88)
    assert torch.isfinite(bev).all()


def test_timm_backbone_by_name_feeds_the_camera_encoder():
    """Any timm model with ``features_only`` serves as the image backbone (here a small MobileNetV3)."""
    from perception.models.camera.backbone import ImageBackbone

    backbone = ImageBackbone("mobilenetv3_small_050")
    feats = backbone(torch.zeros(1, 3, 64, 96))
    assert set(feats) >= {4, 8, 16, 32}
    for stride, f in feats.items():
        assert f.shape[-2:] == (64 // stride, 96 // stride) and f.shape[1] == backbone.channels[stride]
    enc = CameraEncoder(image_size=(64, 96), point_cloud_range=(-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), bev_cell=1.6,
                        backbone="mobilenetv3_small_050", fpn_channels=16, context_channels=8,
                        depth_bins=(1.0, 30.0, 2.0))
    images = torch.rand(1, 2, 3, 64, 96)
    K = torch.tensor([[50.0, 0, 48], [0, 50.0, 32], [0, 0, 1]]).expand(1, 2, 3, 3)
    bev, _ = enc(images, torch.ones(1, 2, dtype=torch.bool), K, torch.eye(4).expand(1, 2, 4, 4))
    assert bev.shape[:2] == (1, 8) and torch.isfinite(bev).all()


def test_unknown_backbone_name_is_an_error_naming_it():
    from perception.models.camera.backbone import ImageBackbone

    with pytest.raises(ValueError, match="no_such_net"):
        ImageBackbone("no_such_net")


def test_local_weights_path_loads_into_the_backbone(tmp_path):
    import torchvision

    from perception.models.camera.backbone import ImageBackbone

    torch.manual_seed(0)
    src = ImageBackbone("resnet18")
    # a plain torchvision state dict (what a user downloads elsewhere) holding src's weights
    ref = torchvision.models.resnet18()
    ref.conv1, ref.bn1 = src.stem[0], src.stem[1]
    for i, layer in enumerate(src.layers):
        setattr(ref, f"layer{i + 1}", layer)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    loaded = ImageBackbone("resnet18", weights_path=str(path))
    x = torch.rand(1, 3, 64, 64)
    src.eval(), loaded.eval()
    assert torch.allclose(src(x)[32], loaded(x)[32])
    bad = tmp_path / "bad.pth"
    torch.save({"nothing": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="no parameter matches"):
        ImageBackbone("resnet18", weights_path=str(bad))
