"""The BEV-map head's LiDAR cues (frames and units on a real nuScenes cloud) and its refiner's wiring."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.models.heads.map_lidar_cues import NUM_MAP_CUES, map_cell_cues, map_cues
from perception.models.heads.multitask import MultiTaskHead

REPO = Path(__file__).resolve().parents[1]

SOCC = "surroundocc/tools/generate_occupancy_with_own_data"
DRIVEABLE, CAR = 11, 4  # Occ3D / SurroundOcc class ids of the per-point semantics
PCR = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)


def _real_cloud(real_dir, i=0):
    """A real nuScenes LIDAR_TOP keyframe ``(N, 4)`` x, y, z (m, LiDAR frame), intensity 0-255, and its per-point
    classes."""
    d = real_dir / SOCC
    return torch.from_numpy(np.load(d / f"pc/pc{i}.npy")).float(), np.load(d / f"pc_seman/pc_seman_{i}.npy")[:, 3]


def _cell(xy):
    """The map cell ``(ix, iy)`` of a point ``xy`` (original LiDAR frame, metres): 0.5 m cells from -50 m."""
    return tuple(int(math.floor((v - lo) / 0.5)) for v, lo in zip(xy, BEV_MAP_GRID.lower, strict=True))


def test_cues_on_a_real_cloud_units_and_frame(real_dir):
    """On a real keyframe: the cues land in the map cell under each point (x first), road cells read the ground
    ~1.8 m under the roof-mounted sensor and are flat, car cells span a car's height; the intensity channels are
    the cell's max and mean / 255."""
    pts, cls = _real_cloud(real_dir)
    cues = map_cell_cues(pts, torch.eye(4), BEV_MAP_GRID)  # (5, 200, 200)
    assert cues.shape == (NUM_MAP_CUES, 200, 200)
    ix, iy = _cell(pts[0, :2].tolist())
    same = [j for j in range(len(pts)) if _cell(pts[j, :2].tolist()) == (ix, iy)]
    assert math.isclose(float(cues[0, ix, iy]), math.log1p(len(same)), rel_tol=1e-6)
    assert math.isclose(float(cues[1, ix, iy]), float(pts[same, 3].max()) / 255, rel_tol=1e-5)
    assert math.isclose(float(cues[2, ix, iy]), float(pts[same, 3].mean()) / 255, rel_tol=1e-4)
    assert float(cues[0].sum()) > 0 and torch.count_nonzero(cues[0]) < 200 * 200  # empty cells stay 0

    def cells_of(label):
        mine = np.zeros((200, 200), int)
        total = np.zeros((200, 200), int)
        for (x, y), c in zip(pts[:, :2].tolist(), cls, strict=True):
            ix, iy = _cell((x, y))
            if 0 <= ix < 200 and 0 <= iy < 200:
                total[ix, iy] += 1
                mine[ix, iy] += c == label
        return torch.from_numpy((total >= 3) & (mine == total))

    road, car = cells_of(DRIVEABLE), cells_of(CAR)
    assert road.sum() > 200 and car.sum() > 20
    road_z = 2 * cues[3][road]  # metres, LiDAR frame
    assert -2.2 < float(road_z.median()) < -1.5, "the road lies ~1.8 m under the LiDAR (z up)"
    assert float((4 * cues[4][road]).median()) < 0.15 < float((4 * cues[4][car]).median())


def test_cues_are_binned_in_the_original_frame(real_dir):
    """Points in the augmented frame (rotation, flip, scale, shift: ``bev_aug``) give the cues of the original
    points: the map grid is in the original LiDAR frame, as ``gt_bev``."""
    pts, _ = _real_cloud(real_dir)
    c, s = math.cos(0.6), math.sin(0.6)
    aug = torch.tensor([[c, -s, 0, 0.4], [s, c, 0, -0.3], [0, 0, 1, 0.1], [0, 0, 0, 1]], dtype=torch.float64)
    aug = aug @ torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64))  # a y flip
    aug[:3, :3] *= 1.04
    moved = pts.clone()
    moved[:, :3] = (pts[:, :3].double() @ aug[:3, :3].T + aug[:3, 3]).float()
    want = map_cell_cues(pts, torch.eye(4), BEV_MAP_GRID)
    got = map_cell_cues(moved, aug.float(), BEV_MAP_GRID)
    same = (got[0] == want[0]).float().mean()  # a point within float error of a cell edge may change cell
    assert same > 0.999
    close = torch.isclose(got, want, atol=1e-4).all(0)
    assert close.float().mean() > 0.999


def test_refiner_wiring_no_lidar_and_errors():
    """The refiner starts as the identity, its loss trains it alone, a sample without LiDAR keeps the BEV-only
    logits exactly, and the config refuses the cues without LiDAR or on a strided training grid."""
    torch.manual_seed(0)
    head = MultiTaskHead(("map",), 8, PCR, 6.4, num_layers=1, d_model=16, num_heads=2, ffn_dim=32,
                         map=dict(lidar_cues=True))
    bev = torch.randn(2, 8, 16, 16, requires_grad=True)
    gt = (torch.rand(2, len(BEV_MAP_CLASSES), 200, 200) > 0.7).float()
    points = [torch.cat([torch.rand(3000, 3) * 40 - 20, torch.rand(3000, 2) * 255], 1), torch.zeros(0, 5)]
    batch = {"bev_aug": torch.eye(4)[None].repeat(2, 1, 1), "points": points, "lidar_mask": torch.tensor([True, False]),
             "gt_bev": gt, "gt_bev_valid": torch.tensor([True, True])}
    out = head({"map": bev}, batch)["map"]
    assert torch.equal(out["logits"], out["base_logits"])  # zero-initialised last layer
    losses = head.loss({"map": out}, batch)
    assert set(losses) == {"loss_map", "loss_map_aux", "loss_map_refine"}
    losses["loss_map_refine"].backward()
    assert bev.grad is None  # the refiner's loss reaches no BEV feature
    assert head.map.refiner.net[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        head.map.refiner.net[-1].bias.fill_(1.0)
        out = head({"map": bev}, batch)["map"]
    assert torch.equal(out["logits"][1], out["base_logits"][1])  # no LiDAR: the BEV-only map as it is
    assert not torch.equal(out["logits"][0], out["base_logits"][0])
    cues = map_cues(points, batch["lidar_mask"], batch["bev_aug"], BEV_MAP_GRID)
    assert cues[0].abs().sum() > 0 and cues[1].abs().sum() == 0
    dense = head.dense_inputs(batch, torch.device("cpu"))  # inference: the cues come as an input (ONNX too)
    assert torch.equal(dense["map_cues"], cues)
    with torch.no_grad():
        assert torch.equal(head({"map": bev}, {}, dense=dense)["map"]["logits"], out["logits"])
    with pytest.raises(ValueError, match=r"model\.head\.map\.lidar_cues.*model\.lidar is None"):
        load_config(REPO / "configs" / "tiny_camera.py", ["model.head.map.lidar_cues=True"])
    with pytest.raises(ValueError, match=r"model\.head\.map\.lidar_cues needs model\.head\.map\.train_stride=1"):
        MultiTaskHead(("map",), 8, PCR, 6.4, num_layers=1, d_model=16, num_heads=2, ffn_dim=32,
                      map=dict(lidar_cues=True, train_stride=2))
