"""Second-stage box refinement (perception.models.roi_heads): box-frame point gathering on real nuScenes data,
the residual coding, that the refiner learns box centres from visible faces, and its wiring into M3Net."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.data.boxes import points_in_boxes
from perception.models import build_model
from perception.models.roi_heads.box_points import gather_box_points
from perception.models.roi_heads.point_refiner import PointBoxRefiner, apply_residuals, box_residuals

REPO = Path(__file__).resolve().parents[1]
INFO = "mmdetection3d/branch-1.0_47285b3f/tests/data/nuscenes/nus_info.pkl"  # legacy infos: LiDAR-frame boxes


def _random_boxes(n, generator):
    g = generator
    xy = (torch.rand(n, 2, generator=g) - 0.5) * 60
    z = torch.rand(n, 1, generator=g) - 1.0
    size = torch.rand(n, 3, generator=g) * torch.tensor([4.0, 1.5, 1.5]) + torch.tensor([0.5, 0.5, 0.8])
    yaw = (torch.rand(n, 1, generator=g) - 0.5) * 2 * math.pi
    return torch.cat([xy, z, size, yaw, torch.randn(n, 2, generator=g)], dim=1)


def test_residuals_round_trip_and_keep_the_proposal_heading():
    g = torch.Generator().manual_seed(0)
    proposals, targets = _random_boxes(200, g), _random_boxes(200, g)
    res = box_residuals(proposals, targets)
    assert res[:, 6].abs().max() <= math.pi / 2 + 1e-6  # yaw residual modulo pi
    back = apply_residuals(proposals, res)
    torch.testing.assert_close(back[:, :6], targets[:, :6], atol=1e-4, rtol=1e-5)
    # The heading is the target's up to pi (a flip is not a residual), and the velocity stays the proposal's.
    assert torch.allclose(torch.sin(2 * (back[:, 6] - targets[:, 6])), torch.zeros(200), atol=1e-4)
    torch.testing.assert_close(back[:, 7:], proposals[:, 7:])
    # The offset is in the proposal's frame: a proposal turned by 90 degrees sees a +x offset as -y.
    p = torch.tensor([[10.0, 0, 0, 4, 2, 1.5, math.pi / 2, 0, 0]])
    t = p.clone()
    t[0, 0] += 1.0
    torch.testing.assert_close(box_residuals(p, t)[0, :2], torch.tensor([0.0, -1.0]), atol=1e-6, rtol=0)


def test_gather_box_points_agrees_with_points_in_boxes_on_real_nuscenes(real_dir):
    """Real LiDAR points and real annotated boxes (both in the LiDAR frame): the points gathered with margin
    0 are exactly the ones `points_in_boxes` (tested against the devkit) puts inside, and rotating the
    box-frame coordinates back gives the original points."""
    from perception.data import load_info_file

    sample = load_info_file(real_dir / INFO)[0]
    lidar = ("mmdetection3d/tests/data/nuscenes/samples/LIDAR_TOP/"
             "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin")
    pts = np.fromfile(real_dir / lidar, dtype=np.float32).reshape(-1, 5)
    boxes = torch.from_numpy(np.asarray(sample.boxes, np.float32))
    points = torch.from_numpy(pts)
    for margin in (0.0, 3.0):
        grown = boxes.clone()
        grown[:, 3:6] += 2 * margin
        expected = points_in_boxes(pts[:, :3], grown.numpy()).sum(axis=0)
        local, mask = gather_box_points(points, boxes, margin, max_points=128, cell_cap=128)
        np.testing.assert_array_equal(mask.sum(1).numpy(), expected)
    assert expected.sum() > 0  # the real sweep has points in (grown) real boxes: the check above is not vacuous
    m = int(np.argmax(expected))
    c, s = math.cos(boxes[m, 6]), math.sin(boxes[m, 6])
    lx, ly, lz = local[m, mask[m], :3].T
    world = torch.stack([c * lx - s * ly + boxes[m, 0], s * lx + c * ly + boxes[m, 1], lz + boxes[m, 2]], 1)
    world = torch.cat([world, local[m, mask[m], 3:]], 1).numpy()  # intensity, time lag copied
    inside = pts[points_in_boxes(pts[:, :3], grown[m:m + 1].numpy())[:, 0]]
    np.testing.assert_allclose(world[np.argsort(world[:, 0])], inside[np.argsort(inside[:, 0])], atol=1e-4)
    # More points than max_points: a subset of them, the same one on every call.
    few, few_mask = gather_box_points(points, boxes, 3.0, max_points=2)
    assert int(few_mask.sum(1).max()) == min(2, int(expected.max()))
    torch.testing.assert_close(few, gather_box_points(points, boxes, 3.0, max_points=2)[0])


def _visible_face_points(boxes, generator, per_face=60):
    """Points on the box faces a sensor at the origin sees (outward normal towards the sensor), plus the
    ground under the box: what a LiDAR scan of a vehicle looks like (an L or a single face)."""
    out = []
    for b in boxes:
        x, y, z, length, w, h, yaw = b[:7].tolist()
        c, s = math.cos(yaw), math.sin(yaw)
        for axis, sign in ((0, 1), (0, -1), (1, 1), (1, -1)):
            half = (length / 2, w / 2)
            normal = (c, s) if axis == 0 else (-s, c)
            normal = (sign * normal[0], sign * normal[1])
            face = (x + normal[0] * half[axis], y + normal[1] * half[axis])
            if normal[0] * -face[0] + normal[1] * -face[1] <= 0:  # facing away from the sensor
                continue
            t = (torch.rand(per_face, generator=generator) - 0.5) * 2 * half[1 - axis]
            u = (torch.rand(per_face, generator=generator) - 0.5) * h
            along = (-s, c) if axis == 0 else (c, s)
            px, py = face[0] + t * along[0], face[1] + t * along[1]
            out.append(torch.stack([px, py, z + u, torch.full_like(px, 50.0), torch.zeros_like(px)], 1))
        g = torch.rand(per_face, 2, generator=generator) * 8 - 4
        out.append(torch.stack([x + g[:, 0], y + g[:, 1], torch.full((per_face,), z - h / 2),
                                torch.full((per_face,), 5.0), torch.zeros(per_face)], 1))
    noise = torch.randn(sum(len(o) for o in out), 5, generator=generator) * torch.tensor([0.02, 0.02, 0.02, 0, 0])
    return torch.cat(out) + noise


def _car_scene(generator, n=12):
    boxes = []
    while len(boxes) < n:  # cars 6-40 m away, 10 m apart so that their points do not mix
        r = 6 + 34 * float(torch.rand(1, generator=generator))
        a = 2 * math.pi * float(torch.rand(1, generator=generator))
        if any(math.hypot(r * math.cos(a) - b[0], r * math.sin(a) - b[1]) < 10 for b in boxes):
            continue
        size = [4.0 + 0.8 * float(torch.rand(1, generator=generator)),
                1.8 + 0.3 * float(torch.rand(1, generator=generator)), 1.6]
        yaw = (float(torch.rand(1, generator=generator)) - 0.5) * 2 * math.pi
        boxes.append([r * math.cos(a), r * math.sin(a), -1.0, *size, yaw, 0.0, 0.0])
    boxes = torch.tensor(boxes)
    return _visible_face_points(boxes, generator), boxes


def test_refiner_learns_box_centres_from_visible_faces():
    """Trained only on jittered GT boxes of L-shaped scans, the refiner pulls held-out jittered proposals to
    the true centres: median centre error at least halved (it starts at the jitter, ~0.6 m)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    refiner = PointBoxRefiner(num_classes=10, proposals_per_box=4, max_points=64)
    opt = torch.optim.Adam(refiner.parameters(), lr=3e-3)
    for _ in range(250):
        points, boxes = _car_scene(g)
        loss = refiner.loss([points], [boxes], [torch.zeros(len(boxes), dtype=torch.long)])["refine"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    refiner.eval()
    before, after = [], []
    for _ in range(10):
        points, boxes = _car_scene(g)
        proposals = refiner.jitter_boxes(boxes)[: len(boxes)]
        scores = torch.rand(len(boxes), generator=g)
        refined, _ = refiner.refine(points, proposals, scores, torch.zeros(len(boxes), dtype=torch.long))
        before.append((proposals[:, :2] - boxes[:, :2]).norm(dim=1))
        after.append((refined[:, :2] - boxes[:, :2]).norm(dim=1))
    before, after = torch.cat(before).median(), torch.cat(after).median()
    assert before > 0.4 and after < 0.5 * before, (before, after)


@pytest.fixture(scope="module")
def refine_model():
    cfg = load_config(REPO / "configs" / "tiny.py", ["model.score_threshold=0.0", "model.refiner={}"])
    torch.manual_seed(0)
    return build_model(cfg.model).eval(), cfg


def _batch(cfg, tmp_path, lidar=True):
    """A one-sample batch through the real dataset/collate path: 4000 LiDAR points over 80 x 80 m (written
    as a nuScenes .pcd.bin), no cameras, one car box; ``lidar=False`` marks the LiDAR missing."""
    from perception.data.collate import collate
    from perception.data.sample import Sample
    from perception.training.data import make_dataset

    rng = np.random.default_rng(0)
    path = tmp_path / "sweep.pcd.bin"
    rng.uniform([-40, -40, -2, 0, 0], [40, 40, 1, 255, 0], (4000, 5)).astype(np.float32).tofile(path)
    sample = Sample(token="s", lidar_path=str(path), lidar2ego=np.eye(4), ego2global=np.eye(4), num_sweeps=1,
                    cameras={}, boxes=np.array([[5, 5, -1, 4, 2, 1.5, 0.3, 0, 0]], np.float32), labels=np.array([0]),
                    num_lidar_pts=np.array([10]))
    batch = collate([make_dataset(cfg, [sample], training=False, load_gt=False)[0]])
    batch["lidar_mask"][:] = lidar
    return batch


def test_m3net_applies_the_refiner_to_the_top_boxes_only_when_lidar_is_there(refine_model, tmp_path):
    model, cfg = refine_model
    plain = _batch(cfg, tmp_path)
    model.refiner.max_refine, model.refiner.iterations = 10, 1
    torch.manual_seed(0)
    first = model.predict(plain)[0]
    with torch.no_grad():
        model.refiner.out.bias[0] = 0.5  # +0.5 m along each box's heading
    torch.manual_seed(0)
    moved = model.predict(plain)[0]
    with torch.no_grad():
        model.refiner.out.bias.zero_()
    top = first["scores"].argsort(descending=True)[: model.refiner.max_refine]
    rest = torch.ones(len(first["boxes"]), dtype=torch.bool)
    rest[top] = False
    shift = moved["boxes"][top, :2] - first["boxes"][top, :2]
    heading = torch.stack([first["boxes"][top, 6].cos(), first["boxes"][top, 6].sin()], 1)
    has_points = shift.norm(dim=1) > 0
    assert has_points.float().mean() > 0.9  # 4000 points over 80 x 80 m: nearly every box has some around
    torch.testing.assert_close(shift[has_points], 0.5 * heading[has_points], atol=1e-4, rtol=0)
    torch.testing.assert_close(moved["boxes"][rest], first["boxes"][rest])
    torch.testing.assert_close(moved["scores"], first["scores"])
    model.refiner.iterations = 2  # a second pass starts from the first's boxes: another 0.5 m along the heading
    with torch.no_grad():
        model.refiner.out.bias[0] = 0.5
    torch.manual_seed(0)
    twice = model.predict(plain)[0]
    with torch.no_grad():
        model.refiner.out.bias.zero_()
    torch.testing.assert_close(twice["boxes"][top, :2][has_points] - first["boxes"][top, :2][has_points],
                               1.0 * heading[has_points], atol=1e-4, rtol=0)
    model.refiner.max_refine = 200
    # Without LiDAR the refiner is skipped (and an untrained refiner is the identity anyway).
    with torch.no_grad():
        model.refiner.out.bias[0] = 0.5
    no_lidar = _batch(cfg, tmp_path, lidar=False)
    torch.manual_seed(0)
    a = model.predict(no_lidar)[0]["boxes"]
    model.refiner.out.bias.data.zero_()
    torch.manual_seed(0)
    torch.testing.assert_close(a, model.predict(no_lidar)[0]["boxes"])


def test_rescoring_blends_the_first_stage_score_with_the_quality(refine_model, tmp_path):
    model, cfg = refine_model
    batch = _batch(cfg, tmp_path)
    model.refiner.score_weight = 0.0  # first-stage scores only
    raw = model.predict(batch)[0]
    model.refiner.score_weight = 0.5
    with torch.no_grad():
        model.refiner.quality.bias.fill_(20.0)  # quality ~1 everywhere: score -> score ** 0.5
    blended = model.predict(batch)[0]
    with torch.no_grad():
        model.refiner.quality.bias.zero_()
    assert len(raw["scores"]) > 10
    torch.testing.assert_close(blended["scores"], raw["scores"].sqrt(), atol=1e-5, rtol=1e-4)
    assert bool((blended["scores"][:-1] >= blended["scores"][1:]).all())  # still sorted


def test_quality_target_counts_the_nuscenes_thresholds_per_class():
    from perception.models.roi_heads.point_refiner import quality_target

    gt = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0, 0, 0], [20.0, 0, 0, 0.6, 0.6, 1.7, 0, 0, 0]])
    gt_labels = torch.tensor([0, 8])
    boxes = gt[[0, 0, 0, 0, 1, 1]].clone()
    boxes[:, 0] += torch.tensor([0.2, 0.7, 1.5, 3.0, 0.0, 5.0])
    boxes[:, 2] += 10.0  # height does not count: nuScenes matches on BEV centre distance
    labels = torch.tensor([0, 0, 0, 0, 0, 8])  # the 5th is a "car" on the pedestrian: no match
    torch.testing.assert_close(quality_target(boxes, labels, gt, gt_labels),
                               torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0, 0.0]))


def test_refiner_loss_trains_only_from_points_and_config_errors(refine_model, tmp_path):
    model, cfg = refine_model
    model.train()
    losses = model(_batch(cfg, tmp_path))
    model.eval()
    assert losses["loss_refine"] > 0 and losses["loss_refine_score"] > 0
    (losses["loss_refine"] + losses["loss_refine_score"]).backward()
    assert model.refiner.out.weight.grad.abs().sum() > 0 and model.refiner.quality.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.neck.parameters())  # it reads points, not the BEV features
    with pytest.raises(ValueError, match=r"model\.refiner\.wobble"):
        build_model(load_config(REPO / "configs" / "tiny.py", ["model.refiner={'wobble': 1}"]).model)
    with pytest.raises(ValueError, match=r"model\.refiner.*model\.lidar is None"):
        build_model(load_config(REPO / "configs" / "tiny_camera.py", ["model.refiner={}"]).model)

