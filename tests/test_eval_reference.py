"""Each metric against the arithmetic of the reference implementation it follows, written out here
independently of ``perception.eval`` (plain Python / numpy / torch, no numba), plus hand-worked cases.

References (see docs/architecture.md, "Evaluation metrics"):
- RayIoU: MCG-NJU/SparseOcc ``loaders/ray_metrics.py`` (process_one_sample, calc_rayiou) and the TEST phase of
  ``lib/dvr/dvr.cu`` (render_forward_cuda_kernel).
- BEV map IoU: mit-han-lab/bevfusion ``mmdet3d/datasets/nuscenes_dataset.py`` ``evaluate_map``.
- Occ3D: the CVPR 2023 challenge's ``Metric_mIoU`` (CVPR2023-3D-Occupancy-Prediction
  ``projects/mmdet3d_plugin/datasets/occ_metrics.py``, use_image_mask=True).
- OpenOccupancy: JeffWang987/OpenOccupancy ``LoadOccupancy`` + ``nb_process_label`` (loading.py),
  ``OccNet.evaluation_semantic`` (occnet.py), ``cm_to_ious`` / ``format_SSC_results`` (formating.py).
"""

import math
import sys

import numpy as np
import pytest

from perception.constants import BEV_MAP_CLASSES, OCC3D_CLASSES, OCC3D_FREE, OPENOCC_CLASSES
from perception.data.openocc_labels import load_openocc_label
from perception.eval.bev_iou import BevIou
from perception.eval.occ_miou import OccMiou
from perception.eval.openocc import OpenOccMetric
from perception.eval.ray_iou import RayIou, cast_rays, lidar_ray_directions

FREE = OCC3D_FREE
CAR, TRUCK, BUS = (OCC3D_CLASSES.index(n) for n in ("car", "truck", "bus"))


# ---------------------------------------------------------------------------------------------------------
# RayIoU: the reference pipeline, transcribed
# ---------------------------------------------------------------------------------------------------------

def _kernel_ray(sigma_zyx, o, e):
    """dvr.cu render_forward_cuda_kernel, TEST phase, one ray: ``sigma_zyx`` [z][y][x] occupancy, ``o``/``e``
    origin / end point in voxel units (float32 values). Returns (distance in voxels, (x, y, z)) as written to
    pred_dist / coord_index (distance -1 and (0, 0, 0) when no voxel of the grid is crossed)."""
    zs, ys, xs = sigma_zyx.shape
    xo, yo, zo = (float(v) for v in o)
    rx, ry, rz = float(e[0]) - xo, float(e[1]) - yo, float(e[2]) - zo
    length = math.sqrt(rx * rx + ry * ry + rz * rz)
    dx, dy, dz = rx / length, ry / length, rz / length
    step_x, step_y, step_z = (1 if v >= 0 else -1 for v in (dx, dy, dz))
    vx, vy, vz = int(xo), int(yo), int(zo)
    big = sys.float_info.max
    t_x = (vx + (0 if step_x < 0 else 1) - xo) / dx if dx != 0 else big
    t_y = (vy + (0 if step_y < 0 else 1) - yo) / dy if dy != 0 else big
    t_z = (vz + (0 if step_z < 0 else 1) - zo) / dz if dz != 0 else big
    dt_x = step_x / dx if dx != 0 else big
    dt_y = step_y / dy if dy != 0 else big
    dt_z = step_z / dz if dz != 0 else big
    path, leave = [], []  # voxels inside the grid and the distance at which the ray leaves each
    n_steps, entered = 0, False
    while True:
        inside = 0 <= vx < xs and 0 <= vy < ys and 0 <= vz < zs
        if inside:
            entered = True
            path.append((vx, vy, vz))
        elif entered:
            break
        if t_x < t_y and t_x < t_z:
            d, vx, t_x = t_x, vx + step_x, t_x + dt_x
        elif not t_x < t_y and t_y < t_z:
            d, vy, t_y = t_y, vy + step_y, t_y + dt_y
        else:
            d, vz, t_z = t_z, vz + step_z, t_z + dt_z
        if inside:
            leave.append(d)
        n_steps += 1
        if n_steps > 1000:
            break
    if not path:
        return -1.0, (0, 0, 0)
    for (x, y, z), d in zip(path, leave, strict=True):
        if sigma_zyx[z, y, x] > 0.5:
            return d, (x, y, z)
    return leave[-1], path[-1]


def _process_one_sample(sem, rays32, origins):
    """ray_metrics.process_one_sample: rows (label, depth) float32 for each origin's rays."""
    sigma = np.where(sem == FREE, 0.0, 1.0).astype(np.float32).transpose(2, 1, 0)  # [z][y][x]
    offset = np.array([-40.0, -40.0, -1.0], np.float32).astype(np.float64)
    scaler = np.float64(np.float32(0.4))
    rows = []
    for origin in np.asarray(origins, np.float64):
        o = ((origin - offset) / scaler).astype(np.float32)
        ends = (((rays32.astype(np.float64) + origin) - offset) / scaler).astype(np.float32)
        for e in ends:
            d, (x, y, z) = _kernel_ray(sigma, o, e)
            depth = np.float32(d) * np.float32(0.4)
            rows.append((np.float32(sem[x, y, z]), depth))
    return np.array(rows, np.float32).reshape(-1, 2)


def _reference_rayiou(samples, rays32):
    """main_rayiou + calc_rayiou over ``samples`` = [(pred, gt, origins)]: (iou (3, 17), RayIoU, [@1, @2, @4])."""
    names = len(OCC3D_CLASSES)
    gt_cnt, pred_cnt, tp_cnt = np.zeros(names), np.zeros(names), np.zeros((3, names))
    for pred, gt, origins in samples:
        p, g = _process_one_sample(pred, rays32, origins), _process_one_sample(gt, rays32, origins)
        keep = g[:, 0].astype(np.int32) != FREE
        p, g = p[keep], g[keep]
        err = np.abs(p[:, 1] - g[:, 1])
        for j, thr in enumerate((1, 2, 4)):
            for c in range(names):
                in_p, in_g = p[:, 0] == c, g[:, 0] == c
                if j == 0:
                    gt_cnt[c] += in_g.sum()
                    pred_cnt[c] += in_p.sum()
                tp_cnt[j, c] += (in_p & in_g & (err < thr)).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.stack([(tp_cnt[j] / (gt_cnt + pred_cnt - tp_cnt[j]))[:-1] for j in range(3)])
    return iou, np.nanmean(iou), [np.nanmean(iou[j]) for j in range(3)]


def _scene(rng, n_boxes=25):
    """A street-like Occ3D volume: driveable ground, a building wall, vegetation, random boxes."""
    vol = np.full((200, 200, 16), FREE, np.uint8)
    vol[:, :, 1] = OCC3D_CLASSES.index("driveable_surface")
    vol[:, :30, 1:6] = OCC3D_CLASSES.index("manmade")
    vol[160:175, 120:, 2:9] = OCC3D_CLASSES.index("vegetation")
    for _ in range(n_boxes):
        x, y = rng.integers(10, 190, 2)
        lx, ly, h = rng.integers(2, 12), rng.integers(2, 7), rng.integers(2, 6)
        vol[x:x + lx, y:y + ly, 2:2 + h] = rng.choice([CAR, TRUCK, BUS, 7, 9])
    return vol


def _perturbed(rng, vol):
    """A prediction: the scene shifted by one voxel here and there, some relabelling and speckle."""
    pred = vol.copy()
    pred[:, :, 1:] = np.roll(vol[:, :, 1:], rng.integers(-1, 2), axis=int(rng.integers(0, 2)))
    pred[(vol == CAR) & (rng.random(vol.shape) < 0.3)] = TRUCK
    speckle = rng.random(vol.shape) < 0.002
    pred[speckle] = rng.integers(0, 18, int(speckle.sum()))
    return pred


def test_rayiou_hand_worked_rays():
    """Rays worked out by hand from the kernel's arithmetic (origin at a voxel centre, 0.4 m voxels)."""
    empty = np.full((200, 200, 16), FREE, np.uint8)
    centre = [0.2, 0.2, 2.4]  # voxel (100, 100, 8) centre: 100.5, 100.5, 8.5 in voxel units
    s = np.float32(math.sqrt(0.5))

    # along +x: voxel 100 + k is left at t = k + 0.5 voxels; a wall at 150 is left at 50.5 -> 20.2 m
    vol = empty.copy()
    vol[150] = CAR
    labels, depth = cast_rays(vol, centre, [[1, 0, 0]])
    assert labels.tolist() == [CAR] and depth[0] == pytest.approx(50.5 * 0.4, abs=1e-5)

    # direction (0.6, 0.8): tMaxX = 0.5 / 0.6, tMaxY = 0.5 / 0.8, tDelta = 1 / 0.6, 1 / 0.8. Crossings:
    # Y 0.625 -> (100, 101), X 0.833 -> (101, 101), Y 1.875 -> (101, 102), X 2.5 -> (102, 102), ...
    # (101, 102) is entered at 1.875 and left at 2.5 voxels = 1.0 m; (102, 101) is never visited.
    vol = empty.copy()
    vol[102, 101, 8] = TRUCK
    vol[101, 102, 8] = CAR
    vol[110, 113, 8] = BUS  # 10/0.6 - ... : beyond the car, unseen
    labels, depth = cast_rays(vol, centre, [[0.6, 0.8, 0]])
    assert labels.tolist() == [CAR] and depth[0] == pytest.approx(2.5 * 0.4, abs=1e-5)

    # through the corner: X and Y both cross at t = 0.5 * sqrt(2); the kernel steps Y first (strict <), so the
    # ray enters (100, 101), which it leaves at the same t (the X crossing): depth 0.5 * sqrt(2) * 0.4 m
    vol = empty.copy()
    vol[100, 101, 8] = CAR
    vol[101, 100, 8] = TRUCK
    labels, depth = cast_rays(vol, centre, [[s, s, 0]])
    assert labels.tolist() == [CAR] and depth[0] == pytest.approx(0.5 * math.sqrt(2) * 0.4, abs=1e-5)
    # X-Z corner: Z is stepped before X (origin at x = z = 8.5 voxels, so both coordinates round alike)
    vol = empty.copy()
    vol[8, 100, 9] = CAR
    vol[9, 100, 8] = TRUCK
    labels, _ = cast_rays(vol, [-36.6, 0.2, 2.4], [[s, 0, s]])
    assert labels.tolist() == [CAR]

    # an occupied origin voxel gives the distance to its own exit face: 0.5 voxel = 0.2 m
    vol = empty.copy()
    vol[100, 100, 8] = BUS
    labels, depth = cast_rays(vol, centre, [[1, 0, 0], [0, -1, 0]])
    assert labels.tolist() == [BUS, BUS] and depth == pytest.approx([0.2, 0.2], abs=1e-6)

    # nothing hit: the class of the last (free) voxel and the distance at which the ray leaves the grid
    labels, depth = cast_rays(empty, centre, [[0, 0, 1]])
    assert labels.tolist() == [FREE] and depth[0] == pytest.approx((16 - 8.5) * 0.4, abs=1e-5)


def test_rayiou_hand_worked_rays_against_the_transcribed_kernel():
    """The same rays through the transcription of the kernel give the same classes and depths."""
    rng = np.random.default_rng(3)
    vol = _scene(rng)
    dirs = np.concatenate([lidar_ray_directions()[::97], [[1, 0, 0], [0.6, 0.8, 0], [0.7071068, 0.7071068, 0]]])
    dirs32 = dirs.astype(np.float32)
    for origin in ([0.2, 0.2, 2.4], [0.9858, 0.0, 1.8402], [-12.31, 7.77, 1.1]):
        labels, depth = cast_rays(vol, origin, dirs32)
        ref = _process_one_sample(vol, dirs32, [origin])
        assert np.array_equal(labels, ref[:, 0].astype(np.int64))
        assert np.array_equal(depth, ref[:, 1])  # float32 depths, bit for bit


def test_rayiou_equals_the_reference_on_random_scenes():
    rng = np.random.default_rng(0)
    dirs32 = lidar_ray_directions()[::13]  # 1,080 of the 14,040 rays keep the pure-Python reference quick
    samples = []
    for _ in range(2):
        gt = _scene(rng)
        origins = np.array([[0.9858, 0.0, 1.8402], rng.uniform([-30, -30, 1.5], [30, 30, 2.0])])
        samples.append((_perturbed(rng, gt), gt, origins))
    ray = RayIou(dirs32)
    for pred, gt, origins in samples:
        ray.update(pred, gt, origins)
    r = ray.compute()
    iou, rayiou, per_thr = _reference_rayiou(samples, dirs32)
    assert np.isfinite(iou).sum() >= 10 and 0.1 < rayiou < 0.99  # a meaningful, imperfect case
    got = np.array([r["per_class"][n] for n in OCC3D_CLASSES[:FREE]]).T
    assert np.array_equal(np.isnan(got), np.isnan(iou))
    assert np.allclose(got[~np.isnan(iou)], iou[~np.isnan(iou)], rtol=0, atol=1e-12)
    assert r["RayIoU"] == pytest.approx(rayiou, abs=1e-12)
    assert [r["RayIoU@1"], r["RayIoU@2"], r["RayIoU@4"]] == pytest.approx(per_thr, abs=1e-12)


# ---------------------------------------------------------------------------------------------------------
# BEV map IoU: BEVFusion evaluate_map, transcribed with torch float32 tensors
# ---------------------------------------------------------------------------------------------------------

def _reference_bev(pairs):
    import torch

    thr = torch.tensor([0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65])
    tp, fp, fn = torch.zeros(6, 7), torch.zeros(6, 7), torch.zeros(6, 7)
    for probs, gt in pairs:
        p = torch.from_numpy(np.asarray(probs)).reshape(6, -1)[:, :, None] >= thr
        g = torch.from_numpy(np.asarray(gt)).bool().reshape(6, -1)[:, :, None]
        tp += (p & g).sum(dim=1)
        fp += (p & ~g).sum(dim=1)
        fn += (~p & g).sum(dim=1)
    iou = tp / (tp + fp + fn + 1e-7)
    return iou.numpy(), iou.max(dim=1).values.numpy(), iou.max(dim=1).values.mean().item()


def test_bev_probability_exactly_at_a_threshold_is_positive():
    gt = np.zeros((6, 200, 200), np.float32)
    probs = np.zeros((6, 200, 200), np.float32)
    gt[0, :4, :4] = 1
    probs[0, :4, :4] = np.float32(0.35)  # float32(0.35) < 0.35 in float64, == in float32
    m = BevIou()
    m.update(probs, gt)
    r = m.compute()
    # by hand: TP 16 at t = 0.35 (IoU 16 / (16 + 1e-7) in float32 = 1), FN 16 above it (IoU 0)
    assert r["per_threshold"]["drivable_area"] == [1.0, 0, 0, 0, 0, 0, 0]
    assert r["per_class"]["drivable_area"] == 1.0 and r["best_threshold"]["drivable_area"] == 0.35


def test_bev_equals_the_reference_on_random_maps():
    rng = np.random.default_rng(5)
    pairs = []
    for _ in range(4):
        gt = np.zeros((6, 200, 200), np.uint8)
        for c in range(5):  # class 5 (divider) stays absent from GT and prediction
            x, y = rng.integers(0, 150, 2)
            gt[c, x:x + rng.integers(5, 50), y:y + rng.integers(5, 50)] = 1
        probs = np.clip(gt * 0.45 + rng.random((6, 200, 200)) * 0.4, 0, 1).astype(np.float32)
        probs[5] = 0
        ties = rng.random((6, 200, 200)) < 0.05  # exact float32 thresholds
        probs[ties] = rng.choice(np.array([0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65], np.float32), int(ties.sum()))
        probs[5] = 0
        pairs.append((probs, gt))
    m = BevIou()
    for probs, gt in pairs:
        m.update(probs, gt)
    r = m.compute()
    iou, best, miou = _reference_bev(pairs)
    for c, name in enumerate(BEV_MAP_CLASSES):
        assert r["per_threshold"][name] == [float(v) for v in iou[c]], name
        assert r["per_class"][name] == float(best[c]), name
    assert r["mIoU"] == pytest.approx(miou, abs=1e-7)
    assert r["absent_classes"] == ["divider"] and r["per_class"]["divider"] == 0.0
    assert r["mIoU_present"] == pytest.approx(float(np.mean(best[:5], dtype=np.float64)), abs=1e-7)
    assert r["mIoU"] == pytest.approx(r["mIoU_present"] * 5 / 6, abs=1e-6)


def test_bev_float32_sums_past_2_24_cells_round_as_the_reference():
    """BEVFusion sums the counts in float32: past 2^24 (16,777,216) an odd count no longer adds exactly.
    5,000 samples (one scored sample, merged 5,000 times in order) of 19,999 TP and 20,001 FN cells: past
    2^25 each sum rounds TP up and FN down, and the result equals the reference's running float32 sums, not the
    exact integer ratio."""
    gt = np.ones((6, 200, 200), np.float32)
    gt[1:] = 0
    probs = np.zeros((6, 200, 200), np.float32)
    probs[0].reshape(-1)[:19999] = 1
    one = BevIou()
    one.update(probs, gt)
    m = BevIou()
    for _ in range(5000):
        m.merge(one)
    tp = fn = np.float32(0)
    for _ in range(5000):  # the reference's running float32 sums, by hand
        tp, fn = np.float32(tp + np.float32(19999)), np.float32(fn + np.float32(20001))
    expected = tp / (np.float32(tp + fn) + np.float32(1e-7))
    r = m.compute()
    assert r["per_threshold"]["drivable_area"][0] == float(expected) and m.num_samples == 5000
    assert abs(float(expected) - 19999 / 40000) > 1e-6  # exact integer arithmetic would fail this test


# ---------------------------------------------------------------------------------------------------------
# Occ3D: challenge Metric_mIoU (use_image_mask=True), transcribed, plus the masked geometry histogram
# ---------------------------------------------------------------------------------------------------------

def _reference_occ3d(samples):
    n = 18
    hist, geo = np.zeros((n, n)), np.zeros((2, 2))
    for pred, gt, mask in samples:
        p, g = pred[mask.astype(bool)], gt[mask.astype(bool)]
        ok = (g >= 0) & (g < n)
        hist += np.bincount(n * g[ok].astype(int) + p[ok].astype(int), minlength=n * n).reshape(n, n)
        gp, gg = np.where(p == n - 1, 1, 0), np.where(g == n - 1, 1, 0)  # geometry: 0 occupied, 1 free
        geo += np.bincount(2 * gg + gp, minlength=4).reshape(2, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        geo_iou = np.diag(geo) / (geo.sum(1) + geo.sum(0) - np.diag(geo))
    return iou, np.nanmean(iou[: n - 1]), geo_iou[0]


def test_occ3d_equals_the_reference_on_random_scenes():
    rng = np.random.default_rng(1)
    samples = []
    for _ in range(3):
        gt = _scene(rng)
        pred = _perturbed(rng, gt)
        pred[pred == 0] = FREE  # class 0 ("others") absent from both: NaN, left out of the mean
        gt[gt == 0] = FREE
        mask = (rng.random(gt.shape) < 0.6).astype(np.uint8)
        samples.append((pred, gt, mask))
    m = OccMiou()
    for pred, gt, mask in samples:
        m.update(pred, gt, mask)
    r = m.compute()
    iou, miou, geo_masked = _reference_occ3d(samples)
    got = np.array([r["per_class"][n] for n in OCC3D_CLASSES[:FREE]])
    assert np.isnan(got[0]) and np.array_equal(np.isnan(got), np.isnan(iou[:FREE]))
    assert np.array_equal(got[1:], iou[1:FREE])  # same float64 divisions, bit for bit
    assert r["mIoU"] == miou
    assert r["geometry_IoU_camera_mask"] == pytest.approx(geo_masked, abs=1e-12)
    # the unmasked variant, by definition over all voxels
    occ_p = np.concatenate([(p != FREE).ravel() for p, _, _ in samples])
    occ_g = np.concatenate([(g != FREE).ravel() for _, g, _ in samples])
    assert r["geometry_IoU"] == pytest.approx((occ_p & occ_g).sum() / (occ_p | occ_g).sum(), abs=1e-12)
    assert r["geometry_IoU"] != pytest.approx(r["geometry_IoU_camera_mask"], abs=1e-6)
    assert "camera" in r["protocol"]["geometry_IoU_camera_mask"] and "ALL" in r["protocol"]["geometry_IoU"]


# ---------------------------------------------------------------------------------------------------------
# OpenOccupancy: LoadOccupancy + evaluation_semantic + cm_to_ious / format_SSC_results, transcribed
# ---------------------------------------------------------------------------------------------------------

def _reference_load(sparse, grid):
    """LoadOccupancy (no augmentation: identity bda) + nb_process_label on a grid over the OpenOccupancy range."""
    grid = np.array(grid)
    pc_range = np.array([-51.2, -51.2, -5.0, 51.2, 51.2, 3.0])
    voxel = (pc_range[3:] - pc_range[:3]) / grid
    pcd = sparse.copy()
    label = pcd[:, -1:]
    label[label == 0] = 255
    world = (pcd[:, [2, 1, 0]] + 0.5) * voxel + pc_range[:3]
    world = world.astype(np.float32)  # the bda matmul runs in float32
    cor = np.clip((world - pc_range[:3]) / voxel, np.array([0, 0, 0]), grid - 1)
    rows = np.concatenate([cor, label], axis=1)
    rows = rows[np.lexsort((cor[:, 0], cor[:, 1], cor[:, 2]))].astype(np.int64)
    out = np.zeros(tuple(grid), np.uint8)
    votes = np.zeros(256, np.uint16)
    votes[rows[0, 3]] = 1
    current = rows[0, :3]
    for row in rows[1:]:
        if not np.array_equal(row[:3], current):
            out[tuple(current)] = np.argmax(votes)
            votes[:] = 0
            current = row[:3]
        votes[row[3]] += 1
    out[tuple(current)] = np.argmax(votes)
    return out


def _reference_openocc(pairs):
    ssc, sc = np.zeros((17, 17), np.int64), np.zeros((2, 2), np.int64)
    for pred, gt in pairs:
        keep = gt != 255
        g, p = gt.astype(np.int64)[keep], pred.astype(np.int64)[keep]
        ssc += np.bincount(17 * g + p, minlength=17 * 17).reshape(17, 17)
        sc += np.bincount(2 * (g != 0) + (p != 0), minlength=4).reshape(2, 2)

    def cm_to_ious(cm):
        out = []
        for i in range(len(cm)):
            tp, union = cm[i, i], cm[:, i].sum() + cm[i, :].sum() - cm[i, i]
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append(tp / union)
        return out

    ious = cm_to_ious(ssc)
    return ious, sum(ious[1:]) / len(ious[1:]), cm_to_ious(sc)[1]


def test_openocc_loader_majority_vote_by_hand(tmp_path):
    rows = np.array([
        [0, 0, 0, 4], [0, 0, 0, 9], [0, 0, 0, 4],   # voxel x, y, z = 0, 0, 0: 4 twice, 9 once -> 4
        [1, 0, 0, 9], [1, 0, 0, 4],                 # (0, 0, 1): tie 4 / 9 -> the smaller, 4
        [0, 1, 0, 0], [0, 1, 0, 7],                 # (0, 1, 0): noise (255) vs 7, a tie -> 7
        [0, 2, 0, 0], [0, 2, 0, 0], [0, 2, 0, 7],   # (0, 2, 0): noise twice -> 255 (ignored)
        [0, 3, 0, 5], [0, 3, 0, 6],                 # (0, 3, 0): tie -> 5 (not the last row's 6)
        [0, 0, 99, 3], [-2, 5, 5, 16],              # x = 99 clamped to 7; z = -2 clamped to 0
        [-1, 6, 6, 3], [0, 6, 6, 9],                # (6, 6, 0): the clamped row votes apart and first -> 9
        [3, 7, 7, 9], [5, 7, 7, 2],                 # (7, 7, 3): z = 5 clamped onto z = 3, one vote, tie -> 2
    ], np.int64)  # [z, y, x, label]
    path = tmp_path / "tok.npy"
    np.save(path, rows)
    grid = (8, 8, 4)
    dense = load_openocc_label(str(path), grid)
    expected = np.zeros(grid, np.uint8)
    expected[0, 0, 0], expected[0, 0, 1], expected[0, 1, 0], expected[0, 2, 0] = 4, 4, 7, 255
    expected[0, 3, 0], expected[7, 0, 0], expected[5, 5, 0] = 5, 3, 16
    expected[6, 6, 0], expected[7, 7, 3] = 9, 2
    assert np.array_equal(dense, expected)
    assert np.array_equal(_reference_load(rows, grid), expected)  # the transcription agrees


def _with_all_classes(pairs):
    """The same pairs with one correctly predicted voxel of classes 14-16 each."""
    out = []
    for pred, gt in pairs:
        pred, gt = pred.copy(), gt.copy()
        pred[0, 0, 1:4], gt[0, 0, 1:4] = [14, 15, 16], [14, 15, 16]
        out.append((pred, gt))
    return out


def test_openocc_equals_the_reference_on_random_labels(tmp_path):
    rng = np.random.default_rng(2)
    grid = (32, 32, 8)
    pairs = []
    for i in range(3):
        n = 600
        rows = np.stack([rng.integers(-1, 9, n), rng.integers(0, 32, n), rng.integers(0, 33, n),
                         rng.integers(0, 14, n)], 1).astype(np.int64)  # classes 14-16 never labelled
        again = rows[rng.integers(0, n, 300)].copy()  # repeated voxels with other labels
        again[:, 3] = rng.integers(0, 14, len(again))
        rows = np.concatenate([rows, again])
        path = tmp_path / f"{i}.npy"
        np.save(path, rows)
        gt = load_openocc_label(str(path), grid)
        assert np.array_equal(gt, _reference_load(rows, grid))
        pred = np.where(gt == 255, 0, gt).astype(np.uint8)
        flip = rng.random(grid) < 0.01
        pred[flip] = rng.integers(0, 14, int(flip.sum()))
        pairs.append((pred, gt))
    m = OpenOccMetric(grid)
    for pred, gt in pairs:
        m.update(pred, gt)
    r = m.compute()
    ious, miou, geo = _reference_openocc(pairs)
    got = [r["per_class"][n] for n in OPENOCC_CLASSES[1:]]
    assert np.array_equal(np.isnan(got), np.isnan(ious[1:]))
    assert np.array_equal(np.nan_to_num(got), np.nan_to_num(ious[1:]))
    assert math.isnan(miou) and math.isnan(r["mIoU"])  # classes 14-16 have an empty union: NaN, explained
    assert r["absent_classes"] == list(OPENOCC_CLASSES[14:]) and "empty union" in r["mIoU_note"]
    assert r["mIoU_present"] == pytest.approx(np.nanmean(ious[1:]), abs=1e-12)
    assert r["geometry_IoU"] == geo
    # with every class present the reference mean is a number, and ours is the same number
    full = OpenOccMetric(grid)
    for pred, gt in _with_all_classes(pairs):
        full.update(pred, gt)
    rf = full.compute()
    _, miou, geo = _reference_openocc(_with_all_classes(pairs))
    assert rf["mIoU"] == miou and rf["geometry_IoU"] == geo
    assert rf["mIoU_note"] is None and rf["absent_classes"] == []
