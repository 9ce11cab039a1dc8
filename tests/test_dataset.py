"""M3Dataset, collate and modality_dropout (perception/data/{dataset,collate}.py) on hand-made samples."""

import numpy as np
import pytest
import torch
from PIL import Image

from perception.constants import CAMERA_NAMES
from perception.data.augment import BevAugParams, ImageAugParams
from perception.data.collate import collate, modality_dropout
from perception.data.dataset import M3Dataset
from perception.data.sample import CameraView, Sample

FINAL_HW = (32, 64)
K = np.array([[100.0, 0.0, 80.0], [0.0, 100.0, 45.0], [0.0, 0.0, 1.0]])
LIDAR2CAM = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, -1.5], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def write_points(path, points):
    np.asarray(points, np.float32).tofile(path)
    return str(path)


def make_sample(tmp_path, token, n_points=50, cameras=("CAM_FRONT",), missing_cameras=(), occ_path=None, bev=None):
    """A sample with a real .pcd.bin, real JPEGs for ``cameras`` and camera entries whose file is missing."""
    rng = np.random.default_rng(len(token))
    xyz = np.concatenate([rng.uniform(-20, 20, (n_points, 2)), rng.uniform(-2, 1, (n_points, 1))], 1)
    pts = np.concatenate([xyz, rng.uniform(0, 255, (n_points, 1)), np.zeros((n_points, 1))], 1)
    views = {}
    for name in cameras + missing_cameras:
        path = tmp_path / f"{token}_{name}.jpg"
        if name in cameras:
            Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(path)
        views[name] = CameraView(name=name, path=str(path), intrinsics=K, lidar2cam=LIDAR2CAM)
    boxes = np.zeros((5, 9), np.float32)
    boxes[:, :2] = [[1, 2], [3, 4], [100, 0], [5, 5], [-3, -3]]  # box 2 is outside the point cloud range
    boxes[:, 3:6] = [4, 2, 1.5]
    return Sample(
        token=token,
        lidar_path=write_points(tmp_path / f"{token}.pcd.bin", pts),
        lidar2ego=np.eye(4),
        ego2global=np.eye(4),
        timestamp=1000,
        scene_name="scene-0001",
        cameras=views,
        boxes=boxes,
        labels=np.array([0, 10, 3, -1, 8]),  # 10 and -1 are not detection classes
        num_lidar_pts=np.array([5, 5, 5, 5, 0]),  # box 4 is empty
        occ_path=occ_path,
        num_sweeps=0,
        _bev_map_fn=None if bev is None else (lambda s: bev),
    )


def dataset(samples, **kw):
    opts = dict(image_aug=ImageAugParams(final_hw=FINAL_HW), num_sweeps=0, point_cloud_range=(-50, -50, -5, 50, 50, 3))
    opts.update(kw)
    return M3Dataset(samples, **opts)


def test_collate_matches_architecture_table(tmp_path, real_dir):
    occ = real_dir / "occ3d_cvpr2023_challenge/data/29796060110c4163b07f06eff4af0753/labels.npz"
    bev = np.zeros((6, 200, 200), np.uint8)
    bev[0, :100] = 1
    samples = [make_sample(tmp_path, "a", occ_path=str(occ), bev=bev), make_sample(tmp_path, "bb", n_points=30)]
    ds = dataset(samples, training=True, bev_aug=BevAugParams(translation_std=0.0))
    batch = collate([ds[0], ds[1]])
    B, N, (H, W) = 2, len(CAMERA_NAMES), FINAL_HW
    expected = {
        "lidar_mask": (torch.bool, (B,)),
        "images": (torch.float32, (B, N, 3, H, W)),
        "cam_mask": (torch.bool, (B, N)),
        "intrinsics": (torch.float32, (B, N, 3, 3)),
        "lidar2cam": (torch.float32, (B, N, 4, 4)),
        "lidar2img": (torch.float32, (B, N, 4, 4)),
        "img_aug": (torch.float32, (B, N, 3, 3)),
        "bev_aug": (torch.float32, (B, 4, 4)),
        "lidar2ego": (torch.float32, (B, 4, 4)),
        "gt_bev": (torch.float32, (B, 6, 200, 200)),
        "gt_bev_valid": (torch.bool, (B,)),
        "gt_occ": (torch.int64, (B, 200, 200, 16)),
        "gt_occ_mask": (torch.bool, (B, 200, 200, 16)),
        "gt_occ_valid": (torch.bool, (B,)),
    }
    assert set(batch) == set(expected) | {"points", "gt_boxes", "gt_labels", "meta"}
    for key, (dtype, shape) in expected.items():
        assert batch[key].dtype == dtype and tuple(batch[key].shape) == shape, key
    for key, dtype, width in (("points", torch.float32, 5), ("gt_boxes", torch.float32, 9)):
        assert len(batch[key]) == B, key
        assert all(t.dtype == dtype and t.ndim == 2 and t.shape[1] == width for t in batch[key]), key
    assert [t.dtype for t in batch["gt_labels"]] == [torch.int64] * B
    assert [m["token"] for m in batch["meta"]] == ["a", "bb"]
    assert set(batch["meta"][0]) == {"token", "timestamp", "scene_name", "ego2global", "lidar2ego"}
    assert [len(p) for p in batch["points"]] == [50, 30]
    assert batch["gt_bev_valid"].tolist() == [True, False] and batch["gt_occ_valid"].tolist() == [True, False]
    assert batch["gt_bev"][0, 0].sum() == 100 * 200 and batch["gt_bev"][1].sum() == 0
    assert batch["gt_occ_mask"][0].any() and batch["gt_occ"][0].max() <= 17
    # Only CAM_FRONT (index 0) exists; its matrices follow the contract.
    assert batch["cam_mask"].tolist() == [[True] + [False] * 5] * 2
    A, P = batch["bev_aug"][0].double(), batch["img_aug"][0, 0].double()
    torch.testing.assert_close(batch["intrinsics"][0, 0].double(), P @ torch.tensor(K), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(batch["lidar2cam"][0, 0].double(), torch.tensor(LIDAR2CAM) @ torch.linalg.inv(A),
                               atol=1e-4, rtol=1e-5)
    K4 = torch.eye(4, dtype=torch.float64)
    K4[:3, :3] = batch["intrinsics"][0, 0].double()
    torch.testing.assert_close(batch["lidar2img"][0, 0].double(), K4 @ batch["lidar2cam"][0, 0].double(),
                               atol=1e-3, rtol=1e-5)
    assert batch["images"][0, 0].abs().sum() > 0 and batch["images"][0, 1:].abs().sum() == 0


def test_points_and_boxes_are_augmented_together(tmp_path):
    sample = make_sample(tmp_path, "aug")
    item = dataset([sample], training=True)[0]
    A = item["bev_aug"].astype(np.float64)
    assert not np.allclose(A, np.eye(4))
    raw = np.fromfile(sample.lidar_path, np.float32).reshape(-1, 5)
    np.testing.assert_allclose(item["points"][:, :3], raw[:, :3] @ A[:3, :3].T + A[:3, 3], atol=1e-4)
    np.testing.assert_allclose(item["gt_boxes"][:, :3], sample.boxes[[0], :3] @ A[:3, :3].T + A[:3, 3], atol=1e-4)
    # Evaluation: identity augmentation, same result on every call.
    ev = dataset([sample], training=False)
    np.testing.assert_array_equal(ev[0]["bev_aug"], np.eye(4))
    np.testing.assert_array_equal(ev[0]["images"], ev[0]["images"])


def test_gt_filters_are_counted(tmp_path):
    ds = dataset([make_sample(tmp_path, "f")])
    item = ds[0]
    # Of 5 boxes only box 0 survives: labels 10 / -1, the empty box and the far box are removed.
    assert item["gt_labels"].tolist() == [0]
    assert ds.stats["boxes_bad_label"] == 2
    assert ds.stats["boxes_no_points"] == 1
    assert ds.stats["boxes_out_of_range"] == 1


def test_missing_cameras_and_nan_points_are_masked_and_counted(tmp_path, caplog):
    sample = make_sample(tmp_path, "m", cameras=("CAM_FRONT", "CAM_BACK"), missing_cameras=("CAM_FRONT_LEFT",))
    raw = np.fromfile(sample.lidar_path, np.float32).reshape(-1, 5)
    raw[[3, 7], 3] = np.nan  # NaN intensity on two points
    raw.tofile(sample.lidar_path)
    ds = dataset([sample])
    with caplog.at_level("WARNING"):
        item = ds[0]
    assert item["cam_mask"].tolist() == [True, False, False, True, False, False]
    assert ds.stats["camera_unreadable"] == 1 and ds.stats["camera_missing"] == 3
    assert len(item["points"]) == 48 and np.isfinite(item["points"]).all()
    assert ds.stats["nan_points"] == 2
    assert "CAM_FRONT_LEFT" in caplog.text and "NaN" in caplog.text


def test_corrupt_lidar_is_masked_not_fatal(tmp_path):
    sample = make_sample(tmp_path, "c")
    with open(sample.lidar_path, "ab") as f:
        f.write(b"\x00\x01\x02")  # truncated: not a whole number of points
    ds = dataset([sample])
    item = ds[0]
    assert item["lidar_mask"] is False and item["points"].shape == (0, 5)
    assert ds.stats["lidar_unreadable"] == 1
    assert item["cam_mask"][0]  # the rest of the sample is still there


def test_bad_options_raise():
    with pytest.raises(ValueError, match="cameras"):
        M3Dataset([], cameras=("CAM_TOP",))
    with pytest.raises(ValueError, match="point_cloud_range"):
        M3Dataset([], point_cloud_range=(0, 0, 0, -1, 1, 1))


def fake_batch(B=64, n_cam=6, cams_valid=True):
    return {
        "points": [torch.ones(10, 5) for _ in range(B)],
        "lidar_mask": torch.ones(B, dtype=torch.bool),
        "images": torch.ones(B, n_cam, 3, 4, 4),
        "cam_mask": torch.full((B, n_cam), cams_valid),
    }


def test_modality_dropout_never_drops_everything():
    rng = np.random.default_rng(0)
    batch = fake_batch()
    out = modality_dropout(batch, p_drop_all_cameras=0.3, p_drop_some_cameras=0.3, p_drop_lidar=0.4, rng=rng)
    keeps_something = out["lidar_mask"] | out["cam_mask"].any(dim=1)
    assert keeps_something.all()
    n_lidar_dropped = int((~out["lidar_mask"]).sum())
    n_all_cams_dropped = int((~out["cam_mask"].any(dim=1)).sum())
    n_some = int((out["cam_mask"].any(dim=1) & ~out["cam_mask"].all(dim=1)).sum())
    assert n_lidar_dropped > 10 and n_all_cams_dropped > 5 and n_some > 5
    assert n_lidar_dropped + n_all_cams_dropped + n_some == 64  # probabilities sum to 1: every sample loses something
    assert all(len(p) == 0 for p, m in zip(out["points"], out["lidar_mask"], strict=True) if not m)
    assert out["images"][~out["cam_mask"]].abs().sum() == 0 and out["images"][out["cam_mask"]].abs().sum() > 0
    assert batch["lidar_mask"].all() and batch["cam_mask"].all()  # input untouched
    # A sample without cameras never loses its LiDAR; without LiDAR never loses its cameras.
    no_cams = modality_dropout(fake_batch(cams_valid=False), 0.0, 0.0, 1.0, rng)
    assert no_cams["lidar_mask"].all()
    no_lidar = fake_batch()
    no_lidar["lidar_mask"][:] = False
    assert modality_dropout(no_lidar, 1.0, 0.0, 0.0, rng)["cam_mask"].all()
    with pytest.raises(ValueError, match="sum"):
        modality_dropout(batch, 0.6, 0.3, 0.3, rng)


def test_modality_dropout_per_batch_puts_every_sample_in_one_condition():
    """One draw per batch: over many batches each event happens, and within a batch every sample lost the same
    sensor (the same cameras too), so BatchNorm's batch statistics are one condition's."""
    rng = np.random.default_rng(1)
    events = set()
    for _ in range(60):
        out = modality_dropout(fake_batch(B=4), 0.3, 0.3, 0.3, rng, per_batch=True)
        assert (out["lidar_mask"] == out["lidar_mask"][0]).all()
        assert (out["cam_mask"] == out["cam_mask"][0]).all()
        lidar, cams = bool(out["lidar_mask"][0]), int(out["cam_mask"][0].sum())
        events.add("lidar" if not lidar else "all" if cams == 0 else "some" if cams < 6 else "none")
    assert events == {"lidar", "all", "some", "none"}
    # a sample that cannot lose its LiDAR (no camera) keeps it while the others of its batch lose theirs
    batch = fake_batch(B=3)
    batch["cam_mask"][1] = False
    out = modality_dropout(batch, 0.0, 0.0, 1.0, rng, per_batch=True)
    assert out["lidar_mask"].tolist() == [False, True, False]


def test_cameras_in_threads_give_the_same_inference_item(tmp_path):
    """The runtime's camera threads (``inference_item(pool=...)``) give the sequential item bit for bit, with
    the problems of a missing and an unreadable camera in camera order; and the column-wise range crop keeps
    exactly the points ``np.all`` keeps (edges, NaN)."""
    from concurrent.futures import ThreadPoolExecutor

    from perception.data.inputs import crop_to_range, inference_item

    cams = tuple(CAMERA_NAMES[:4])
    # camera 5's file does not exist, camera 1's is no JPEG, camera 4 is not in the sample
    sample = make_sample(tmp_path, "threads", n_points=500, cameras=cams, missing_cameras=(CAMERA_NAMES[5],))
    (tmp_path / f"threads_{CAMERA_NAMES[1]}.jpg").write_bytes(b"not a jpeg")
    args = (sample, CAMERA_NAMES, ImageAugParams(final_hw=FINAL_HW), 0, (-50, -50, -5, 50, 50, 3))
    plain, plain_problems = inference_item(*args)
    with ThreadPoolExecutor(3) as pool:
        threaded, threaded_problems = inference_item(*args, pool=pool)
    assert [p[0] for p in plain_problems] == ["camera_unreadable", "camera_missing", "camera_unreadable"]
    assert threaded_problems == plain_problems
    assert plain["cam_mask"].tolist() == [True, False, True, True, False, False]
    for key in ("images", "cam_mask", "intrinsics", "lidar2cam", "lidar2img", "img_aug", "points"):
        assert np.array_equal(threaded[key], plain[key]), key
    assert np.abs(plain["images"][0]).sum() > 0
    pcr = (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0)
    pts = np.array([[-1, 0, 0, 0], [1, 0, 0, 0], [0, 0.999, 0, 0], [np.nan, 0, 0, 0], [0, 0, -1.5, 0]], np.float32)
    bounds = np.asarray(pcr, np.float32)
    want = pts[np.all((pts[:, :3] >= bounds[:3]) & (pts[:, :3] < bounds[3:]), axis=1)]
    assert np.array_equal(crop_to_range(pts, pcr), want) and len(want) == 2
