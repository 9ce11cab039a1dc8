"""BEV map memory (perception.runtime.map_memory): the warp on real nuScenes poses, the running-mean arithmetic,
the resets, and the Predictor's use of it (eval frames in order, a new memory per scene)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.constants import BEV_MAP_GRID
from perception.geometry import make_transform
from perception.models import build_model
from perception.runtime import Frame, Predictor
from perception.runtime.map_memory import MapMemory, warp_bev

SOCC = "surroundocc/tools/generate_occupancy_with_own_data"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.py"
STATIC = (13, 15, 16)  # sidewalk, manmade, vegetation: lidarseg classes that do not move


def _socc(real_dir, i):
    """Frame ``i`` of the real SurroundOcc sequence: static points (LiDAR frame) and lidar2global."""
    d = real_dir / SOCC
    pts = np.load(d / f"pc_seman/pc_seman_{i}.npy")
    cs = np.load(d / f"calib/lidar_calibrated_sensor{i}.npy", allow_pickle=True).item()
    pose = np.load(d / f"pose/lidar_ego_pose{i}.npy", allow_pickle=True).item()
    lidar2global = make_transform(pose["rotation"], pose["translation"]) @ make_transform(cs["rotation"],
                                                                                         cs["translation"])
    return pts[np.isin(pts[:, 3].astype(int), STATIC), :3], lidar2global


def _raster(points):
    """``(1, NX, NY)`` float32: 1 where a point falls in a BEV_MAP_GRID cell."""
    out = np.zeros((1,) + BEV_MAP_GRID.shape, np.float32)
    ij = np.floor((points[:, :2] - np.asarray(BEV_MAP_GRID.lower)) / np.asarray(BEV_MAP_GRID.size)).astype(int)
    keep = ((ij >= 0) & (ij < np.asarray(BEV_MAP_GRID.shape))).all(axis=1)
    out[0, ij[keep, 0], ij[keep, 1]] = 1.0
    return out


def _iou(a, b, where):
    a, b = a[0][where] > 0.5, b[0][where] > 0.5
    return (a & b).sum() / max((a | b).sum(), 1)


def test_warp_moves_a_real_static_scene_onto_the_later_frame(real_dir):
    """Frames 0 and 4 of a real drive (2 s apart, the ego moved): the walls, vegetation and sidewalks seen in
    frame 0, warped through both nuScenes poses, land on those seen in frame 4; unwarped, or warped the wrong
    way round, they do not."""
    pts0, l2g0 = _socc(real_dir, 0)
    pts4, l2g4 = _socc(real_dir, 4)
    moved = np.linalg.norm(l2g4[:2, 3] - l2g0[:2, 3])
    assert moved > 3.0, f"the fixture's ego moved only {moved:.1f} m"
    r0, r4 = _raster(pts0), _raster(pts4)
    warped, inside = warp_bev(r0, np.linalg.inv(l2g0) @ l2g4)
    wrong, inside_wrong = warp_bev(r0, np.linalg.inv(l2g4) @ l2g0)
    right_iou = _iou(warped, r4, inside)
    assert right_iou > 1.5 * _iou(r0, r4, inside) and right_iou > 1.5 * _iou(wrong, r4, inside_wrong)
    # the cells that came from outside frame 0's grid are the ones the move brought in: as many as it moved
    assert 0 < (~inside).sum() < 2 * (moved / 0.5 + 2) * BEV_MAP_GRID.shape[0]


def test_warp_one_cell_step_and_identity():
    values = np.zeros((2,) + BEV_MAP_GRID.shape, np.float32)
    values[:, 120, 80] = 1.0
    same, inside = warp_bev(values, np.eye(4))
    np.testing.assert_allclose(same, values, atol=1e-6)
    assert inside.all()
    # the later frame's origin is 0.5 m (one cell) further along +x of the earlier one: a static cell's
    # index along x drops by one
    b2a = np.eye(4)
    b2a[0, 3] = 0.5
    moved, inside = warp_bev(values, b2a)
    assert moved[0, 119, 80] == pytest.approx(1.0) and moved[0, 120, 80] == pytest.approx(0.0)
    assert not inside[-1].any() and inside[:-1].all()  # the last row along x was never seen
    # a 90-degree turn of the later frame (its x axis along the earlier y): (x, y) -> (-y, x)
    turn = np.eye(4)
    turn[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
    rot, _ = warp_bev(values, turn)
    i, j = np.unravel_index(np.argmax(rot[0]), rot[0].shape)
    # the cell at (x, y) = (10.25, -9.75) m in the earlier frame is at (x', y') = (-9.75, -10.25) m in the later
    assert (i, j) == (80, 79)


def test_memory_is_the_faded_running_mean():
    memory = MapMemory(time_constant_s=1.0)
    p1 = np.full((6,) + BEV_MAP_GRID.shape, 0.2, np.float32)
    p2 = np.full_like(p1, 0.8)
    out1, note1 = memory.update(p1, np.eye(4), 1_000_000)
    np.testing.assert_array_equal(out1, p1)
    out2, note2 = memory.update(p2, np.eye(4), 1_500_000)
    decay = math.exp(-0.5)
    np.testing.assert_allclose(out2, (decay * 0.2 + 0.8) / (decay + 1), rtol=1e-5)
    assert note1 is None and note2 is None
    out3, _ = memory.update(p1, np.eye(4), 2_000_000)  # weight behind the memory: decay * (decay + 1)
    w = decay * (decay + 1)
    np.testing.assert_allclose(out3, (w * out2[0, 0, 0] + 0.2) / (w + 1), rtol=1e-5)


@pytest.mark.parametrize("pose, stamp, why", [(None, 1_500_000, "no ego pose"), ("eye", 900_000, "-0.10 s"),
                                              ("eye", 4_000_000, "3.00 s")])
def test_memory_starts_over_and_says_why(pose, stamp, why):
    memory = MapMemory(time_constant_s=1.0, max_gap_s=2.0)
    memory.update(np.full((6,) + BEV_MAP_GRID.shape, 0.9, np.float32), np.eye(4), 1_000_000)
    p = np.full((6,) + BEV_MAP_GRID.shape, 0.1, np.float32)
    out, note = memory.update(p, None if pose is None else np.eye(4), stamp)
    np.testing.assert_array_equal(out, p)
    assert why in note
    assert MapMemory(1.0).update(p, None, 0)[1] is None  # nothing to forget: nothing said
    with pytest.raises(ValueError, match="map_memory_s"):
        MapMemory(0.0)


def _live(points, pose, stamp_us):
    return Frame(points=points, cameras={}, lidar2ego=np.eye(4), ego2world=pose, timestamp=stamp_us)


def test_predictor_fuses_live_frames_through_the_pose(real_dir, tmp_path):
    """Two live frames of a random-weight `tiny` with the memory on: the second map equals the memory's
    arithmetic on the two single-frame maps (the memory-off Predictor's), moved through ``Frame.ego2world``; the
    warm-up frame before them leaves nothing behind."""
    from perception.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = load_config(CONFIG, ["model.map_memory_s=4.0"])
    ckpt = tmp_path / "m.pth"
    save_checkpoint(ckpt, {"model": build_model(cfg.model).state_dict()})
    with_memory = Predictor(cfg, ckpt)
    alone = Predictor(load_config(CONFIG, ["model.map_memory_s=0"]), ckpt)
    assert alone.map_memory is None and with_memory.map_memory is not None
    pts0, l2g0 = _socc(real_dir, 0)
    pts1, l2g1 = _socc(real_dir, 1)
    frames = [_live(np.c_[pts0, np.zeros(len(pts0))], l2g0, 10**6),
              _live(np.c_[pts1, np.zeros(len(pts1))], l2g1, 10**6 + 500_000)]
    singles = [alone.predict(f).bev_probs for f in frames]
    assert with_memory.warm_up() > 0  # a synthetic frame through the model (the node's start), then forgotten
    fused = [with_memory.predict(f).bev_probs for f in frames]
    np.testing.assert_allclose(fused[0], singles[0], atol=1e-6)
    reference = MapMemory(4.0)
    reference.update(singles[0], l2g0, 10**6)
    expected, _ = reference.update(singles[1], l2g1, 10**6 + 500_000)
    np.testing.assert_allclose(fused[1], expected, atol=1e-5)
    assert np.abs(fused[1] - singles[1]).max() > 1e-3  # the memory did change the map
    with_memory.reset_memory()
    np.testing.assert_allclose(with_memory.predict(frames[1]).bev_probs, singles[1], atol=1e-6)
    with pytest.raises(ValueError, match="Frame.ego2world"):
        with_memory.predict(_live(frames[0].points, np.full((4, 4), np.nan), 2 * 10**6))
