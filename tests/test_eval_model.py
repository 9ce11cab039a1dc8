"""``perception eval`` in model mode, end to end: a freshly trained tiny checkpoint (2 steps on the conftest
``synth_root``) scored through the Predictor, in one process and under torchrun (2 CPU ranks, gloo) with
identical metrics; and the demo's rendering of one validation sample with the model's predictions."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """``configs/tiny.py`` keeping every decoded box: a 2-step model scores below the default 0.05, and
    detection scoring (and the rank comparison) should see boxes."""
    path = tmp_path_factory.mktemp("config") / "tiny_all_boxes.py"
    path.write_text(f"_base_ = [{str(REPO / 'configs' / 'tiny.py')!r}]\nmodel = dict(score_threshold=0.0)\n")
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(config, synth_root, tmp_path_factory):
    from perception.cli.main import main

    work = tmp_path_factory.mktemp("work")
    rc = main(["train", config, "--dataroot", str(synth_root), "--version", "v1.0-trainval", "--work-dir", str(work),
               "--max-steps", "2", "--device", "cpu", "--cfg-options", "train.batch_size=1"])
    assert rc == 0
    return str(work / "latest.pth")


def _eval_args(config, checkpoint, synth_root, out):
    return ["eval", config, checkpoint, "--dataroot", str(synth_root), "--version", "v1.0-trainval",
            "--split", "val", "--out", str(out)]


@pytest.fixture(scope="module")
def single(config, checkpoint, synth_root, tmp_path_factory):
    from perception.cli.main import main

    out = tmp_path_factory.mktemp("eval_single")
    # one intra-op thread, as each torchrun rank has (OMP_NUM_THREADS=1 below): the reductions then add in the
    # same order, and the two submissions can be compared bit for bit whatever thread count the suite runs with
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_eval_args(config, checkpoint, synth_root, out)) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def _finite_numbers(tree, where="metrics"):
    """Every number in ``tree`` except per-class entries (NaN there marks a class absent from GT and
    prediction, by protocol) must be finite."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if k not in ("per_class", "per_threshold", "best_threshold"):
                _finite_numbers(v, f"{where}.{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            _finite_numbers(v, f"{where}[{i}]")
    elif isinstance(tree, float):
        assert math.isfinite(tree), where


def test_model_mode_scores_all_tasks(single):
    m = json.loads((single / "metrics.json").read_text())
    assert m["num_split_samples"] == 4
    det, bev, occ = m["detection"], m["bev_map"], m["occupancy"]
    assert det["num_samples"] == 4 and 0 <= det["mAP"] <= 1 and 0 <= det["NDS"] <= 1
    assert bev["num_samples"] == 4 and 0 <= bev["mIoU"] <= 1
    assert occ["num_samples"] == 4 and 0 <= occ["mIoU"] <= 1 and 0 <= occ["ray"]["RayIoU"] <= 1
    assert m["skipped_no_gt"] == {"bev": 0, "occ": 0}
    _finite_numbers(m)
    # the devkit's own summary next to the submission it scored
    summary = json.loads((single / "detection" / "metrics_summary.json").read_text())
    assert summary["mean_ap"] == pytest.approx(det["mAP"]) and summary["nd_score"] == pytest.approx(det["NDS"])
    results = json.loads((single / "detection" / "results_nusc.json").read_text())["results"]
    assert len(results) == 4 and all(0 < len(boxes) <= 500 for boxes in results.values())
    for name in ("bev_iou", "occ_iou", "occ_confusion", "pr_car"):
        assert (single / "plots" / f"{name}.png").stat().st_size > 0, name


def test_torchrun_two_ranks_equal_single_process(config, checkpoint, synth_root, single, tmp_path):
    out = tmp_path / "eval_ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "perception", *_eval_args(config, checkpoint, synth_root, out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text()) == json.loads((single / "metrics.json").read_text())
    ddp = json.loads((out / "detection" / "results_nusc.json").read_text())
    assert ddp == json.loads((single / "detection" / "results_nusc.json").read_text())


def test_render_prediction_writes_bev_and_camera_pictures(config, checkpoint, synth_root, single):
    from perception.viz import render_prediction

    pngs = render_prediction(config, checkpoint, str(synth_root), "v1.0-trainval", str(single))
    names = sorted(Path(p).name.split("_", 1)[1] for p in pngs)
    assert names == ["pred_cameras.png", "pred_map.png", "pred_occ.png"]
    assert all(Path(p).stat().st_size > 10_000 for p in pngs)


def test_pictures_show_only_the_boxes_above_the_display_score():
    import numpy as np

    from perception.runtime.predictor import Prediction
    from perception.viz import shown_boxes

    scores = np.array([0.9, 0.01, 0.2, 0.19], np.float32)
    boxes = np.arange(36, dtype=np.float32).reshape(4, 9)
    pred = Prediction(boxes=boxes, scores=scores, labels=np.array([0, 1, 2, 3]), class_names=[], bev_probs=None,
                      occ_labels=None)
    shown, labels = shown_boxes(pred, 0.2)
    assert labels.tolist() == [0, 2] and np.array_equal(shown, boxes[[0, 2]])
    assert len(shown_boxes(pred, 1.0)[0]) == 0


def test_cfg_options_reach_the_evaluated_model(config, checkpoint, synth_root, tmp_path):
    """``--cfg-options`` rebuild the evaluated model as trained with them: a cap on the boxes shows in the
    submission, and an option the checkpoint was not trained with fails at weight loading, not silently."""
    from perception.cli.main import main

    out = tmp_path / "capped"
    assert main(_eval_args(config, checkpoint, synth_root, out) + ["--cfg-options", "model.max_boxes=3"]) == 0
    results = json.loads((out / "detection" / "results_nusc.json").read_text())["results"]
    assert len(results) == 4 and all(0 < len(boxes) <= 3 for boxes in results.values())
    # a head the checkpoint has no weights for: the Predictor names the checkpoint, the config and the keys
    # (--debug: the exception itself, not main's one-line report of it)
    with pytest.raises(ValueError, match="does not fit the model of .*offset_head"):
        main(["--debug", *_eval_args(config, checkpoint, synth_root, tmp_path / "x"), "--cfg-options",
              "model.head.det.offset_head=True"])


def test_withheld_sensors_are_scored_and_counted(config, checkpoint, synth_root, single, tmp_path):
    """``perception eval --withhold ... --region front``: the degraded-sensor rows of the learning benchmark.
    metrics.json says what was withheld and where it was scored, and counts every sample as degraded, by
    reason; the full run counts none."""
    from perception.cli.main import main

    out = tmp_path / "no_lidar"
    args = [*_eval_args(config, checkpoint, synth_root, out), "--withhold", "lidar", "CAM_BACK", "--region", "front"]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    full = json.loads((single / "metrics.json").read_text())
    assert (m["region"], full["region"]) == ("front", "all")
    assert "ray" not in m["occupancy"] and "ray" in full["occupancy"]  # RayIoU has no region variant
    assert m["withheld"] == ["CAM_BACK", "lidar"] and full["withheld"] == []
    assert m["degraded"]["samples"] == m["degraded"]["inferred"] == 4
    assert m["degraded"]["reasons"]["lidar withheld"] == 4 and m["degraded"]["reasons"]["CAM_BACK withheld"] == 4
    assert full["degraded"] == {"samples": 0, "inferred": 4, "reasons": {}}
    assert m["bev_map"]["mIoU"] != full["bev_map"]["mIoU"] or m["occupancy"]["mIoU"] != full["occupancy"]["mIoU"]
