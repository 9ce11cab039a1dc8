"""Each CPU speed path against its reference (the way mamba-ssm tests its fast path against the
reference): ranked BEV pooling vs the per-camera pooling, the numba trilinear kernel vs grid_sample, the
chunked channels-last occupancy MLPs vs the Conv1d stacks, the cached pooling plan inside the camera encoder,
the occupancy LiDAR cues with their ray bins kept between frames (eval) vs computed each time, and the
stable peak selection vs topk."""


import numpy as np
import pytest
import torch

from perception.models.camera.lss import BevPoolPlan, bev_pool, bev_pool_ranked
from perception.models.heads.bev_sampling import sample_volume
from perception.models.heads.occ_head import OccHead
from perception.models.heads.occ_lidar_cues import LidarOccCues
from perception.models.heads.trilinear_numba import NUMBA_AVAILABLE, sample_volume_numba
from perception.runtime.ring_frame import ring_rig

PCR = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


def test_ranked_bev_pool_equals_the_reference():
    torch.manual_seed(0)
    b, n, d, h, w, c = 2, 3, 7, 4, 6, 5
    geometry = torch.rand(b, n, d, h, w, 3) * torch.tensor([130.0, 130.0, 12.0]) - torch.tensor([65.0, 65.0, 7.0])
    geometry[0, 0, 0, 0, :2] = torch.tensor([1.0, 1.0, 0.0])  # several points in one cell
    probs = torch.rand(b, n, d, h, w)
    context = torch.randn(b, n, c, h, w)
    cam_mask = torch.tensor([[True, False, True], [True, True, True]])
    ref = bev_pool(probs * cam_mask[:, :, None, None, None], context, geometry, cam_mask, PCR, 1.6, (64, 64))
    plan = BevPoolPlan(geometry, cam_mask, PCR, 1.6, (64, 64))
    out = bev_pool_ranked(probs * cam_mask[:, :, None, None, None], context, plan)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)
    assert plan.depth_index.numel() < b * n * d * h * w  # off-grid points and the masked camera dropped
    # the runs of equal cells cover every kept point once
    assert int((plan.ends - plan.starts).sum()) == plan.cell_index.numel()


def test_occ_cues_with_kept_ray_bins_equal_the_cues_computed_each_time(real_dir):
    """On a real nuScenes sweep at the 640k Occ3D voxel centres: the same cues in eval (ray bins kept between
    calls) as in training mode (computed each time), also after the origin or the centres change."""
    sweep = np.load(real_dir / "surroundocc/tools/generate_occupancy_with_own_data/pc/pc0.npy").astype(np.float32)
    pts = torch.from_numpy(np.concatenate([sweep, np.zeros((len(sweep), 1), np.float32)], axis=1))
    centres = [torch.arange(n) * 0.4 + lo + 0.2 for n, lo in ((200, -40.0), (200, -40.0), (16, -1.0))]
    xyz = torch.stack(torch.meshgrid(*centres, indexing="ij"), -1)[None].expand(2, -1, -1, -1, -1)  # Occ3D, metres
    cues = LidarOccCues(PCR)
    mask = torch.tensor([True, False])  # the second sample has no LiDAR: all zeros on both paths
    for origin, shift in [((0.0, 0.0, 0.0), 0.0), ((0.0, 0.0, 0.0), 0.0), ((0.9, -0.4, 1.8), 0.0),
                          ((0.9, -0.4, 1.8), 0.1)]:
        o = torch.tensor([origin, origin])
        with torch.no_grad():
            fast = cues.eval()([pts, pts], mask, o, xyz + shift)
        ref = cues.train()([pts, pts], mask, o, xyz + shift)
        assert torch.equal(fast, ref)  # the same arithmetic, kept or not
        assert fast[0, 2:5].abs().sum() > 0 and fast[1].abs().sum() == 0
    kept = cues.ray_bins(xyz[0].reshape(-1, 3) + 0.1, torch.tensor([0.9, -0.4, 1.8]), keep=True)[0]
    assert cues.ray_bins(xyz[0].reshape(-1, 3) + 0.1, torch.tensor([0.9, -0.4, 1.8]), keep=True)[0] is kept
    assert cues.ray_bins(xyz[0].reshape(-1, 3) + 0.1, torch.tensor([0.9, -0.4, 1.8]))[0] is not kept


@pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba not installed")
@pytest.mark.parametrize("padding", ["border", "zeros"])
@pytest.mark.parametrize("threads", [1, 2])
def test_numba_trilinear_sampling_equals_grid_sample(padding, threads):
    torch.manual_seed(1)
    volume = torch.randn(2, 5, 6, 9, 11)
    # points inside, on the edges and outside the range (border clamps, zeros reads zeros)
    xyz = torch.rand(2, 70, 60, 3) * torch.tensor([120.0, 120.0, 12.0]) - torch.tensor([60.0, 60.0, 7.0])
    xyz[0, 0, :3] = torch.tensor([[-51.2, -51.2, -5.0], [51.2, 51.2, 3.0], [0.0, 0.0, -1.0]])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = sample_volume_numba(volume, xyz, PCR, padding)
        twice = sample_volume_numba(volume, xyz, PCR, padding, out=out.clone())
    finally:
        torch.set_num_threads(before)
    ref = sample_volume(volume, xyz, PCR, padding).reshape(2, 5, -1).transpose(1, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(twice, 2 * ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cues", [0, 6])
def test_occ_head_fast_path_equals_the_conv_stacks(cues):
    torch.manual_seed(2)
    head = OccHead(16, PCR, num_classes=18, height_bins=4, channels=8, bev_height_bins=5, hidden=16,
                   cue_channels=cues).eval()
    if cues:
        for p in head.cue_refiner[-1].parameters():
            torch.nn.init.normal_(p, std=0.2)
    head.INFERENCE_CHUNK = 1000  # several chunks, a ragged last one
    query = torch.randn(2, 4 * 4, 16)
    bev = torch.randn(2, 16, 8, 8)
    xyz = torch.rand(2, 30, 25, 4, 3) * torch.tensor([100.0, 100.0, 8.0]) - torch.tensor([50.0, 50.0, 5.0])
    cue = torch.rand(2, cues, 30, 25, 4) if cues else None
    with torch.no_grad():
        fast = head(query, (4, 4), bev, xyz, cue)
        with torch.enable_grad():  # grad mode: the reference Conv1d path
            ref = head(query, (4, 4), bev, xyz, cue)
    assert (fast.refined is not None) == (ref.refined is not None) == bool(cues)  # OccLogits(base, refined)
    for f, r in zip(fast, ref, strict=True):
        if f is None:
            continue
        assert f.shape == r.shape == (2, 18, 30, 25, 4)
        torch.testing.assert_close(f, r.detach(), rtol=1e-5, atol=1e-5)
        assert torch.equal(f.argmax(1), r.argmax(1))


def _ring(n, hw):
    K, lidar2cam = ring_rig(n, hw[1], hw[0])
    K, lidar2cam = torch.as_tensor(K, dtype=torch.float32), torch.as_tensor(lidar2cam, dtype=torch.float32)
    return K.expand(1, n, 3, 3).contiguous(), lidar2cam[None]


def test_camera_encoder_eval_pooling_equals_the_reference_and_caches_the_plan():
    from perception.models.camera.encoder import CameraEncoder

    torch.manual_seed(3)
    enc = CameraEncoder((64, 96), PCR, 1.6, fpn_channels=16, context_channels=8, depth_bins=(1.0, 40.0, 2.0)).eval()
    images = torch.randn(1, 3, 3, 64, 96)
    cam_mask = torch.tensor([[True, False, True]])
    K, l2c = _ring(3, (64, 96))
    with torch.no_grad():
        bev, _ = enc(images, cam_mask, K, l2c)
        plan = enc.pool_plan(K, l2c, cam_mask)
        assert enc.pool_plan(K.clone(), l2c.clone(), cam_mask) is plan  # cached for the rig
        enc.train()  # training runs the reference pooling; BatchNorm would use batch stats: compare pooling only
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        ref, _ = enc(images, cam_mask, K, l2c)
    torch.testing.assert_close(bev, ref, rtol=1e-5, atol=1e-5)


def test_inference_peak_selection_is_topk_with_ties_in_index_order():
    from perception.models.queries.det_queries import DetQueryInit

    init = DetQueryInit(8, num_queries=20, num_classes=3, nms_kernel=1, nms_exempt_classes=()).eval()
    torch.manual_seed(4)
    heat = torch.rand(2, 3, 8, 8)
    heat[:, :, :4] = 0.5  # a flat region: many exact ties
    labels, cells = init.select_peaks(heat)
    init.train()
    labels_t, cells_t = init.select_peaks(heat)
    values = heat.flatten(1).gather(1, labels * 64 + cells)
    values_t = heat.flatten(1).gather(1, labels_t * 64 + cells_t)
    torch.testing.assert_close(values, values_t)  # the same top values (topk's set up to ties)
    flat = labels * 64 + cells
    for row, val in zip(flat, values, strict=True):  # ties in ascending index order
        same = val[1:] == val[:-1]
        assert bool((row[1:][same] > row[:-1][same]).all())
