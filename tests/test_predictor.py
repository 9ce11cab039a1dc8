"""Predictor: output types/shapes, degraded inputs (no LiDAR, no cameras, NaN, bad calibration), that
predict_sample (dataset Sample) and predict (live Frame) share one preprocessing, and that no ground truth
reaches the model at inference."""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.constants import DETECTION_CLASSES, OCC3D_FREE
from perception.data.sample import CameraView, Sample
from perception.models import build_model
from perception.runtime import CameraFrame, Frame, Predictor
from perception.training.checkpoint import save_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.py"
LIDAR = ("mmdetection3d/tests/data/nuscenes/samples/LIDAR_TOP/"
         "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin")
IMAGE = ("mmdetection3d/tests/data/nuscenes/samples/CAM_BACK_LEFT/"
         "n015-2018-07-18-11-07-57+0800__CAM_BACK_LEFT__1531883530447423.jpg")
K = np.array([[1260.0, 0.0, 800.0], [0.0, 1260.0, 450.0], [0.0, 0.0, 1.0]])
# LiDAR (x right, y forward, z up) -> a camera looking along LiDAR +y: rows are the camera x, y, z axes.
L2C = np.eye(4)
L2C[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
IDENTITY = np.eye(4)  # default lidar2ego of frame()


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    # map memory off: these tests are about one frame at a time (the memory: tests/test_map_memory.py)
    cfg = load_config(CONFIG, ["model.score_threshold=0.0", "model.map_memory_s=0"])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    save_checkpoint(path, {"model": build_model(cfg.model).state_dict()})
    return Predictor(cfg, path, device="cpu")


@pytest.fixture(scope="module")
def real(real_dir):
    from perception.data.io import load_image, load_points

    return load_points(str(real_dir / LIDAR))[:, :4], load_image(str(real_dir / IMAGE)), real_dir


def frame(points, image=None, intrinsics=K, lidar2cam=L2C, lidar2ego=IDENTITY):
    cams = {} if image is None else {"CAM_BACK_LEFT": CameraFrame(image, intrinsics, lidar2cam)}
    return Frame(points=points, cameras=cams, lidar2ego=lidar2ego, timestamp=1)


def check(pred, tasks=("det", "map", "occ")):
    k = len(pred.boxes)
    assert pred.boxes.shape == (k, 9) and pred.boxes.dtype == np.float32 and np.isfinite(pred.boxes[:, :7]).all()
    assert pred.scores.shape == (k,) and np.isfinite(pred.scores).all() and k <= 500
    assert pred.labels.dtype == np.int64 and pred.class_names == [DETECTION_CLASSES[i] for i in pred.labels]
    assert pred.bev_probs.shape == (6, 200, 200) and pred.bev_probs.dtype == np.float32
    assert np.isfinite(pred.bev_probs).all() and pred.bev_probs.min() >= 0 and pred.bev_probs.max() <= 1
    assert pred.occ_labels.shape == (200, 200, 16) and pred.occ_labels.dtype == np.uint8
    assert pred.occ_labels.max() <= OCC3D_FREE
    assert set(pred.timings_ms) == {"preprocess", "model", "postprocess"}
    assert all(v >= 0 for v in pred.timings_ms.values())


def test_lidar_and_camera_frame_repeats_exactly(predictor, real):
    points, image, _ = real
    first = predictor.predict(frame(points, image))
    check(first)
    assert len(first.boxes) > 0 and first.warnings == [] and first.timings_ms["model"] > 0
    again = predictor.predict(frame(points, image))
    np.testing.assert_array_equal(again.bev_probs, first.bev_probs)
    np.testing.assert_array_equal(again.boxes, first.boxes)


def test_bad_calibration_drops_the_camera_with_a_note(predictor, real):
    points, image, _ = real
    with pytest.warns(UserWarning):
        no_cam = predictor.predict(frame(points))
    singular = K.copy()
    singular[0, 0] = 0.0
    nan_extrinsics = L2C.copy()
    nan_extrinsics[0, 3] = np.nan
    scaled = L2C.copy()
    scaled[:3, :3] *= 2.0
    cases = {"intrinsics missing": dict(intrinsics=None), "intrinsics is singular": dict(intrinsics=singular),
             "lidar2cam is not finite": dict(lidar2cam=nan_extrinsics),
             "lidar2cam rotation is not a proper rotation": dict(lidar2cam=scaled)}
    for message, bad in cases.items():
        with pytest.warns(UserWarning, match=f"camera CAM_BACK_LEFT: {message}"):
            pred = predictor.predict(frame(points, image, **bad))
        assert any("CAM_BACK_LEFT" in w for w in pred.warnings)
        np.testing.assert_array_equal(pred.bev_probs, no_cam.bev_probs)  # exactly as without that camera


def test_lidar2ego_is_required_for_ego_frame_occupancy(predictor, real):
    points, _, _ = real
    with pytest.raises(ValueError, match="lidar2ego is required"):
        predictor.predict(frame(points[:200], lidar2ego=None))
    bad = np.eye(4)
    bad[3, 3] = 0.0
    with pytest.raises(ValueError, match="lidar2ego last row"):
        predictor.predict(frame(points[:200], lidar2ego=bad))
    with pytest.raises(ValueError, match="takes a perception.runtime.Frame"):
        predictor.predict({"points": points})
    # The occupancy grid is in the ego frame: the frame's lidar2ego is what the model samples that grid with.
    turned = np.eye(4)
    turned[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    seen = []
    model_predict = predictor.model.predict
    try:
        predictor.model.predict = lambda batch: seen.append(batch["lidar2ego"].cpu().numpy()) or model_predict(batch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predictor.predict(frame(points[:200], lidar2ego=turned))
    finally:
        predictor.model.predict = model_predict
    np.testing.assert_allclose(seen[0][0], turned)


def test_ground_truth_never_reaches_the_model(predictor, real_dir):
    sample = Sample(token="s", lidar_path=str(real_dir / LIDAR), lidar2ego=np.eye(4), ego2global=np.eye(4),
                    boxes=np.array([[0, 10, 0, 4, 2, 1.5, 0, 0, 0]], np.float32), labels=np.array([0]),
                    num_lidar_pts=np.array([50]))
    batch, _ = predictor.batch_for(sample)
    assert not [k for k in batch if k.startswith("gt_")]
    with_gt = predictor.predict_sample(sample)
    sample.boxes = np.zeros((0, 9), np.float32)
    sample.labels, sample.num_lidar_pts = np.zeros(0, np.int64), np.zeros(0, np.int64)
    without = predictor.predict_sample(sample)
    np.testing.assert_array_equal(with_gt.boxes, without.boxes)
    np.testing.assert_array_equal(with_gt.bev_probs, without.bev_probs)


def test_runtime_imports_neither_training_nor_eval():
    code = ("import sys, perception.runtime; "
            "bad = sorted(m for m in sys.modules "
            "if m.startswith(('perception.training', 'perception.eval', 'perception.cli'))); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_degraded_inputs_give_valid_results(predictor, real):
    points, image, _ = real
    with pytest.warns(UserWarning, match="no LiDAR points"):
        no_lidar = predictor.predict(frame(None, image))
    check(no_lidar)
    with pytest.warns(UserWarning, match="no usable camera"):
        no_cams = predictor.predict(frame(points))
    check(no_cams)
    # NaN points are counted, warned about and removed: same result as without them
    bad = np.concatenate([points[:500], np.full((3, 4), np.nan, np.float32)])
    with pytest.warns(UserWarning, match="3 NaN/inf points removed"):
        nan_pred = predictor.predict(frame(bad))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean = predictor.predict(frame(points[:500]))
    check(nan_pred)
    np.testing.assert_allclose(nan_pred.bev_probs, clean.bev_probs, atol=1e-5)
    # NaN pixels in a float image are zeroed and reported
    float_image = image.astype(np.float32)
    float_image[:10, :10] = np.nan
    with pytest.warns(UserWarning, match="100 NaN/inf pixels"):
        check(predictor.predict(frame(points, float_image)))
    # nothing usable: an empty but well-formed result
    with pytest.warns(UserWarning):
        empty = predictor.predict(frame(np.zeros((0, 4), np.float32)))
    assert empty.boxes.shape == (0, 9) and (empty.occ_labels == OCC3D_FREE).all() and empty.bev_probs.max() == 0
    with pytest.raises(ValueError, match="Frame.points"):
        predictor.predict(frame(np.zeros((5, 3), np.float32)))


def test_predict_sample_matches_live_frame(predictor, real):
    points, image, real_dir = real
    cam = CameraView(name="CAM_BACK_LEFT", path=str(real_dir / IMAGE), intrinsics=K, lidar2cam=L2C)
    sample = Sample(token="s", lidar_path=str(real_dir / LIDAR), lidar2ego=np.eye(4), ego2global=np.eye(4),
                    cameras={"CAM_BACK_LEFT": cam}, num_sweeps=1)
    from_sample = predictor.predict_sample(sample)
    check(from_sample)
    live = predictor.predict(frame(points, image))
    np.testing.assert_allclose(from_sample.bev_probs, live.bev_probs, atol=1e-5)
    np.testing.assert_allclose(from_sample.boxes, live.boxes, atol=1e-4)
    assert (from_sample.occ_labels == live.occ_labels).all()


def test_withheld_sensors_equal_a_frame_without_them(predictor, real):
    """predict_sample(withhold=...) (the degraded-sensor benchmark rows) gives what a live frame without
    those sensors gives, and names them in the warnings."""
    points, image, real_dir = real
    cam = CameraView(name="CAM_BACK_LEFT", path=str(real_dir / IMAGE), intrinsics=K, lidar2cam=L2C)
    sample = Sample(token="s", lidar_path=str(real_dir / LIDAR), lidar2ego=np.eye(4), ego2global=np.eye(4),
                    cameras={"CAM_BACK_LEFT": cam}, num_sweeps=1)
    full = predictor.predict_sample(sample)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        no_lidar_live = predictor.predict(frame(np.zeros((0, 4), np.float32), image))
        no_cams_live = predictor.predict(frame(points))
    no_lidar = predictor.predict_sample(sample, withhold=["lidar"])
    no_cams = predictor.predict_sample(sample, withhold=["CAM_BACK_LEFT"])
    assert "lidar withheld" in no_lidar.warnings and "CAM_BACK_LEFT withheld" in no_cams.warnings
    np.testing.assert_allclose(no_lidar.bev_probs, no_lidar_live.bev_probs, atol=1e-5)
    assert (no_lidar.occ_labels == no_lidar_live.occ_labels).all()
    np.testing.assert_allclose(no_cams.bev_probs, no_cams_live.bev_probs, atol=1e-5)
    np.testing.assert_allclose(no_cams.boxes, no_cams_live.boxes, atol=1e-4)
    assert not np.allclose(no_lidar.bev_probs, full.bev_probs, atol=1e-5)  # withholding changed the input
    nothing = predictor.predict_sample(sample, withhold=["lidar", "cameras"])
    assert len(nothing.boxes) == 0 and (nothing.occ_labels == OCC3D_FREE).all()
    with pytest.raises(ValueError, match="unknown sensor 'radar'"):
        predictor.predict_sample(sample, withhold=["radar"])


@pytest.mark.parametrize("use_lidar_depth", [False, True])
def test_camera_only_config_reads_no_points(real, tmp_path, use_lidar_depth):
    """configs/tiny_camera.py (the camera-only row of the learning benchmark): the points of a sample do not
    change its prediction (no LiDAR encoder, no LiDAR depth input, no refiner or occupancy cues). With the
    LiDAR depth input switched back on, the same points do change it (the check can fail)."""
    _, _, real_dir = real
    torch.manual_seed(0)
    options = ["model.score_threshold=0.0", f"model.camera.use_lidar_depth={use_lidar_depth}"]
    cfg = load_config(CONFIG.parent / "tiny_camera.py", options)
    camera_only = Predictor(cfg, {"model": build_model(cfg.model).state_dict()})
    rng = np.random.default_rng(0)  # a wall of points 5-30 m in front of the camera (LiDAR +y), x, y, z, i, 0
    xyz = rng.uniform([-8.0, 5.0, -1.5], [8.0, 30.0, 2.0], (4000, 3))
    cloud = np.concatenate([xyz, rng.uniform(0, 100, (4000, 1)), np.zeros((4000, 1))], 1).astype(np.float32)
    cloud.tofile(tmp_path / "wall.pcd.bin")
    cam = CameraView(name="CAM_BACK_LEFT", path=str(real_dir / IMAGE), intrinsics=K, lidar2cam=L2C)
    sample = Sample(token="s", lidar_path=str(tmp_path / "wall.pcd.bin"), lidar2ego=np.eye(4), ego2global=np.eye(4),
                    cameras={"CAM_BACK_LEFT": cam}, num_sweeps=1)
    with_points, without = camera_only.predict_sample(sample), camera_only.predict_sample(sample, withhold=["lidar"])
    same = [np.array_equal(with_points.bev_probs, without.bev_probs), np.array_equal(with_points.boxes, without.boxes),
            np.array_equal(with_points.occ_labels, without.occ_labels)]
    # (random weights label every voxel alike either way: the occupancy cannot show a difference)
    assert same[:2] == [not use_lidar_depth] * 2 and (use_lidar_depth or same[2])


def _predictor_like(predictor, **kwargs):
    """A second Predictor with the fixture's config and weights."""
    return Predictor(predictor.cfg, {"model": predictor.model.state_dict()}, device="cpu", **kwargs)


def test_bf16_on_a_cpu_without_native_bf16_runs_fp32_and_says_so(predictor, real, monkeypatch):
    monkeypatch.setattr("perception.models.precision.cpu_has_native_bf16", lambda: False)
    points, image, _ = real
    with pytest.warns(UserWarning, match="no native bf16"):
        p = _predictor_like(predictor, bf16=True)
    assert not p.bf16 and p.autocast_dtype is None and "running fp32" in p.precision_note
    a, b = predictor.predict(frame(points, image)), p.predict(frame(points, image))
    np.testing.assert_array_equal(b.boxes, a.boxes)
    np.testing.assert_array_equal(b.occ_labels, a.occ_labels)


def test_bf16_runs_the_network_in_bf16_and_decodes_in_fp32(predictor, real, monkeypatch):
    from perception.models.precision import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 / AMX)")
    points, image, _ = real
    p = _predictor_like(predictor, bf16=True)
    assert p.bf16 and p.precision_note is None
    seen = {}

    def record_backbone(module, inputs, output):
        seen["backbone"] = next(_tensors(output)).dtype

    p.model.camera_encoder.backbone.register_forward_hook(record_backbone)
    decode = p.model.head.decode

    def recording_decode(outputs, *args, **kwargs):
        seen["decoded"] = {t.dtype for t in _tensors(outputs) if t.is_floating_point()}
        return decode(outputs, *args, **kwargs)

    monkeypatch.setattr(p.model.head, "decode", recording_decode)
    low, full = p.predict(frame(points, image)), predictor.predict(frame(points, image))
    check(low)
    assert seen == {"backbone": torch.bfloat16, "decoded": {torch.float32}}
    # bf16 keeps ~3 significant digits: the map probabilities move by little, the occupancy argmax rarely.
    assert np.abs(low.bev_probs - full.bev_probs).max() < 0.05
    assert (low.occ_labels == full.occ_labels).mean() > 0.95
    assert not np.array_equal(low.bev_probs, full.bev_probs)  # it did run in lower precision


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif hasattr(value, "__dataclass_fields__") or hasattr(value, "_fields"):
        for v in (value if hasattr(value, "_fields") else vars(value).values()):
            yield from _tensors(v)


def _random_predictor(config, seed, options=()):
    cfg = load_config(CONFIG.parent / config, ["model.score_threshold=0.0", *options])
    torch.manual_seed(seed)
    return Predictor(cfg, {"model": build_model(cfg.model).state_dict()})


def test_fallback_models_run_the_frames_that_lack_their_modality(predictor, real):
    """With a camera-only model set for 'no_lidar' and a LiDAR-only one for 'no_cameras', a frame without
    points is exactly the camera-only model's prediction, a frame without cameras exactly the LiDAR-only
    model's, and a frame with both is the fusion model's own; the notes name the model that ran."""
    points, image, real_dir = real
    camera_only, lidar_only = _random_predictor("tiny_camera.py", 1), _random_predictor("tiny_lidar.py", 2)
    fused = _predictor_like(predictor)
    fused.set_fallback("no_lidar", camera_only, "configs/tiny_camera.py")
    fused.set_fallback("no_cameras", lidar_only, "configs/tiny_lidar.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [(frame(np.zeros((0, 4), np.float32), image), camera_only, "no lidar: fallback model "
                  "configs/tiny_camera.py ran this frame"),
                 (frame(points), lidar_only, "no cameras: fallback model configs/tiny_lidar.py ran this frame"),
                 (frame(points, image), predictor, None)]
        for live, expected_model, note in cases:
            got, expected = fused.predict(live), expected_model.predict(live)
            np.testing.assert_array_equal(got.bev_probs, expected.bev_probs)
            np.testing.assert_array_equal(got.boxes, expected.boxes)
            assert (got.occ_labels == expected.occ_labels).all()
            assert (note in got.warnings) if note else not any("fallback" in w for w in got.warnings)
        # the benchmark's withheld-sensor rows take the same route
        cam = CameraView(name="CAM_BACK_LEFT", path=str(real_dir / IMAGE), intrinsics=K, lidar2cam=L2C)
        sample = Sample(token="s", lidar_path=str(real_dir / LIDAR), lidar2ego=np.eye(4), ego2global=np.eye(4),
                        cameras={"CAM_BACK_LEFT": cam}, num_sweeps=1)
        got = fused.predict_sample(sample, withhold=["lidar"])
        np.testing.assert_array_equal(got.bev_probs, camera_only.predict_sample(sample, withhold=["lidar"]).bev_probs)
        assert not np.array_equal(got.bev_probs, predictor.predict_sample(sample, withhold=["lidar"]).bev_probs)
        got = fused.predict_sample(sample, withhold=["cameras"])
        np.testing.assert_array_equal(got.boxes, lidar_only.predict_sample(sample).boxes)


def test_a_fallback_model_that_cannot_stand_in_is_refused(predictor):
    fused = _predictor_like(predictor)
    with pytest.raises(ValueError, match="no camera_encoder"):
        fused.set_fallback("no_lidar", _random_predictor("tiny_lidar.py", 0))
    with pytest.raises(ValueError, match="no lidar_encoder"):
        fused.set_fallback("no_cameras", _random_predictor("tiny_camera.py", 0))
    with pytest.raises(ValueError, match=r"tasks \['det'\] differ"):
        fused.set_fallback("no_cameras", _random_predictor("tiny_det.py", 0))
    with pytest.raises(ValueError, match="occupancy frame 'lidar' differs"):
        fused.set_fallback("no_cameras", _random_predictor("tiny_lidar.py", 0, ["model.head.occ.frame='lidar'"]))
    with pytest.raises(ValueError, match="this model has no camera_encoder: a fallback"):
        _random_predictor("tiny_lidar.py", 0).set_fallback("no_cameras", _random_predictor("tiny_lidar.py", 1))
    with pytest.raises(ValueError, match="fallback kind must be one of"):
        fused.set_fallback("no_radar", _random_predictor("tiny_lidar.py", 0))
    from perception.runtime import add_fallback_models

    with pytest.raises(FileNotFoundError, match="fallback no_lidar: checkpoint file not found: '/nonexistent.pth'"):
        add_fallback_models(fused, {"no_lidar": (str(CONFIG.parent / "tiny_camera.py"), "/nonexistent.pth")})
    assert fused.fallbacks == {}
