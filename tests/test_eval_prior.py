"""The no-input baseline (perception.eval.prior): per-cell mean BEV rasters, per-voxel most frequent seen
occupancy label, no boxes; written in the saved-results format and scored by the same code as a model."""

import numpy as np
import pytest

from perception.constants import BEV_MAP_GRID, OCC3D_FREE, OCC3D_GRID
from perception.data.sample import Sample
from perception.eval.prior import fit_prior, write_prior_results
from perception.eval.results_io import load_bev, load_occ


def _sample(tmp_path, i, bev, sem, seen):
    path = tmp_path / f"occ{i}.npz"
    mask = np.zeros(OCC3D_GRID.shape, bool)
    mask[seen] = True
    np.savez(path, semantics=sem, mask_lidar=mask.astype(np.uint8), mask_camera=mask.astype(np.uint8))
    return Sample(token=f"t{i}", lidar_path="x", lidar2ego=np.eye(4), ego2global=np.eye(4), occ_path=str(path),
                  _bev_map_fn=lambda s, b=bev: b)


def test_prior_is_the_label_statistics(tmp_path):
    samples = []
    for i, (on, label) in enumerate([(1, 5), (1, 5), (0, 7)]):
        bev = np.zeros((6,) + BEV_MAP_GRID.shape, np.uint8)
        bev[2, 10, 20] = on
        bev[0] = 1  # drivable everywhere in every sample
        sem = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
        sem[1, 1, 1] = label
        sem[3, 3, 3] = 9  # never seen by the cameras: must not count
        samples.append(_sample(tmp_path, i, bev, sem, (slice(0, 2), slice(0, 2), slice(0, 2))))
    samples.append(Sample(token="nolabels", lidar_path="x", lidar2ego=np.eye(4), ego2global=np.eye(4)))
    prior = fit_prior(samples)
    assert (prior.bev_samples, prior.occ_samples) == (3, 3)
    assert prior.bev_probs[2, 10, 20] == pytest.approx(2 / 3) and prior.bev_probs[2, 10, 21] == 0
    assert (prior.bev_probs[0] == 1).all()
    assert prior.occ_labels[1, 1, 1] == 5  # the mode of 5, 5, 7
    assert prior.occ_labels[0, 0, 0] == OCC3D_FREE and prior.occ_labels[3, 3, 3] == OCC3D_FREE

    paths = write_prior_results(prior, ["a", "b"], tmp_path / "out")
    assert np.allclose(load_bev(paths["bev_results"], "b"), prior.bev_probs, atol=1e-3)  # float16 on disk
    assert (load_occ(paths["occ_results"], "a") == prior.occ_labels).all()


def test_prior_scores_through_the_saved_results_path(synth_root, tmp_path):
    from nuscenes.nuscenes import NuScenes

    from perception.eval.runner import load_split_samples, score_saved, split_sample_tokens

    nusc = NuScenes(version="v1.0-trainval", dataroot=str(synth_root), verbose=False)
    train = load_split_samples(nusc, "train", split_sample_tokens(nusc, "train"), str(tmp_path / "index"))
    prior = fit_prior(train)
    tokens = split_sample_tokens(nusc, "val")
    paths = write_prior_results(prior, tokens, tmp_path / "prior")
    metrics = score_saved(nusc, "val", str(tmp_path / "eval"), paths["results"], paths["bev_results"],
                          paths["occ_results"], with_rays=False)
    assert metrics["detection"]["mAP"] == 0.0 and metrics["detection"]["NDS"] == 0.0
    # the drivable area is where the road is in every scene: the mean raster finds much of it
    assert 0.2 < metrics["bev_map"]["per_class"]["drivable_area"] < 1.0
    assert 0.0 < metrics["occupancy"]["mIoU"] < 0.5
