"""LiDAR branch: voxelization (torch vs a numpy reference, numba vs torch), pillar scatter layout, encoder."""

import logging

import numpy as np
import pytest
import torch

from perception.models.bev.second import SECONDFPN
from perception.models.lidar.encoder import LidarEncoder
from perception.models.lidar.pillar import PillarFeatureNet, scatter_to_bev
from perception.models.lidar.voxelize import dynamic_voxelize, hard_voxelize, voxel_mean
from perception.models.lidar.voxelize_numba import NUMBA_AVAILABLE, hard_voxelize_numba

RANGE = [-10.0, -10.0, -3.0, 10.0, 10.0, 3.0]


def _points(n, seed, spread=12.0):
    """Points partly outside RANGE (x, y in [-spread, spread], z in [-4, 4]), 5 channels."""
    rng = np.random.default_rng(seed)
    xyz = rng.uniform([-spread, -spread, -4.0], [spread, spread, 4.0], size=(n, 3))
    extra = rng.uniform([0.0, 0.0], [255.0, 0.5], size=(n, 2))
    return torch.from_numpy(np.concatenate([xyz, extra], 1).astype(np.float32))


def _numpy_hard_voxelize(points, pcr, voxel, max_points, max_voxels):
    """Sequential reference: dict of voxel -> list of points, in first-appearance order."""
    pts = points.numpy()
    lower, size = np.asarray(pcr[:3], np.float32), np.asarray(voxel, np.float32)
    shape = np.round((np.asarray(pcr[3:]) - np.asarray(pcr[:3])) / np.asarray(voxel)).astype(int)
    voxels = {}
    for p in pts:
        idx = tuple(np.floor((p[:3] - lower) / size).astype(int))
        if any(i < 0 or i >= n for i, n in zip(idx, shape, strict=True)):
            continue
        if idx not in voxels:
            if len(voxels) >= max_voxels:
                continue
            voxels[idx] = []
        if len(voxels[idx]) < max_points:
            voxels[idx].append(p)
    return voxels


def test_hard_voxelize_matches_numpy_reference():
    points = _points(3000, seed=0)
    voxel, max_points, max_voxels = [2.0, 2.0, 6.0], 5, 60
    voxels, coords, num = hard_voxelize(points, RANGE, voxel, max_points, max_voxels)
    ref = _numpy_hard_voxelize(points, RANGE, voxel, max_points, max_voxels)
    assert len(ref) == 60 and voxels.shape == (60, 5, 5)  # max_voxels binds with 100 possible pillars
    assert [tuple(c) for c in coords.tolist()] == list(ref.keys())
    assert num.tolist() == [len(v) for v in ref.values()]
    assert int(num.max()) == max_points  # max_points per voxel binds too
    for v, ref_points in enumerate(ref.values()):
        np.testing.assert_array_equal(voxels[v, : num[v]].numpy(), np.stack(ref_points))
        assert not voxels[v, num[v] :].any()  # zero padding
        mean = voxels[v, : num[v]].mean(0).numpy()
        np.testing.assert_allclose(mean, np.mean(ref_points, axis=0), rtol=1e-5, atol=1e-5)
    # Every kept point lies inside the range and inside its voxel.
    kept = voxels[torch.arange(5)[None, :] < num[:, None]]
    lower = torch.tensor(RANGE[:3]) + coords.repeat_interleave(num, 0) * torch.tensor(voxel)
    assert ((kept[:, :3] >= lower) & (kept[:, :3] < lower + torch.tensor(voxel))).all()


def test_dynamic_voxelize_and_voxel_mean():
    points = _points(500, seed=1)
    coords = dynamic_voxelize(points, RANGE, [1.0, 1.0, 1.0])
    xyz = points[:, :3].numpy()
    inside = np.all((xyz >= RANGE[:3]) & (xyz < RANGE[3:]), axis=1)
    assert 0 < inside.sum() < len(points)
    assert ((coords >= 0).all(1).numpy() == inside).all()  # out-of-range rows are -1, nothing dropped
    np.testing.assert_array_equal(coords[inside].numpy(),
                                  np.floor(xyz[inside] - np.asarray(RANGE[:3])).astype(np.int64))
    features, voxel_coords, counts = voxel_mean(points, coords)
    for f, c, n in zip(features, voxel_coords, counts, strict=True):
        members = points[(coords == c).all(1)]
        assert len(members) == n
        torch.testing.assert_close(f, members.mean(0))


@pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("voxel,max_points,max_voxels",
                         [([0.5, 0.5, 6.0], 3, 10000), ([1.0, 1.0, 0.5], 2, 50), ([0.2, 0.2, 0.2], 32, 100000)])
def test_numba_equals_torch(voxel, max_points, max_voxels):
    points = _points(4000, seed=2)
    # Points exactly on the range edges and on cell boundaries exercise the float32 floor arithmetic.
    edges = torch.tensor([[-10.0, -10.0, -3.0, 1, 0], [10.0, 9.5, 0.0, 2, 0], [0.5, -0.5, 2.9999, 3, 0],
                          [9.9999, 3.0, -3.0, 4, 0]])
    points = torch.cat([edges, points, edges])
    torch_out = hard_voxelize(points, RANGE, voxel, max_points, max_voxels)
    numba_out = hard_voxelize_numba(points, RANGE, voxel, max_points, max_voxels)
    for a, b in zip(torch_out, numba_out, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_single_point_lights_up_its_bev_cell():
    pillar = [0.5, 0.5, 6.0]
    point = torch.tensor([[3.3, -7.8, 0.2, 40.0, 0.0]])  # ix = floor(13.3 / 0.5) = 26, iy = floor(2.2 / 0.5) = 4
    voxels, coords, num = hard_voxelize(point, RANGE, pillar, 8, 100)
    coords = torch.cat([torch.ones_like(coords[:, :1]), coords], 1)  # batch index 1
    torch.manual_seed(0)
    pfn = PillarFeatureNet(5, 16, RANGE, pillar).eval()
    canvas = scatter_to_bev(pfn(voxels, num, coords), coords, batch_size=2, grid_xy=(40, 40))
    assert canvas.shape == (2, 16, 40, 40)
    lit = torch.nonzero(canvas.abs().sum(1)).tolist()
    assert lit == [[1, 26, 4]]  # sample 1, x-first layout


def _tiny_encoder():
    torch.manual_seed(0)
    return LidarEncoder(
        RANGE, [0.125, 0.125, 0.2], bev_cell=0.625, out_channels=32, pillar_size=0.3125, pillar_channels=16,
        max_points_per_pillar=8, layer_channels=(16, 32), layer_nums=(1, 1),
    )


def test_lidar_encoder_masked_sample_ignores_points_and_backprops():
    encoder = _tiny_encoder()
    assert encoder.out_channels == 32 and encoder.bev_shape == (32, 32)
    points = [_points(2000, seed=3), _points(2000, seed=4)]
    mask = torch.tensor([True, False])
    out = encoder(points, mask)
    assert out.shape == (2, 32, 32, 32) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert encoder.pfn.linear.weight.grad.abs().sum() > 0
    encoder.eval()
    with torch.no_grad():
        ref = encoder(points, mask)
        changed = encoder([points[0], _points(2000, seed=5)], mask)
        torch.testing.assert_close(changed[1], ref[1], rtol=0, atol=0)  # masked sample: points ignored
        changed = encoder([_points(2000, seed=5), points[1]], mask)
        assert not torch.allclose(changed[0], ref[0])  # present sample depends on its points
        empty = encoder(points, torch.tensor([False, False]))
    assert torch.isfinite(empty).all()


def test_lidar_encoder_bad_points_raise():
    encoder = _tiny_encoder()
    with pytest.raises(ValueError, match=r"points\[0\]"):
        encoder([torch.zeros(10, 4)], torch.tensor([True]))
    with pytest.raises(ValueError, match="lidar_mask"):
        encoder([torch.zeros(10, 5)], torch.tensor([True, True]))
    with pytest.raises(ValueError, match="bev_cell"):
        LidarEncoder(RANGE, [0.1, 0.1, 0.2], bev_cell=0.7, pillar_size=0.3)


def test_second_fpn_strides():
    net = SECONDFPN(8, layer_channels=(8, 16), layer_nums=(1, 1), layer_strides=(2, 2), upsample_strides=(1, 2),
                    upsample_channels=(4, 6))
    assert net.out_stride == 2 and net(torch.zeros(1, 8, 16, 24)).shape == (1, 10, 8, 12)
    with pytest.raises(ValueError, match="different strides"):
        SECONDFPN(8, layer_channels=(8, 16), layer_nums=(1, 1), layer_strides=(1, 2), upsample_strides=(1, 1),
                  upsample_channels=(4, 4))
    with pytest.raises(ValueError, match="divisible"):
        net(torch.zeros(1, 8, 10, 24))


def test_full_published_config_builds_and_falls_back_to_pillars(caplog):
    with caplog.at_level(logging.WARNING):
        encoder = LidarEncoder([-54.0, -54.0, -5.0, 54.0, 54.0, 3.0], [0.075, 0.075, 0.2], bev_cell=0.6,
                               backbone="sparse", out_channels=256)
    if encoder.backbone == "pillar":  # no spconv/CUDA here: the documented fallback with a warning
        assert "pillar" in caplog.text
    encoder.eval()
    points = _points(1000, seed=6, spread=60.0)
    with torch.no_grad():
        out = encoder([points], torch.tensor([True]))
    assert out.shape == (1, 256, 180, 180) and torch.isfinite(out).all()
