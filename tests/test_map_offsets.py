"""The map's per-class logit offsets on frames with LiDAR (perception.runtime.map_offsets, model.map_logit_offsets):
the offset's arithmetic and that it moves the BEVFusion protocol's thresholds and nothing else; the Predictor
offsets the map of a frame with LiDAR, last, and leaves a frame without LiDAR alone; bad offsets are refused."""

import warnings

import numpy as np
import pytest

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID
from perception.eval.bev_iou import THRESHOLDS, BevIou
from perception.runtime import Predictor
from perception.runtime.map_offsets import offset_map
from test_occ_prior import CONFIG, _frames, weights  # noqa: F401  (weights: the module fixture, reused)

K = len(BEV_MAP_CLASSES)


def test_offsets_shift_each_class_in_logits():
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, (K, *BEV_MAP_GRID.shape)).astype(np.float32)  # (6, 200, 200)
    probs[0, 0, :3] = (0.5, 0.0, 1.0)
    b = [np.log(3.0), 0.0, -1.0, 2.0, 0.0, 0.5]
    out = offset_map(probs, b)
    assert out.dtype == np.float32 and out.shape == probs.shape
    assert out[0, 0, 0] == pytest.approx(0.75, abs=1e-6)  # sigmoid(0 + ln 3) = 3/4
    assert 0.0 < out[0, 0, 1] < 1e-6 and 1 - 1e-6 < out[0, 0, 2] <= 1.0  # the clipped ends stay in [0, 1]
    np.testing.assert_array_equal(out[[1, 4]], probs[[1, 4]])  # offset 0: bit for bit
    p = probs[2].astype(np.float64)
    want = 1 / (1 + (1 - p) / p * np.exp(1.0))  # sigmoid(logit(p) - 1), written another way
    np.testing.assert_allclose(out[2], want, atol=1e-6)
    order = np.argsort(probs[3], axis=None, kind="stable")  # a cell's order within its class is kept
    assert (np.diff(out[3].ravel()[order]) >= 0).all()
    with pytest.raises(ValueError, match="6 classes in the map"):
        offset_map(probs, [0.0] * 5)


def test_an_offset_is_a_threshold_shift_under_the_bevfusion_protocol():
    """IoU at protocol threshold t of the offset map = IoU at sigmoid(logit(t) - b) of the map as it was, counted
    here by hand (TP, FP, FN over the cells)."""
    rng = np.random.default_rng(1)
    gt = (rng.uniform(0, 1, (K, *BEV_MAP_GRID.shape)) < 0.3).astype(np.float32)
    probs = np.clip(0.25 * gt + rng.uniform(0, 0.6, gt.shape), 0, 1).astype(np.float32)  # under-confident
    b = np.array([1.0, 0.5, 0.0, -0.5, 1.5, 2.0])
    iou = BevIou()
    iou.update(offset_map(probs, b), gt)
    got = iou.compute()["per_threshold"]
    for k, name in enumerate(BEV_MAP_CLASSES):
        for j, t in enumerate(THRESHOLDS.astype(np.float64)):
            t0 = 1 / (1 + np.exp(-(np.log(t / (1 - t)) - b[k])))  # the threshold it stands for on the old map
            pos, g = probs[k].astype(np.float64) >= t0, gt[k] > 0
            tp, fp, fn = (pos & g).sum(), (pos & ~g).sum(), (~pos & g).sum()
            assert got[name][j] == pytest.approx(tp / (tp + fp + fn), abs=2e-4), (name, t)


def test_predictor_offsets_only_frames_with_lidar(weights, real_dir):  # noqa: F811
    options = ["model.score_threshold=0.0", "model.map_memory_s=0"]
    offsets = [0.5, -1.0, 0.0, 2.0, 1.0, -0.25]
    plain = Predictor(load_config(CONFIG, [*options, "model.map_logit_offsets=None"]), {"model": weights})
    shifted = Predictor(load_config(CONFIG, [*options, f"model.map_logit_offsets={offsets!r}"]), {"model": weights})
    full, no_lidar = _frames(real_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_full, want = plain.predict(full), plain.predict(no_lidar)
        got_full, got = shifted.predict(full), shifted.predict(no_lidar)
    np.testing.assert_array_equal(got_full.bev_probs, offset_map(want_full.bev_probs, offsets))
    assert np.abs(got_full.bev_probs - want_full.bev_probs)[0].max() > 0.01  # it did change the map
    np.testing.assert_array_equal(got.bev_probs, want.bev_probs)  # without LiDAR: as it was
    assert (got_full.occ_labels == want_full.occ_labels).all() and (got.occ_labels == want.occ_labels).all()
    assert got_full.warnings == want_full.warnings  # a calibration, not a degradation: no note


def test_bad_offsets_are_refused():
    for bad in ("[0.5]", "[0, 0, 0, 0, 0, 1e999]", "'high'", "[0, 0, 0, 0, 0, 'x']"):
        with pytest.raises(ValueError, match="model.map_logit_offsets in .*: one finite logit per map class"):
            load_config(CONFIG, [f"model.map_logit_offsets={bad}"])
    with pytest.raises(ValueError, match="needs the 'map' task"):
        load_config(CONFIG.parent / "tiny_det.py", ["model.map_logit_offsets=[0, 0, 0, 0, 0, 0]"])
