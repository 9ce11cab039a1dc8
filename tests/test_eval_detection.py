"""GT through the submission conversion, scored by the devkit on the synthetic split (conftest ``synth_root``).

GT boxes come from the devkit annotations, mapped into the LiDAR frame by ``global_boxes_to_lidar`` and sent
back through ``lidar_boxes_to_submission``: a conversion bug shows up as lost AP or TP errors.
"""

import json

import numpy as np
import pytest

from perception.constants import CLASS_RANGE, DETECTION_CLASSES
from perception.eval.detection import (
    evaluate_detection,
    global_boxes_to_lidar,
    lidar_boxes_to_submission,
    make_submission,
    write_submission,
)
from perception.eval.results_io import save_bev, save_occ
from perception.eval.runner import load_split_samples, split_sample_tokens


@pytest.fixture(scope="module")
def split_gt(synth_root, tmp_path_factory):
    """``(nusc, split, {token: (boxes (M, 9) LiDAR, labels, lidar2global)})`` for the split of the synth scenes."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.splits import create_splits_scenes

    nusc = NuScenes(version="v1.0-trainval", dataroot=str(synth_root), verbose=False)
    names = {s["name"] for s in nusc.scene}
    split = next(k for k in ("val", "train") if names & set(create_splits_scenes()[k]))
    gt = {}
    tokens = split_sample_tokens(nusc, split)
    for s in load_split_samples(nusc, split, tokens, str(tmp_path_factory.mktemp("index"))):
        anns = [nusc.get("sample_annotation", a) for a in nusc.get("sample", s.token)["anns"]]
        # the devkit drops GT without LiDAR/radar points; a prediction on one would be a false positive
        # and GT beyond the class range (ego distance in the global xy plane, as its filter_eval_boxes)
        ego_xy = s.ego2global[:2, 3]
        anns = [a for a in anns if category_to_detection_name(a["category_name"]) is not None
                and a["num_lidar_pts"] + a["num_radar_pts"] > 0
                and np.hypot(*(np.array(a["translation"][:2]) - ego_xy))
                < CLASS_RANGE[category_to_detection_name(a["category_name"])]]
        vel = [np.nan_to_num(nusc.box_velocity(a["token"])[:2]) for a in anns]  # unknown -> 0 (GT stays NaN)
        boxes = global_boxes_to_lidar([a["translation"] for a in anns], [a["size"] for a in anns],
                                      [a["rotation"] for a in anns], vel, s.lidar2global)
        labels = np.array([DETECTION_CLASSES.index(category_to_detection_name(a["category_name"])) for a in anns])
        gt[s.token] = (boxes, labels.astype(np.int64), s.lidar2global)
    assert sum(len(b) for b, _, _ in gt.values()) > 0, "synthetic split has no detection boxes"
    return nusc, split, gt


def _score(split_gt, tmp_path, edit=lambda boxes, labels: (boxes, labels)):
    nusc, split, gt = split_gt
    results = {}
    for token, (boxes, labels, l2g) in gt.items():
        b, lab = edit(boxes.copy(), labels.copy())
        results[token] = lidar_boxes_to_submission(token, b, np.ones(len(b)), lab, l2g)
    path = write_submission(str(tmp_path / "results.json"), make_submission(results))
    return evaluate_detection(nusc, path, split, str(tmp_path / "out"))[0]


@pytest.fixture(scope="module")
def perfect(split_gt, tmp_path_factory):
    return _score(split_gt, tmp_path_factory.mktemp("perfect"))


def _present(split_gt):
    """Classes with at least one GT box in the split (the devkit gives the others AP 0, errors 1)."""
    labels = np.concatenate([lab for _, lab, _ in split_gt[2].values()])
    return [c for i, c in enumerate(DETECTION_CLASSES) if (labels == i).any()]


def _devkit_perfect_map(split_gt):
    """mAP of a perfect detector: the devkit averages over all 10 classes and gives AP 0 to a class without GT."""
    return len(_present(split_gt)) / len(DETECTION_CLASSES)


def test_gt_through_conversion_scores_perfectly(split_gt, perfect):
    present = _present(split_gt)
    assert len(present) >= 2, f"synthetic split has too few classes: {present}"
    for c in present:
        row = perfect["per_class"][c]
        assert row["AP"] == pytest.approx(1.0), (c, row)
        assert row["ATE"] < 1e-3 and row["ASE"] < 1e-3, (c, row)
        assert c == "traffic_cone" or row["AOE"] < 1e-3, (c, row)
    assert perfect["mAP"] == pytest.approx(_devkit_perfect_map(split_gt))


def test_centres_shifted_1_5m_lose_only_tight_thresholds(split_gt, perfect, tmp_path):
    def shift(boxes, labels):
        # 1.5 m across the line of sight: the distance to the sensor barely changes, so no box crosses the
        # devkit's class-range boundary (that would turn a match into a miss at every threshold)
        r = np.linalg.norm(boxes[:, :2], axis=1, keepdims=True)
        boxes[:, :2] += 1.5 * np.stack([-boxes[:, 1], boxes[:, 0]], axis=1) / np.maximum(r, 1e-6)
        return boxes, labels

    s = _score(split_gt, tmp_path, shift)
    for c in _present(split_gt):
        row = s["per_class"][c]
        assert row["AP@0.5"] == 0.0, (c, row)
        # barriers and cones stand in rows ~2 m apart: a shifted box can come within 1 m of its neighbour
        assert row["AP@1.0"] == 0.0 or (c in ("barrier", "traffic_cone") and row["AP@1.0"] < 0.1), (c, row)
        assert row["AP@2.0"] == pytest.approx(1.0) and row["AP@4.0"] == pytest.approx(1.0), c
    assert all(s["per_class"][c]["ATE"] == pytest.approx(1.5, abs=0.01) for c in _present(split_gt))


def test_yaw_flipped_by_pi_raises_aoe_where_it_counts(split_gt, perfect, tmp_path):
    def flip(boxes, labels):
        boxes[:, 6] += np.pi
        return boxes, labels

    s = _score(split_gt, tmp_path, flip)
    assert s["mAP"] == pytest.approx(perfect["mAP"])
    for c in _present(split_gt):
        aoe = s["per_class"][c]["AOE"]
        if c == "barrier":  # devkit compares barrier yaw modulo pi
            assert aoe < 1e-3
        elif c != "traffic_cone":  # cones have no orientation error
            assert aoe == pytest.approx(np.pi, abs=1e-3), c


def test_dropping_one_class_zeroes_only_its_ap(split_gt, perfect, tmp_path):
    present = [c for c in _present(split_gt) if c != "traffic_cone"] or _present(split_gt)
    drop = DETECTION_CLASSES.index(present[0])

    def without(boxes, labels):
        keep = labels != drop
        return boxes[keep], labels[keep]

    s = _score(split_gt, tmp_path, without)
    assert s["per_class"][present[0]]["AP"] == 0.0
    for c in present[1:]:
        assert s["per_class"][c]["AP"] == pytest.approx(perfect["per_class"][c]["AP"]), c


def test_cli_scores_gt_as_predictions_for_all_tasks(split_gt, synth_root, tmp_path):
    from perception.cli.main import main
    from perception.data.occupancy import load_occ3d
    from perception.eval.runner import load_split_samples

    nusc, split, gt = split_gt
    results = {t: lidar_boxes_to_submission(t, b, np.ones(len(b)), lab, l2g) for t, (b, lab, l2g) in gt.items()}
    write_submission(str(tmp_path / "det.json"), make_submission(results))
    samples = load_split_samples(nusc, split, list(gt), str(tmp_path / "out" / "index"))
    for s in samples:
        save_bev(tmp_path / "bev", s.token, s.bev_map.astype(np.float32))
        save_occ(tmp_path / "occ", s.token, load_occ3d(s.occ_path).semantics)
    rc = main(["eval", "--results", str(tmp_path / "det.json"), "--bev-results", str(tmp_path / "bev"),
               "--occ-results", str(tmp_path / "occ"), "--dataroot", str(synth_root), "--split", split,
               "--out", str(tmp_path / "out")])
    assert rc == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["detection"]["mAP"] == pytest.approx(_devkit_perfect_map(split_gt))
    bev = m["bev_map"]
    assert bev["mIoU_present"] == 1.0 and bev["num_samples"] == len(gt)
    assert bev["mIoU"] == pytest.approx(1 - len(bev["absent_classes"]) / 6)  # BEVFusion: absent classes count 0
    assert m["occupancy"]["mIoU"] == 1.0 and m["occupancy"]["ray"]["RayIoU"] == 1.0
    assert (tmp_path / "out" / "plots" / "occ_confusion.png").stat().st_size > 0
    assert (tmp_path / "out" / "plots" / "pr_car.png").stat().st_size > 0


def test_submission_without_any_box_scores_zero(split_gt, tmp_path):
    """An untrained model may keep no box at all: the devkit's range filter cannot handle that, the
    evaluation must (AP 0 and TP errors 1 everywhere, as the devkit's matching gives for no predictions)."""
    s = _score(split_gt, tmp_path, lambda boxes, labels: (boxes[:0], labels[:0]))
    assert s["mAP"] == 0.0 and s["NDS"] == 0.0
    assert all(row["AP"] == 0.0 and row["ATE"] == 1.0 for row in s["per_class"].values())
    assert (tmp_path / "out" / "metrics_summary.json").is_file()
