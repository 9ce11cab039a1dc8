"""The occupancy prior for frames without LiDAR (perception.runtime.occ_prior, model.occ_prior_fill): the fill
touches only voxels the model calls free and only the fill's classes; a fusion model's frame with LiDAR is
unchanged bit for bit; one without LiDAR (live or withheld in evaluation) is the model's prediction filled,
with a note; calibrate-norms stores the training split's prior; a prior that does not fit is refused by name."""

import warnings

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.data.io import load_image, load_points
from perception.data.occupancy import most_frequent_labels
from perception.data.sample import CameraView, Sample
from perception.models import build_model
from perception.runtime import CameraFrame, Frame, Predictor
from perception.runtime.occ_prior import OCC_PRIOR_KEY, check_occ_prior, fill_classes, fill_free
from test_predictor import CONFIG, IMAGE, L2C, LIDAR, K  # the same real frame and camera rig

DRIVEABLE, SIDEWALK, MANMADE = (OCC3D_CLASSES.index(n) for n in ("driveable_surface", "sidewalk", "manmade"))


def prior_labels():
    """A prior with a ground layer (driveable, a sidewalk strip) and a manmade wall, free elsewhere."""
    labels = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)  # (200, 200, 16)
    labels[:, :, 1] = DRIVEABLE
    labels[:, 150:, 1] = SIDEWALK
    labels[:, 190:, 2:8] = MANMADE
    return labels


def test_fill_takes_the_prior_only_where_the_model_says_free():
    pred = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    pred[10, 10, 1] = 4  # a car where the prior has road: the model's label stays
    pred[20, 20, 5] = 16  # vegetation where the prior is free: stays
    prior = prior_labels()
    ground, n = fill_free(pred, prior, fill_classes("ground"))
    assert ground[10, 10, 1] == 4 and ground[20, 20, 5] == 16
    assert ground[0, 0, 1] == DRIVEABLE and ground[0, 160, 1] == SIDEWALK
    assert (ground[:, 190:, 2:8] == OCC3D_FREE).all()  # manmade is not a ground class
    assert n == 200 * 200 - 1  # every ground voxel of the prior but the car's
    everything, n_all = fill_free(pred, prior, fill_classes("all"))
    assert (everything[:, 190:, 2:8] == MANMADE).all() and n_all == n + 200 * 10 * 6
    assert (pred == OCC3D_FREE).sum() == pred.size - 2  # the input is not changed
    with pytest.raises(ValueError, match="model.occ_prior_fill must be None or one of"):
        fill_classes("road")


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(0)
    state = build_model(load_config(CONFIG).model).state_dict()
    state["head.occ.head.mlp.4.bias"][OCC3D_FREE] += 0.2  # a random head that calls some voxels free (~1/4)
    return state


def _frames(real_dir):
    points = load_points(str(real_dir / LIDAR))[:, :4]
    cams = {"CAM_BACK_LEFT": CameraFrame(load_image(str(real_dir / IMAGE)), K, L2C)}
    full = Frame(points=points, cameras=cams, lidar2ego=np.eye(4), timestamp=1)
    no_lidar = Frame(points=np.zeros((0, 4), np.float32), cameras=cams, lidar2ego=np.eye(4), timestamp=2)
    return full, no_lidar


def test_predictor_fills_only_frames_without_lidar(weights, real_dir):
    options = ["model.score_threshold=0.0", "model.map_memory_s=0", "model.occ_ground_from_map=None"]  # the fill alone
    plain = Predictor(load_config(CONFIG, options), {"model": weights})
    ckpt = {"model": weights, OCC_PRIOR_KEY: {"labels": torch.from_numpy(prior_labels()), "samples": 3}}
    filled = {mode: Predictor(load_config(CONFIG, [*options, f"model.occ_prior_fill={mode!r}"]), ckpt)
              for mode in ("ground", "all")}
    full, no_lidar = _frames(real_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_full, want_no_lidar = plain.predict(full), plain.predict(no_lidar)
        for mode, predictor in filled.items():
            got_full, got_no_lidar = predictor.predict(full), predictor.predict(no_lidar)
            assert (got_full.occ_labels == want_full.occ_labels).all()  # with LiDAR: the model alone
            np.testing.assert_array_equal(got_full.bev_probs, want_full.bev_probs)
            assert not any("training prior" in w for w in got_full.warnings)
            expected, n = fill_free(want_no_lidar.occ_labels, prior_labels(), fill_classes(mode))
            assert n > 0 and (got_no_lidar.occ_labels == expected).all()
            np.testing.assert_array_equal(got_no_lidar.bev_probs, want_no_lidar.bev_probs)  # the map is not touched
            assert f"occupancy: {n} free voxels filled from the training prior (model.occ_prior_fill={mode})" \
                in got_no_lidar.warnings
        # evaluation with the LiDAR withheld: the same fill
        sample = Sample(token="s", lidar_path=str(real_dir / LIDAR), lidar2ego=np.eye(4), ego2global=np.eye(4),
                        num_sweeps=1, cameras={"CAM_BACK_LEFT": CameraView(name="CAM_BACK_LEFT",
                                                                           path=str(real_dir / IMAGE),
                                                                           intrinsics=K, lidar2cam=L2C)})
        want = plain.predict_sample(sample, withhold=("lidar",)).occ_labels
        got = filled["ground"].predict_sample(sample, withhold=("lidar",)).occ_labels
        assert (got == fill_free(want, prior_labels(), fill_classes("ground"))[0]).all()
        assert (filled["ground"].predict_sample(sample).occ_labels == plain.predict_sample(sample).occ_labels).all()


def test_a_prior_that_does_not_fit_is_refused_by_name(weights):
    cfg = load_config(CONFIG, ["model.occ_prior_fill='ground'"])
    bad = {"labels": torch.zeros((200, 200, 8), dtype=torch.uint8)}
    with pytest.raises(ValueError, match=r"occ_prior.labels must be uint8 \(200, 200, 16\)"):
        Predictor(cfg, {"model": weights, OCC_PRIOR_KEY: bad})
    too_high = torch.full(OCC3D_GRID.shape, OCC3D_FREE + 1, dtype=torch.uint8)
    with pytest.raises(ValueError, match="occ_prior.labels has value 18 > 17"):
        check_occ_prior({"labels": too_high})
    with pytest.warns(UserWarning, match="has no 'occ_prior' .perception calibrate-norms adds it."):
        assert Predictor(cfg, {"model": weights}).occ_fill is None
    with pytest.raises(ValueError, match="model.occ_prior_fill must be one of"):
        load_config(CONFIG, ["model.occ_prior_fill='road'"])
    for other in ("tiny_camera.py", "tiny_lidar.py", "tiny_openocc.py"):  # one sensor, or not the Occ3D grid
        with pytest.raises(ValueError, match=f"model.occ_prior_fill in .*{other}: it changes a fusion model"):
            load_config(CONFIG.parent / other, ["model.occ_prior_fill='ground'"])
    # no occupancy task: nothing to fill (tiny_det inherits tiny's fill)
    det = load_config(CONFIG.parent / "tiny_det.py")
    assert det.model.occ_prior_fill == "all" and Predictor(det, None).occ_fill is None


def test_calibrate_norms_stores_the_training_splits_prior(synth_root, tmp_path, weights, capsys):
    from nuscenes.nuscenes import NuScenes

    from perception.cli.main import main
    from perception.eval.runner import load_split_samples, split_sample_tokens
    from perception.training.checkpoint import save_checkpoint

    src, out = tmp_path / "model.pth", tmp_path / "calibrated.pth"
    save_checkpoint(src, {"model": weights})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["calibrate-norms", str(CONFIG), str(src), "--dataroot", str(synth_root), "--split", "val",
                     "--samples", "1", "--conditions", "no_lidar", "--out", str(out)]) == 0
    assert not [w for w in caught if "occ_prior" in str(w.message)]  # not "missing" while it is being written
    assert "occupancy prior of" in capsys.readouterr().out
    entry = torch.load(out, weights_only=True)[OCC_PRIOR_KEY]
    nusc = NuScenes(version="v1.0-trainval", dataroot=str(synth_root), verbose=False)
    samples = load_split_samples(nusc, "val", split_sample_tokens(nusc, "val"), str(tmp_path / "index"))
    labels, used = most_frequent_labels(s.occupancy for s in samples)
    assert entry["samples"] == used == len(samples) and entry["split"] == "val"
    assert (entry["labels"].numpy() == labels).all() and (labels != OCC3D_FREE).any()
