"""Metric functions against small hand-computed cases and the real Occ3D labels.npz."""

import math

import numpy as np
import pytest

from perception.constants import OCC3D_CLASSES, OCC3D_FREE
from perception.data.openocc_labels import load_openocc_label
from perception.eval.bev_iou import BevIou
from perception.eval.occ_miou import OccMiou
from perception.eval.openocc import OpenOccMetric
from perception.eval.ray_iou import RayIou, cast_rays, lidar_ray_directions, sparseocc_origins

CAR, TRUCK = OCC3D_CLASSES.index("car"), OCC3D_CLASSES.index("truck")


def _real_occ(real_dir):
    path = real_dir / "occ3d_cvpr2023_challenge/data/29796060110c4163b07f06eff4af0753/labels.npz"
    with np.load(path) as d:
        return d["semantics"], d["mask_camera"]


def test_bev_iou_hand_case_best_threshold_and_empty_class():
    gt = np.zeros((6, 200, 200), np.float32)
    probs = np.zeros((6, 200, 200), np.float32)
    gt[0, :10, :10] = 1  # 100 GT cells of drivable_area
    probs[0, :10, :10] = 0.5  # TP at thresholds <= 0.5
    probs[0, 10:20, :10] = 0.4  # 100 FP at thresholds <= 0.4
    m = BevIou()
    m.update(probs, gt)
    r = m.compute()
    # t=0.35, 0.40: IoU 100/200; t=0.45, 0.50: 100/100; t>=0.55: 0/100
    assert r["per_threshold"]["drivable_area"] == pytest.approx([0.5, 0.5, 1, 1, 0, 0, 0])
    assert r["per_class"]["drivable_area"] == 1.0 and r["best_threshold"]["drivable_area"] == 0.45
    # walkway etc. are absent from GT and prediction: IoU 0 in BEVFusion's mean (its + 1e-7 denominator), so
    # the leaderboard mIoU is (1 + 5 * 0) / 6; the mean over present classes is labelled mIoU_present
    assert r["per_class"]["walkway"] == 0.0 and r["best_threshold"]["walkway"] is None
    assert r["absent_classes"] == [n for n in r["per_class"] if n != "drivable_area"]
    assert r["mIoU"] == pytest.approx(1 / 6) and r["mIoU_present"] == 1.0
    assert "leaderboard" in r["protocol"]["mIoU"]


def test_bev_iou_accumulates_over_split_not_per_sample():
    m = BevIou()
    gt = np.zeros((6, 200, 200), np.float32)
    gt[1, :2, :2] = 1  # 4 cells
    m.update(gt, gt)  # perfect
    m.update(np.zeros_like(gt), gt)  # 4 FN
    assert m.compute()["per_class"]["ped_crossing"] == pytest.approx(4 / 8)  # not mean(1, 0) of two samples


def test_bev_iou_no_predictions_scores_zero():
    gt = np.zeros((6, 200, 200), np.float32)
    gt[:, 5, 5] = 1
    m = BevIou()
    m.update(np.zeros_like(gt), gt)
    assert m.compute()["mIoU"] == 0.0


def test_bev_rejects_wrong_shape():
    with pytest.raises(ValueError, match="bev_probs"):
        BevIou().update(np.zeros((6, 100, 200)), np.zeros((6, 200, 200)))


def test_occ_miou_hand_case_mask_and_absent_classes():
    gt = np.full((200, 200, 16), OCC3D_FREE, np.uint8)
    pred = gt.copy()
    gt[0, 0, :4] = CAR  # 4 car voxels
    pred[0, 0, :2] = CAR  # 2 TP, 2 FN (predicted free)
    pred[1, 0, 0] = CAR  # FP ... but outside the camera mask
    mask = np.zeros_like(gt)
    mask[0, :, :] = 1
    m = OccMiou()
    m.update(pred, gt, mask)
    r = m.compute()
    assert r["per_class"]["car"] == pytest.approx(2 / 4)
    assert math.isnan(r["per_class"]["truck"])  # absent everywhere -> NaN, excluded
    assert r["mIoU"] == pytest.approx(0.5)
    # geometry over ALL voxels: TP 2, FP 1 (outside the mask counts), FN 2
    assert r["geometry_IoU"] == pytest.approx(2 / 5)
    # masked geometry: only x = 0 is in the mask: TP 2, FP 0, FN 2
    assert r["geometry_IoU_camera_mask"] == pytest.approx(2 / 4)


def test_occ_all_free_volumes_give_nan_miou():
    free = np.full((200, 200, 16), OCC3D_FREE, np.uint8)
    m = OccMiou()
    m.update(free, free, np.ones_like(free))
    r = m.compute()
    assert math.isnan(r["mIoU"]) and math.isnan(r["geometry_IoU"]) and math.isnan(r["geometry_IoU_camera_mask"])


def test_real_occ3d_against_itself_and_cars_as_trucks(real_dir):
    sem, mask = _real_occ(real_dir)
    origin = [[0.9858, 0.0, 1.8402]]  # nuScenes LiDAR in the ego frame (SparseOcc's default)
    m, ray = OccMiou(), RayIou()
    m.update(sem, sem, mask)
    ray.update(sem, sem, origin)
    r, rr = m.compute(), ray.compute()
    present = np.unique(np.concatenate([sem[mask.astype(bool)], [OCC3D_FREE]]))[:-1]
    assert all(r["per_class"][OCC3D_CLASSES[c]] == 1.0 for c in present)
    assert r["mIoU"] == 1.0 and r["geometry_IoU"] == 1.0
    assert rr["RayIoU"] == 1.0 and rr["RayIoU@1"] == 1.0
    assert ray.gt_cnt[CAR] > 0  # rays do hit cars in this sample

    bad = sem.copy()
    bad[sem == CAR] = TRUCK
    m2, ray2 = OccMiou(), RayIou()
    m2.update(bad, sem, mask)
    ray2.update(bad, sem, origin)
    r2, rr2 = m2.compute(), ray2.compute()
    assert r2["per_class"]["car"] == 0.0 and r2["per_class"]["truck"] == 0.0
    others = [c for c in present if c not in (CAR, TRUCK)]
    assert others and all(r2["per_class"][OCC3D_CLASSES[c]] == 1.0 for c in others)
    assert r2["geometry_IoU"] == 1.0  # relabelling keeps geometry
    assert rr2["per_class"]["car"] == [0.0, 0.0, 0.0]
    assert rr2["per_class"]["vegetation"] == [1.0, 1.0, 1.0]


def test_cast_rays_depth_to_a_wall():
    vol = np.full((200, 200, 16), OCC3D_FREE, np.uint8)
    vol[150, :, :] = CAR  # wall at x in [20, 20.4) m
    labels, depth = cast_rays(vol, [0.2, 0.2, 2.2], np.array([[1.0, 0, 0], [-1.0, 0, 0]]))
    assert labels.tolist() == [CAR, OCC3D_FREE]
    # SparseOcc's kernel reports where the ray LEAVES the first occupied voxel: x = 20.4, 20.2 m from x = 0.2
    assert depth[0] == pytest.approx(20.2, abs=1e-5)
    assert depth[1] == pytest.approx(40.2, abs=1e-5)  # no hit: where the ray leaves the grid (x = -40)


def test_rayiou_depth_thresholds():
    gt = np.full((200, 200, 16), OCC3D_FREE, np.uint8)
    gt[150, :, :] = CAR  # 20 m ahead
    pred = np.full_like(gt, OCC3D_FREE)
    pred[146, :, :] = CAR  # 1.6 m closer (leaves at 18.6 m instead of 20.2 m): TP at 2 m and 4 m, not at 1 m
    dirs = np.array([[1.0, 0.0, 0.0]])
    ray = RayIou(dirs)
    ray.update(pred, gt, [[0.2, 0.2, 2.2]])
    r = ray.compute()
    assert r["per_class"]["car"] == [0.0, 1.0, 1.0]
    assert r["RayIoU"] == pytest.approx(2 / 3)
    empty = RayIou(dirs)
    empty.update(np.full_like(gt, OCC3D_FREE), gt, [[0.2, 0.2, 2.2]])  # no prediction at all
    assert empty.compute()["RayIoU"] == 0.0


def test_lidar_rays_and_origins():
    dirs = lidar_ray_directions()
    assert dirs.shape[1] == 3 and len(dirs) % 360 == 0
    assert np.allclose(np.linalg.norm(dirs, axis=1), 1.0)
    lidar2ego = np.eye(4)
    lidar2ego[:3, 3] = [1.0, 0.0, 1.8]
    poses = []
    for x in (-50.0, 0.0, 10.0):  # the -50 m frame leaves the +-39 m window
        p = np.eye(4)
        p[0, 3] = x
        poses.append(p)
    o = sparseocc_origins(lidar2ego, poses[1], poses)
    assert o.tolist() == [[1.0, 0.0, 1.8], [11.0, 0.0, 1.8]]


def test_openocc_loader_and_metric(tmp_path):
    sparse = np.array([[0, 1, 2, 4], [3, 4, 5, 0], [1, 1, 1, 16]], np.int64)  # [z, y, x, label]
    path = tmp_path / "lidar_tok.npy"
    np.save(path, sparse)
    shape = (8, 8, 4)
    dense = load_openocc_label(str(path), shape)
    assert dense[2, 1, 0] == 4 and dense[5, 4, 3] == 255 and dense[1, 1, 1] == 16 and dense.sum() == 4 + 255 + 16
    pred = np.where(dense == 255, 0, dense).astype(np.uint8)
    pred[0, 0, 0] = 4  # one FP car
    m = OpenOccMetric(shape)
    m.update(pred, dense)
    r = m.compute()
    assert r["per_class"]["car"] == pytest.approx(1 / 2) and r["per_class"]["vegetation"] == 1.0
    assert r["geometry_IoU"] == pytest.approx(2 / 3)
    # other classes absent -> IoU NaN: the reference's sum / 16 is NaN (explained), the present-class mean 0.75
    assert math.isnan(r["mIoU"]) and r["mIoU_present"] == pytest.approx(0.75)
    assert "NaN" in r["mIoU_note"] and "barrier" in r["absent_classes"] and "car" not in r["absent_classes"]
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="bad.npy"):
        load_openocc_label(str(bad), shape)
