"""End to end through the data layer: devkit tables -> project index (LiDAR-frame boxes) -> submission
(global frame) -> devkit ``DetectionEval``. Ground truth fed through the whole chain must score perfectly."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def val_samples(synth_root, tmp_path_factory):
    from nuscenes.nuscenes import NuScenes

    from perception.eval.runner import load_split_samples, split_sample_tokens

    nusc = NuScenes(version="v1.0-trainval", dataroot=str(synth_root), verbose=False)
    tokens = split_sample_tokens(nusc, "val")
    return nusc, load_split_samples(nusc, "val", tokens, str(tmp_path_factory.mktemp("index")))


def _submission_from_samples(samples, drop_class=None):
    from perception.eval.detection import lidar_boxes_to_submission, make_submission

    results = {}
    for s in samples:
        # the devkit drops GT boxes without points; a prediction on one would be a false positive
        keep = s.num_lidar_pts > 0
        if drop_class is not None:
            keep &= s.labels != drop_class
        boxes = s.boxes[keep].astype(np.float64).copy()
        boxes[:, 7:9] = np.nan_to_num(boxes[:, 7:9])  # unknown GT velocity -> 0 (the devkit ignores it)
        results[s.token] = lidar_boxes_to_submission(
            s.token, boxes, np.ones(len(boxes)), s.labels[keep], s.lidar2global)
    return make_submission(results)


def _score(nusc, submission, tmp_path):
    from perception.eval.detection import evaluate_detection, write_submission

    path = write_submission(str(tmp_path / "results.json"), submission)
    return evaluate_detection(nusc, path, "val", str(tmp_path / "out"))[0]


def test_index_gt_scores_map_one_and_nds_near_one(val_samples, tmp_path):
    nusc, samples = val_samples
    labels = np.concatenate([s.labels[s.num_lidar_pts > 0] for s in samples])
    assert len(np.unique(labels)) == 10, "the synthetic val split must hold all 10 classes"
    summary = _score(nusc, _submission_from_samples(samples), tmp_path)
    assert summary["mAP"] == pytest.approx(1.0)
    assert summary["NDS"] > 0.95, summary
    for name, row in summary["per_class"].items():
        assert row["ATE"] < 0.01 and row["ASE"] < 0.01, (name, row)


def test_dropping_a_class_zeroes_only_its_ap(val_samples, tmp_path):
    nusc, samples = val_samples
    summary = _score(nusc, _submission_from_samples(samples, drop_class=0), tmp_path)
    assert summary["per_class"]["car"]["AP"] == 0.0
    others = [row["AP"] for name, row in summary["per_class"].items() if name != "car"]
    assert others == pytest.approx([1.0] * 9)
    assert summary["mAP"] == pytest.approx(0.9)
