"""Predictor: output types/shapes, degraded inputs (no LiDAR, no cameras, NaN), calibration cache, and that
predict_sample (dataset Sample) and predict (live frame) share one preprocessing."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.constants import DETECTION_CLASSES, OCC3D_FREE
from perception.data.sample import CameraView, Sample
from perception.models import build_model
from perception.runtime import Predictor
from perception.training.checkpoint import save_checkpoint

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny.py"
LIDAR = "mmdetection3d/tests/data/nuscenes/samples/LIDAR_TOP/n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin"
IMAGE = "mmdetection3d/tests/data/nuscenes/samples/CAM_BACK_LEFT/n015-2018-07-18-11-07-57+0800__CAM_BACK_LEFT__1531883530447423.jpg"
K = np.array([[1260.0, 0.0, 800.0], [0.0, 1260.0, 450.0], [0.0, 0.0, 1.0]])
# LiDAR (x right, y forward, z up) -> a camera looking along LiDAR +y: rows are the camera x, y, z axes.
L2C = np.eye(4)
L2C[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    cfg = load_config(CONFIG, ["model.score_threshold=0.0"])
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    save_checkpoint(path, {"model": build_model(cfg.model).state_dict()})
    return Predictor(cfg, path, device="cpu")


@pytest.fixture(scope="module")
def real(real_dir):
    from perception.data.io import load_image, load_points

    return load_points(str(real_dir / LIDAR))[:, :4], load_image(str(real_dir / IMAGE)), real_dir


def frame(points, image=None):
    cams = {} if image is None else {"CAM_BACK_LEFT": {"image": image, "intrinsics": K, "lidar2cam": L2C}}
    return {"points": points, "cameras": cams, "timestamp": 1}


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


def test_lidar_and_camera_frame_and_calibration_cache(predictor, real):
    points, image, _ = real
    first = predictor.predict(frame(points, image))
    check(first)
    assert len(first.boxes) > 0 and first.warnings == [] and first.timings_ms["model"] > 0
    hits = predictor.calibration_cache_hits
    again = predictor.predict(frame(points, image))
    assert predictor.calibration_cache_hits == hits + 1
    np.testing.assert_allclose(again.bev_probs, first.bev_probs, atol=1e-5)


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
    with pytest.raises(ValueError, match="points"):
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
