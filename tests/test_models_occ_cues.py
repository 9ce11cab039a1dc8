"""Per-voxel LiDAR cues of the occupancy head (perception.models.heads.occ_lidar_cues): counts and ray
distances on a real nuScenes sweep, invariance under the BEV augmentation, no LiDAR, and that the head
resolves a sub-cell surface with them and not without."""

from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.data.augment import make_bev_aug
from perception.models import build_model
from perception.models.heads.occ_head import OccHead
from perception.models.heads.occ_lidar_cues import FREE_RANGE_M, NUM_CUES, LidarOccCues

REPO = Path(__file__).resolve().parents[1]
PCR = (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0)
SWEEP = "surroundocc/tools/generate_occupancy_with_own_data/pc/pc0.npy"  # full LIDAR_TOP cloud, LiDAR frame


@pytest.fixture(scope="module")
def sweep(real_dir):
    """``(N, 5)`` x, y, z, intensity, time lag 0 (one keyframe sweep, as the data layer loads it)."""
    pts = np.load(real_dir / SWEEP).astype(np.float32)
    return torch.from_numpy(np.concatenate([pts, np.zeros((len(pts), 1), np.float32)], axis=1))


def test_hit_volume_counts_the_points_per_cell_on_a_real_sweep(sweep):
    cues = LidarOccCues(PCR)
    for cell in (1, 2):
        counts = torch.expm1(cues.hit_volume(sweep[:, :3], cell))[0, 0].round()  # (Z, X, Y)
        z_n, x_n, y_n = counts.shape
        assert (x_n, y_n, z_n) == (256 // cell, 256 // cell, 20 // cell)
        ref, _ = np.histogramdd(sweep[:, :3].numpy(), bins=(x_n, y_n, z_n), range=[PCR[0::3], PCR[1::3], PCR[2::3]])
        ours = counts.permute(1, 2, 0).numpy()
        assert ours.sum() == ref.sum() > 30000
        # float32 against numpy's float64 bin edges: a point or two on a cell boundary may land next door.
        assert (ours != ref).sum() <= 4


def test_ray_distance_is_the_range_to_the_first_return_on_a_real_sweep(sweep):
    """Points moved along their own rays by a factor s: the cue reads d = (1 - s) r (free in front of the
    return, occluded behind it) for nearly all of them; the rest share a bin with a nearer return."""
    cues = LidarOccCues(PCR)
    origin = torch.zeros(3)
    image = cues.range_image(sweep[:, :3], origin)
    r = sweep[:, :3].norm(dim=1)
    far = sweep[r > 3, :3]
    for s in (1.0, 0.5, 1.3):
        d, no_return = cues.ray_distance(image, origin, far * s)
        expected = (1 - s) * far.norm(dim=1)
        assert ((d - expected).abs() < 0.5).float().mean() > 0.9
        assert not no_return.any()
    # Straight up there is no return (the top ring is at +10.7 deg): flagged, distance 0.
    d, no_return = cues.ray_distance(image, origin, torch.tensor([[0.0, 0.0, 30.0]]))
    assert no_return.all() and d.abs().max() == 0


def test_cues_follow_the_bev_augmentation(sweep):
    """Rotating, flipping, scaling and shifting the points, the voxel centres and the sensor origin together
    (the augmented LiDAR frame) leaves the ray cues of the voxels as they were; the turn is a whole number of
    0.5 deg azimuth bins (and a flip mirrors the bins onto bins), so only float rounding may move a voxel.
    The sensor origin must move too: left at the frame's origin, the cues change."""
    cues = LidarOccCues(PCR)
    g = torch.Generator().manual_seed(0)
    xyz = (torch.rand(1, 20000, 3, generator=g) - 0.5) * torch.tensor([70.0, 70.0, 5.0])
    A = torch.from_numpy(make_bev_aug(rotation=np.radians(34.5), flip_y=True, translation=(1.5, -2.0, 0.3))).float()
    aug = lambda p: p @ A[:3, :3].T + A[:3, 3]  # noqa: E731
    pts_aug = torch.cat([aug(sweep[:, :3]), sweep[:, 3:]], dim=1)
    base = cues([sweep], torch.tensor([True]), torch.zeros(1, 3), xyz)
    moved = cues([pts_aug], torch.tensor([True]), A[None, :3, 3], aug(xyz))
    same = lambda a, b: ((a[0, 2:5] - b[0, 2:5]).abs() < 0.05).all(0).float().mean()  # noqa: E731
    assert same(base, moved) > 0.99
    assert moved[0, 5].eq(1).all()
    wrong_origin = cues([pts_aug], torch.tensor([True]), torch.zeros(1, 3), aug(xyz))
    assert same(base, wrong_origin) < 0.9
    # The counts move with the points (the grid itself does not rotate, so compare totals of the dense region).
    assert abs(float(base[0, 0].sum()) - float(moved[0, 0].sum())) < 0.1 * float(base[0, 0].sum())


def test_no_lidar_reads_zeros_and_past_sweeps_do_not_enter_the_range_image(sweep):
    cues = LidarOccCues(PCR)
    far = sweep[sweep[:, :3].norm(dim=1) > 3]
    xyz = far[None, ::50, :3] * 0.5  # half way to each return: free space
    out = cues([sweep, sweep], torch.tensor([True, False]), torch.zeros(2, 3), torch.cat([xyz, xyz]))
    assert out.shape == (2, NUM_CUES, xyz.shape[1])
    assert out[1].abs().max() == 0  # no LiDAR: nothing, not "no return"
    assert (out[0, 2] > 0).float().mean() > 0.9 and out[0, 2].max() <= 1.0
    # The same points as a past sweep (time lag 0.5 s) count as hits but give no rays.
    past = sweep.clone()
    past[:, 4] = 0.5
    out_past = cues([past], torch.tensor([True]), torch.zeros(1, 3), xyz)
    torch.testing.assert_close(out_past[0, :2], out[0, :2])
    assert out_past[0, 4].eq(1).all() and out_past[0, 2:4].abs().max() == 0
    assert FREE_RANGE_M > 0


def test_occ_head_places_a_sub_cell_surface_only_with_the_cues():
    """A wall of points somewhere inside one 4 m BEV cell; the voxels (0.4 m) at the wall are occupied, the
    ones in front of it free, the ones behind unobserved. The BEV features cannot say where in the cell the
    wall stands (here they are the same everywhere), so a head trained on some wall positions and tested on
    others places it only when it reads the LiDAR cues; without them it can only answer the majority label."""
    pcr = [-8.0, -8.0, -2.0, 8.0, 8.0, 2.0]
    xs = (torch.arange(10) + 0.5) * 0.4 - 2.0 + 0.6  # voxel centres from -0.8 to 2.8 m (x)
    ys = (torch.arange(10) + 0.5) * 0.4 - 2.0
    zs = (torch.arange(6) + 0.5) * 0.4 - 1.2
    pts = torch.stack(torch.meshgrid(xs, ys, zs, indexing="ij"), -1)[None]  # (1, 10, 10, 6, 3)
    g = torch.Generator().manual_seed(1)
    scenes = {}
    for k in range(2, 9):  # the wall on the k-th voxel layer in x
        n = 20000  # ~3 returns per range-image bin at 7 m
        # (N, 5) x, y, z, intensity, time lag 0
        wall = torch.cat([torch.full((n, 1), float(xs[k])),
                          (torch.rand(n, 2, generator=g) - 0.5) * torch.tensor([16.0, 3.0]), torch.zeros(n, 2)], 1)
        labels = (pts[..., 0] - xs[k]).abs() < 0.2
        keep = pts[..., 0] < xs[k] + 0.2
        sensor = torch.tensor([[-6.0, 0.0, 0.0]])  # looking at the wall along +x from 6-9 m
        scenes[k] = (LidarOccCues(pcr)([wall], torch.tensor([True]), sensor, pts), labels.long(), keep)
    train, test = (2, 4, 6, 8), (3, 5, 7)
    accuracy = {}
    for use in (False, True):
        torch.manual_seed(0)
        head = OccHead(16, pcr, num_classes=2, height_bins=1, channels=8, bev_height_bins=2,
                       cue_channels=NUM_CUES if use else 0)
        # The same BEV feature in every 4 m cell and the same query in every column: they know nothing of the wall.
        bev, query = torch.randn(1, 16, 1, 1).expand(1, 16, 4, 4), torch.randn(1, 1, 16).expand(1, 4, 16)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        for step in range(200):
            cues, labels, keep = scenes[train[step % len(train)]]
            out = head(query, (2, 2), bev, pts, cues if use else None)  # OccLogits(base, refined or None)
            assert (out.refined is not None) == use
            loss = sum(torch.nn.functional.cross_entropy(o.permute(0, 2, 3, 4, 1)[keep], labels[keep])
                       for o in out if o is not None)
            opt.zero_grad()
            loss.backward()
            opt.step()
        hits = total = 0
        with torch.no_grad():
            for k in test:
                cues, labels, keep = scenes[k]
                out = head(query, (2, 2), bev, pts, cues if use else None)
                pred = (out.refined if use else out.base).argmax(1)
                hits += (pred[keep] == labels[keep]).sum().item()
                total += keep.sum().item()
        accuracy[use] = hits / total
    assert accuracy[True] > 0.98 and accuracy[False] < 0.85, accuracy  # majority (free) = 15 / 18 = 0.83


def test_cue_refiner_wiring_config_switch_and_errors():
    """The refiner's loss trains the refiner only (no gradient into the BEV network or the BEV-only occupancy
    path), the other weights start as without it, and the config switch and its errors."""
    cfg = load_config(REPO / "configs" / "tiny.py")
    assert cfg.model.head.occ.lidar_cues
    torch.manual_seed(0)
    model = build_model(cfg.model)
    torch.manual_seed(0)
    plain = build_model(load_config(REPO / "configs" / "tiny.py", ["model.head.occ.lidar_cues=False"]).model)
    assert isinstance(model.head.occ.cues, LidarOccCues) and plain.head.occ.head.cue_refiner is None
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(k.startswith("head.occ.head.cue_refiner.") for k in extra)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in plain.state_dict().items())
    # Gradient isolation, on the head alone: BEV features in, the refiner's loss back.
    from perception.models.heads.multitask import MultiTaskHead

    head = MultiTaskHead(("occ",), 8, PCR, 6.4, num_layers=1, d_model=16, num_heads=2, ffn_dim=32,
                         occ=dict(lidar_cues=True, train_voxels=512))
    bev = torch.randn(1, 8, 16, 16, requires_grad=True)
    labels = torch.randint(0, 18, (1, 200, 200, 16))
    batch = {"bev_aug": torch.eye(4)[None], "lidar2ego": torch.eye(4)[None], "points": [torch.randn(500, 5) * 10],
             "lidar_mask": torch.tensor([True]), "gt_occ": labels,
             "gt_occ_mask": torch.ones_like(labels, dtype=torch.bool), "gt_occ_valid": torch.tensor([True])}
    losses = head.loss(head({"occ": bev}, batch), batch)
    assert set(losses) == {"loss_occ_ce", "loss_occ_lovasz", "loss_occ_affinity", "loss_occ_refine"}
    losses["loss_occ_refine"].backward()
    assert bev.grad is None and head.occ.head.mlp[0].weight.grad is None
    assert head.occ.head.cue_refiner[-1].weight.grad.abs().sum() > 0
    camera = build_model(load_config(REPO / "configs" / "tiny_camera.py").model)
    assert camera.head.occ.cues is None and camera.head.occ.head.cue_refiner is None
    with pytest.raises(ValueError, match=r"model\.head\.occ\.lidar_cues.*model\.lidar is None"):  # config check
        load_config(REPO / "configs" / "tiny_camera.py", ["model.head.occ.lidar_cues=True"])
    head = OccHead(16, list(PCR), num_classes=3, cue_channels=NUM_CUES)
    with pytest.raises(ValueError, match="cues"):
        head(torch.randn(1, 4, 16), (2, 2), torch.randn(1, 16, 8, 8), torch.zeros(1, 2, 2, 2, 3))


@pytest.mark.parametrize("training", [True, False])
def test_a_sample_without_lidar_keeps_its_bev_only_logits(training):
    """The cue refiner corrects the samples with LiDAR only: a sample without it (all-zero cues the refiner
    never learned on) gets its BEV-only logits, in training (sampled voxels) and at inference (the full grid),
    and its refine loss sends no gradient back."""
    from perception.models.heads.multitask import MultiTaskHead

    torch.manual_seed(0)
    head = MultiTaskHead(("occ",), 8, PCR, 6.4, num_layers=1, d_model=16, num_heads=2, ffn_dim=32,
                         occ=dict(lidar_cues=True, train_voxels=512))
    torch.nn.init.normal_(head.occ.head.cue_refiner[-1].weight)  # it starts at zero: make it correct something
    head.train(training)
    bev = torch.randn(2, 8, 16, 16, requires_grad=True)
    labels = torch.randint(0, 18, (2, 200, 200, 16))
    batch = {"bev_aug": torch.eye(4)[None].repeat(2, 1, 1), "lidar2ego": torch.eye(4)[None].repeat(2, 1, 1),
             "points": [torch.randn(500, 5) * 10] * 2, "lidar_mask": torch.tensor([True, False]), "gt_occ": labels,
             "gt_occ_mask": torch.ones_like(labels, dtype=torch.bool), "gt_occ_valid": torch.tensor([True, True])}
    with torch.set_grad_enabled(training):
        out = head({"occ": bev}, batch)["occ"]
    logits, base = out["logits"], out["base_logits"]  # (2, 18, ...)
    assert torch.equal(logits[1], base[1])
    assert not torch.allclose(logits[0], base[0])
    if training:
        one = {"occ": {k: v[1:] if torch.is_tensor(v) else v for k, v in out.items()}}
        batch1 = {k: v[1:] for k, v in batch.items()}
        head.loss(one, batch1)["loss_occ_refine"].backward()
        assert head.occ.head.cue_refiner[-1].weight.grad is None or not head.occ.head.cue_refiner[-1].weight.grad.any()
