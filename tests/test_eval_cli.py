"""``perception eval`` saved mode through the CLI on the synthetic split (conftest ``synth_root``): BEV map GT
from the data layer, the OpenOccupancy protocol on hand-made nuScenes-Occupancy label files, and bad input
refused before any scoring with errors naming sample and field."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from perception.cli.main import main
from perception.constants import BEV_MAP_CLASSES, OPENOCC_GRID
from perception.eval.detection import lidar_boxes_to_submission, make_submission, write_submission
from perception.eval.results_io import save_bev

TINY = str(Path(__file__).resolve().parents[1] / "configs" / "tiny.py")


@pytest.fixture(scope="module")
def split(synth_root, tmp_path_factory):
    """``(nusc, tokens, samples)`` of the synthetic val split (data-layer samples, with BEV map GT)."""
    from nuscenes.nuscenes import NuScenes

    from perception.eval.runner import load_split_samples, split_sample_tokens

    nusc = NuScenes(version="v1.0-trainval", dataroot=str(synth_root), verbose=False)
    tokens = split_sample_tokens(nusc, "val")
    return nusc, tokens, load_split_samples(nusc, "val", tokens, str(tmp_path_factory.mktemp("index")))


def _eval(synth_root, out, *args):
    # --debug: refused input raises its exception (type and message checked here) instead of main's one line
    return main(["--debug", "eval", *args, "--dataroot", str(synth_root), "--split", "val", "--out", str(out)])


def test_saved_bev_scored_against_data_layer_gt(split, synth_root, tmp_path):
    """BEV results alone (no detection file): GT comes from the data layer's map rasterizer."""
    _, tokens, samples = split
    drop = BEV_MAP_CLASSES.index("walkway")
    for s in samples:
        probs = s.bev_map.astype(np.float32)
        probs[drop] = 0.0
        save_bev(tmp_path / "bev", s.token, probs)
    assert _eval(synth_root, tmp_path / "out", "--bev-results", str(tmp_path / "bev")) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    bev = m["bev_map"]
    assert bev["num_samples"] == len(tokens) and m["skipped_no_gt"]["bev"] == 0
    assert bev["per_class"]["walkway"] == 0.0 and "walkway" not in bev["absent_classes"]
    assert all(v == 1.0 for name, v in bev["per_class"].items() if name != "walkway" and name not in
               bev["absent_classes"])
    assert all(bev["per_class"][name] == 0.0 for name in bev["absent_classes"])  # BEVFusion: absent counts 0
    assert "detection" not in m and "occupancy" not in m


def test_openocc_protocol_on_hand_made_labels(split, synth_root, tmp_path):
    """Labels: per sample a car voxel, a vegetation voxel and a noise voxel (ignored); the last sample has no
    label file. Predictions: the labels (noise -> empty) plus one false-positive car voxel."""
    nusc, tokens, _ = split
    root, preds = tmp_path / "openocc", tmp_path / "occ"
    preds.mkdir()
    sparse = np.array([[3, 100, 200, 4], [10, 256, 256, 16], [5, 7, 9, 0]], np.int64)  # [z, y, x, label]
    for i, token in enumerate(tokens):
        rec = nusc.get("sample", token)
        if i < len(tokens) - 1:
            folder = root / f"scene_{rec['scene_token']}" / "occupancy"
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{rec['data']['LIDAR_TOP']}.npy", sparse)
        pred = np.zeros(OPENOCC_GRID.shape, np.uint8)
        pred[200, 100, 3], pred[256, 256, 10] = 4, 16
        pred[0, 0, 0] = 4  # false positive car
        np.savez_compressed(preds / f"{token}.npz", occ_labels=pred)
    assert _eval(synth_root, tmp_path / "out", "--occ-results", str(preds), "--openocc-root", str(root)) == 0
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    oo = m["occupancy_openocc"]
    assert oo["num_samples"] == len(tokens) - 1 and m["skipped_no_gt"]["occ"] == 1
    assert oo["per_class"]["car"] == pytest.approx(0.5) and oo["per_class"]["vegetation"] == 1.0
    assert oo["geometry_IoU"] == pytest.approx(2 / 3) and oo["mIoU_present"] == pytest.approx(0.75)
    assert np.isnan(oo["mIoU"]) and "empty union" in oo["mIoU_note"]  # the reference's sum / 16 with absent classes
    assert "occupancy" not in m and (tmp_path / "out" / "plots" / "openocc_iou.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no nuScenes-Occupancy label file"):  # wrong root
        _eval(synth_root, tmp_path / "out2", "--occ-results", str(preds), "--openocc-root", str(tmp_path))
    # Occ3D-shaped predictions are refused under the OpenOccupancy protocol, naming sample and field
    np.savez_compressed(preds / f"{tokens[0]}.npz", occ_labels=np.zeros((200, 200, 16), np.uint8))
    with pytest.raises(ValueError, match=f"sample {tokens[0]} field 'occ_labels'.*shape"):
        _eval(synth_root, tmp_path / "out3", "--occ-results", str(preds), "--openocc-root", str(root))


def test_openocc_grid_selects_the_protocol_in_model_mode():
    """``model.head.occ.grid='openocc'`` builds the head on OPENOCC_GRID and selects the OpenOccupancy protocol;
    model-mode eval then needs ``--openocc-root`` (and an Occ3D config refuses it)."""
    from perception.config import load_config
    from perception.eval.runner import evaluate_checkpoint, occupancy_protocol
    from perception.models import build_model

    cfg = load_config(TINY, ["model.head.occ.grid='openocc'", "data.occ_format='openocc'", "model.occ_prior_fill=None",
                             "model.occ_ground_from_map=None"])  # both change Occ3D labels only
    assert occupancy_protocol(cfg) == "openocc" and build_model(cfg.model).head.occ.grid == OPENOCC_GRID
    assert occupancy_protocol(load_config(TINY)) == "occ3d"
    with pytest.raises(ValueError, match=r"model\.head\.occ\.grid"):
        load_config(TINY, ["model.head.occ.grid='surroundocc'"])
    with pytest.raises(ValueError, match="--openocc-root given"):
        evaluate_checkpoint(TINY, None, "unused", "v1.0-trainval", "val", "unused", openocc_root="x")


def test_openocc_model_predictions_scored_by_predict_split(split, tmp_path):
    """Model-mode scoring path (predict_split -> DenseScores) with OpenOccupancy labels, on a stub predictor."""
    from perception.eval.runner import predict_split
    from perception.runtime.predictor import Prediction

    nusc, tokens, samples = split
    path = tmp_path / "label.npy"
    np.save(path, np.array([[3, 100, 200, 4]], np.int64))

    class Stub:
        def reset_memory(self):  # predict_split starts each scene's map memory over
            pass

        def predict_sample(self, sample, withhold=()):
            occ = np.zeros(OPENOCC_GRID.shape, np.uint8)
            occ[200, 100, 3] = 4
            return Prediction(np.zeros((0, 9), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), [],
                              occ_labels=occ)

    det, dense = predict_split(Stub(), samples, progress=False, openocc_labels={t: str(path) for t in tokens})
    m = dense.compute()
    assert set(det) == set(tokens) and m["occupancy_openocc"]["num_samples"] == len(tokens)
    assert m["occupancy_openocc"]["per_class"]["car"] == 1.0 and "occupancy" not in m


def _valid_submission(samples):
    box = np.array([[5.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3, 1.0, 0.0]])
    return make_submission({s.token: lidar_boxes_to_submission(s.token, box, [0.9], [0], s.lidar2global)
                            for s in samples})


BAD_INPUTS = {
    "missing sample": (lambda sub, t: sub["results"].pop(t), "sample {t}"),
    "unknown class": (lambda sub, t: sub["results"][t][0].update(detection_name="tank"),
                      "sample {t} box 0: field 'detection_name'"),
    "NaN box": (lambda sub, t: sub["results"][t][0]["translation"].__setitem__(1, float("nan")),
                "sample {t} box 0: field 'translation'"),
    "too many boxes": (lambda sub, t: sub["results"][t].extend(copy.deepcopy(sub["results"][t]) * 500),
                       "sample {t}: 501 boxes"),
    "wrong shape": (lambda sub, t: sub["results"][t][0].update(size=[1.0, 2.0]), "sample {t} box 0: field 'size'"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_results_refused_before_scoring(case, split, synth_root, tmp_path):
    _, tokens, samples = split
    sub = _valid_submission(samples)
    edit, match = BAD_INPUTS[case]
    edit(sub, tokens[1])
    write_submission(str(tmp_path / "det.json"), sub)
    with pytest.raises(ValueError, match=match.format(t=tokens[1])):
        _eval(synth_root, tmp_path / "out", "--results", str(tmp_path / "det.json"))
    assert not (tmp_path / "out").exists(), "nothing may be scored or written before validation passes"


def test_bad_dense_results_refused_before_scoring(split, synth_root, tmp_path):
    _, tokens, samples = split
    write_submission(str(tmp_path / "det.json"), _valid_submission(samples))
    for t in tokens:
        save_bev(tmp_path / "bev", t, np.zeros((6, 200, 200), np.float32))
    np.savez_compressed(tmp_path / "bev" / f"{tokens[2]}.npz", bev_probs=np.zeros((6, 100, 100), np.float16))
    with pytest.raises(ValueError, match=f"sample {tokens[2]} field 'bev_probs'.*shape"):
        _eval(synth_root, tmp_path / "out", "--results", str(tmp_path / "det.json"), "--bev-results",
              str(tmp_path / "bev"))
    assert not (tmp_path / "out").exists()
