"""The occupancy's ground from the BEV map on frames without LiDAR (perception.runtime.occ_ground,
model.occ_ground_from_map): the ego-frame columns find their LiDAR-frame map cells on a real nuScenes calibration;
only ground voxels change, drivable area before walkway, at the threshold; the Predictor relabels a frame without
LiDAR after the map memory and notes it, and leaves a frame with LiDAR alone; configs that cannot use it refuse it."""

import warnings

import numpy as np
import pytest

from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
from perception.geometry import make_transform
from perception.runtime import Predictor
from perception.runtime.occ_ground import ground_from_map
from test_map_memory import SOCC
from test_occ_prior import CONFIG, _frames, weights  # noqa: F401  (weights: the module fixture, reused)

DRIVE, SIDEWALK, TERRAIN, CAR = (OCC3D_CLASSES.index(n) for n in ("driveable_surface", "sidewalk", "terrain", "car"))
DRIVABLE_AREA, WALKWAY = BEV_MAP_CLASSES.index("drivable_area"), BEV_MAP_CLASSES.index("walkway")


def _cells(xy, grid):
    return np.floor((xy - np.array(grid.lower[:2])) / np.array(grid.size[:2])).astype(np.int64)  # (N, 2)


def test_columns_find_their_map_cells_on_a_real_calibration(real_dir):
    """Real lidarseg points of a nuScenes sweep (SurroundOcc fixture, LiDAR frame): the driveable-surface points
    paint the map (LiDAR frame); every driveable and terrain point, moved into the ego frame by the real
    lidar2ego (LiDAR yawed ~90 deg, 0.94 m ahead, 1.84 m up), marks its Occ3D voxel 'terrain'. The voxels of the
    road must come back as driveable surface and those of the terrain stay terrain; with the transform left out
    or inverted they do not."""
    d = real_dir / SOCC
    points = np.load(d / "pc_seman/pc_seman_0.npy")  # (N, 4): x, y, z (LiDAR frame, m), Occ3D class
    cs = np.load(d / "calib/lidar_calibrated_sensor0.npy", allow_pickle=True).item()
    lidar2ego = make_transform(cs["rotation"], cs["translation"])
    labels = points[:, 3].astype(np.int64)
    probs = np.zeros((len(BEV_MAP_CLASSES), *BEV_MAP_GRID.shape), np.float32)  # (6, 200, 200) LiDAR frame
    road = _cells(points[labels == DRIVE, :2], BEV_MAP_GRID)
    road = road[((road >= 0) & (road < 200)).all(1)]
    probs[DRIVABLE_AREA, road[:, 0], road[:, 1]] = 1.0
    ego = points[:, :3] @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]  # (N, 3) ego frame, metres
    vox = np.floor((ego - np.array(OCC3D_GRID.lower)) / np.array(OCC3D_GRID.size)).astype(np.int64)
    keep = ((vox >= 0) & (vox < np.array(OCC3D_GRID.shape))).all(1) & np.isin(labels, (DRIVE, TERRAIN))
    occ = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    occ[tuple(vox[keep].T)] = TERRAIN
    road_vox = {tuple(v) for v in vox[keep & (labels == DRIVE)]}
    terrain_vox = {tuple(v) for v in vox[keep & (labels == TERRAIN)]} - road_vox
    assert len(road_vox) > 500 and len(terrain_vox) > 500

    def driveable_share(transform):
        out, changed = ground_from_map(occ, probs, transform, 0.5)
        assert changed == int((out != occ).sum()) and (out[occ == OCC3D_FREE] == OCC3D_FREE).all()
        return (np.mean([out[v] == DRIVE for v in road_vox]), np.mean([out[v] == DRIVE for v in terrain_vox]))

    road_share, terrain_share = driveable_share(lidar2ego)
    assert road_share > 0.8 and terrain_share < 0.05  # (measured 0.86 and 0.006: voxel centres vs point cells)
    assert driveable_share(np.eye(4))[0] < 0.3 and driveable_share(np.linalg.inv(lidar2ego))[0] < 0.4


def test_only_ground_voxels_change_drivable_before_walkway_at_the_threshold():
    occ = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)  # (200, 200, 16) ego frame
    occ[:, :, 2] = TERRAIN  # a ground layer
    occ[100, 100, 3] = CAR  # a car on it
    probs = np.zeros((len(BEV_MAP_CLASSES), *BEV_MAP_GRID.shape), np.float32)
    probs[DRIVABLE_AREA, :, :100] = 0.6  # drivable at LiDAR y < 0
    probs[WALKWAY, :, 50:150] = 0.9  # walkway across y in [-25, 25) m: below drivable where they overlap
    out, changed = ground_from_map(occ, probs, np.eye(4), 0.5)  # lidar2ego identity: ego x, y = LiDAR x, y
    y = np.array(OCC3D_GRID.centers(1))  # (200,) column y, metres
    assert (out[:, y < 0, 2] == DRIVE).all() and (out[:, (y >= 0) & (y < 25), 2] == SIDEWALK).all()
    assert (out[:, y >= 25, 2] == TERRAIN).all()
    assert out[100, 100, 3] == CAR and (out[:, :, 3:][out[:, :, 3:] != CAR] == OCC3D_FREE).all()
    assert changed == int((out != occ).sum()) and (occ[:, :, 2] == TERRAIN).all()  # the input is not changed
    out, _ = ground_from_map(occ, probs, np.eye(4), 0.7)  # above the drivable probability: walkway only
    assert (out[:, y < -25, 2] == TERRAIN).all() and (out[:, (y >= -25) & (y < 25), 2] == SIDEWALK).all()
    with pytest.raises(ValueError, match="ground_from_map: occupancy"):
        ground_from_map(occ[:, :, :8], probs, np.eye(4), 0.5)


def test_predictor_relabels_only_frames_without_lidar(weights, real_dir):  # noqa: F811
    options = ["model.score_threshold=0.0", "model.occ_prior_fill=None", "model.camera_map_blend=0",
               "model.map_memory_s=0"]
    plain = Predictor(load_config(CONFIG, [*options, "model.occ_ground_from_map=None"]), {"model": weights})
    full, no_lidar = _frames(real_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_full, want = plain.predict(full), plain.predict(no_lidar)
        # This random model's ground is all driveable surface and its map near 0.5: a threshold between the highest
        # drivable and walkway probabilities turns the columns with a likelier walkway into sidewalk.
        top_drivable, top_walkway = want.bev_probs[DRIVABLE_AREA].max(), want.bev_probs[WALKWAY].max()
        assert top_walkway > top_drivable + 0.02
        threshold = float(top_drivable + top_walkway) / 2
        ground = Predictor(load_config(CONFIG, [*options, f"model.occ_ground_from_map={threshold!r}"]),
                           {"model": weights})
        got_full, got = ground.predict(full), ground.predict(no_lidar)
    assert (got_full.occ_labels == want_full.occ_labels).all()  # with LiDAR: the model alone
    assert not [n for n in got_full.warnings if "from the BEV map" in n]
    expected, changed = ground_from_map(want.occ_labels, want.bev_probs, no_lidar.lidar2ego, threshold)
    assert changed > 0 and (got.occ_labels == expected).all() and (expected == SIDEWALK).sum() == changed
    np.testing.assert_array_equal(got.bev_probs, want.bev_probs)
    assert (f"occupancy: {changed} ground voxels relabelled from the BEV map (model.occ_ground_from_map="
            f"{threshold:g})") in got.warnings


def test_configs_that_cannot_use_it_refuse_it():
    for other in ("tiny_camera.py", "tiny_lidar.py", "tiny_openocc.py"):  # one sensor, or not the Occ3D grid
        with pytest.raises(ValueError, match=f"model.occ_ground_from_map in .*{other}: it changes a fusion model"):
            load_config(CONFIG.parent / other, ["model.occ_ground_from_map=0.5"])
    for bad in ("0", "1.5", "'high'"):
        with pytest.raises(ValueError, match="model.occ_ground_from_map .*: a map probability in"):
            load_config(CONFIG, [f"model.occ_ground_from_map={bad}"])
    # a model without the map or the occupancy task has nothing to relabel from or to: unused
    det = load_config(CONFIG.parent / "tiny_det.py", ["model.occ_ground_from_map=0.5"])
    assert Predictor(det, None).occ_ground_t is None
