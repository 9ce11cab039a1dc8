"""End to end through the data layer: devkit tables -> project index (LiDAR-frame boxes) -> submission
(global frame) -> devkit ``DetectionEval``. Ground truth fed through the whole chain must score perfectly."""

import copy

import numpy as np
import pytest
from nuscenes.eval.common.config import config_factory

from perception.constants import DETECTION_CLASSES


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


def _ahead(sample):
    """``(M,)`` bool: the sample's GT box centres ahead of the ego (ego x > 0), through its lidar2ego."""
    centres = np.c_[sample.boxes[:, :3], np.ones(len(sample.boxes))] @ sample.lidar2ego.T  # LiDAR -> ego
    return centres[:, 0] > 0


def test_front_region_scores_only_the_boxes_ahead(val_samples, tmp_path):
    """``region='front'``: the devkit's boxes are rotated into the ego frame through the ego pose; the GT
    with every box behind the ego removed scores mAP 1 there (and below 1 over the whole grid), the GT with
    every box ahead removed scores 0 there."""
    from perception.eval.detection import evaluate_detection, write_submission

    nusc, samples = val_samples
    full = _submission_from_samples(samples)
    front_only, rear_only = copy.deepcopy(full), copy.deepcopy(full)
    for s in samples:
        keep = s.num_lidar_pts > 0
        ahead = _ahead(s)[keep]
        boxes = full["results"][s.token]
        front_only["results"][s.token] = [b for b, a in zip(boxes, ahead, strict=True) if a]
        rear_only["results"][s.token] = [b for b, a in zip(boxes, ahead, strict=True) if not a]
    assert sum(map(len, front_only["results"].values())) and sum(map(len, rear_only["results"].values()))

    def score(submission, region):
        path = write_submission(str(tmp_path / f"{region}_{id(submission)}.json"), submission)
        return evaluate_detection(nusc, path, "val", str(tmp_path / "out"), region=region)[0]

    # the classes with a scored GT box ahead (the devkit's class ranges, ego xy distance)
    class_range = config_factory("detection_cvpr_2019").class_range
    present = set()
    for s in samples:
        keep = (s.num_lidar_pts > 0) & _ahead(s)
        centres = np.c_[s.boxes[:, :3], np.ones(len(s.boxes))] @ s.lidar2ego.T
        for label, xy in zip(s.labels[keep], centres[keep, :2], strict=True):
            if np.hypot(*xy) < class_range[DETECTION_CLASSES[label]]:
                present.add(DETECTION_CLASSES[label])
    assert len(present) >= 3
    ahead = score(front_only, "front")["per_class"]
    assert {c for c, row in ahead.items() if row["AP"] == pytest.approx(1.0)} == present
    assert all(row["AP"] == 0.0 for c, row in ahead.items() if c not in present)  # no GT there: AP 0 (devkit)
    assert score(front_only, "all")["mAP"] < 0.9
    assert score(rear_only, "front")["mAP"] == 0.0


def test_front_region_masks_the_dense_grids(val_samples):
    """BEV cells (LiDAR frame, moved by lidar2ego) and Occ3D voxels (ego frame) ahead of the ego only."""
    from perception.constants import BEV_MAP_GRID, OCC3D_GRID
    from perception.eval.region import bev_region_mask, occ_region_mask

    _, samples = val_samples
    lidar2ego = samples[0].lidar2ego
    mask = bev_region_mask("front", lidar2ego)
    x, y = np.meshgrid(BEV_MAP_GRID.centers(0), BEV_MAP_GRID.centers(1), indexing="ij")
    ego = np.stack([x, y, np.zeros_like(x), np.ones_like(x)], -1) @ lidar2ego.T
    assert (mask == (ego[..., 0] > 0)).all() and 0.4 < mask.mean() < 0.6
    # the LiDAR looks along its +y: the cells ahead are (nearly) those of positive LiDAR y
    assert (mask == (y > 0)).mean() > 0.95
    occ = occ_region_mask("front")
    assert occ.shape == OCC3D_GRID.shape and occ[:100].sum() == 0 and occ[100:].all()
    assert bev_region_mask("all", lidar2ego).all() and occ_region_mask("all").all()


def test_front_region_occupancy_counts_only_the_voxels_ahead(val_samples):
    """Both Occ3D numbers, the camera-mask mIoU and the all-voxel geometry IoU, see only the voxels ahead
    (the geometry IoU once counted the whole grid under region='front')."""
    from perception.constants import OCC3D_FREE
    from perception.eval.dense import DenseScores

    _, samples = val_samples
    sample = next(s for s in samples if s.occupancy is not None)
    gt = sample.occupancy.semantics  # (200, 200, 16) ego frame; x index >= 100 is ahead
    assert (gt[100:] != OCC3D_FREE).any() and (gt[:100] != OCC3D_FREE).any()
    right_ahead = np.where(np.arange(200)[:, None, None] >= 100, gt, OCC3D_FREE).astype(np.uint8)
    wrong_ahead = np.where(np.arange(200)[:, None, None] >= 100, OCC3D_FREE, gt).astype(np.uint8)

    def occ(pred, region):
        scores = DenseScores(with_rays=False, region=region)
        scores.add(sample, occ_labels=pred)
        return scores.compute()["occupancy"]

    assert occ(right_ahead, "front")["geometry_IoU"] == 1.0 and occ(right_ahead, "front")["mIoU"] == 1.0
    assert occ(wrong_ahead, "front")["geometry_IoU"] == 0.0 and occ(wrong_ahead, "front")["mIoU"] == 0.0
    assert 0.0 < occ(right_ahead, "all")["geometry_IoU"] < 1.0 and 0.0 < occ(wrong_ahead, "all")["geometry_IoU"] < 1.0
