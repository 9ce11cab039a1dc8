"""``perception index`` / ``build_index`` -> ``load_info_file`` -> ``Sample`` on synthesized dataroots, checked
against the nuscenes-devkit and the synthetic sensor files with hand-written frame chains (pyquaternion), plus
the issue's bad-input cases on corrupted copies and ``perception show`` on a synthetic sample.

Most tests read the shared ``synth_root`` fixture (conftest: 2 scenes x 4 samples, 4 sweeps per keyframe,
v1.0-trainval); the v1.0-mini / v1.0-test ones synthesize a tiny dataroot of their own.
"""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image
from pyquaternion import Quaternion

from perception.cli.main import main
from perception.constants import (
    BEV_MAP_CLASSES,
    BEV_MAP_GRID,
    CAMERA_NAMES,
    DETECTION_CLASSES,
    OCC3D_CLASSES,
    OCC3D_GRID,
)
from perception.data import build_index, load_info_file
from perception.data.boxes import points_in_boxes
from perception.geometry import invert, transform_points, wrap_angle
from perception.synth.camera import palette

VERSION = "v1.0-trainval"


@pytest.fixture(scope="module")
def nusc(synth_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(VERSION, str(synth_root), verbose=False)


@pytest.fixture(scope="module")
def index(synth_root, tmp_path_factory):
    """(index path, build_index report) of ``synth_root``."""
    out = tmp_path_factory.mktemp("index") / "index.pkl"
    return out, build_index(synth_root, VERSION, out, progress=False)


@pytest.fixture(scope="module")
def samples(index):
    """split -> its samples, as training and evaluation load them."""
    return {split: load_info_file(index[0], split=split) for split in ("train", "val")}


def _all(samples):
    return samples["train"] + samples["val"]


def _quat_pose(nusc, sd):
    """pyquaternion (sensor -> ego, ego -> global) rotations and translations of a sample_data record."""
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    return ((Quaternion(cs["rotation"]), np.array(cs["translation"])),
            (Quaternion(pose["rotation"]), np.array(pose["translation"])))


def _global_to_sensor(nusc, sd, xyz):
    """A global point -> the sensor frame of ``sd`` at its own timestamp: global -> ego -> sensor."""
    (q_cs, t_cs), (q_pose, t_pose) = _quat_pose(nusc, sd)
    return q_cs.inverse.rotate(q_pose.inverse.rotate(np.asarray(xyz, dtype=np.float64) - t_pose) - t_cs)


def test_split_counts_equal_the_devkit(nusc, index, samples):
    from nuscenes.utils.splits import create_splits_scenes

    scenes = create_splits_scenes()
    for split in ("train", "val"):
        expected = sorted(s["token"] for s in nusc.sample
                          if nusc.get("scene", s["scene_token"])["name"] in scenes[split])
        assert len(expected) == 4 and sorted(s.token for s in samples[split]) == expected
    report = index[1]
    assert report["samples"] == len(nusc.sample) == 8 and report["splits"] == {"train": 4, "val": 4}
    assert report["details"] == []
    assert not any(k.startswith(("samples skipped", "sweeps", "cameras")) for k in report["counts"])


def test_boxes_equal_devkit_annotations_through_a_hand_chain(nusc, samples):
    """global -> ego (LiDAR timestamp) -> LiDAR with pyquaternion; size w, l, h -> l, w, h; yaw of the heading."""
    from nuscenes.eval.detection.utils import category_to_detection_name

    checked = 0
    for s in _all(samples):
        rec = nusc.get("sample", s.token)
        lidar_sd = nusc.get("sample_data", rec["data"]["LIDAR_TOP"])
        (q_cs, _), (q_pose, _) = _quat_pose(nusc, lidar_sd)
        by_instance = dict(zip(s.instance_tokens, range(len(s.boxes)), strict=True))
        anns = [nusc.get("sample_annotation", t) for t in rec["anns"]]
        anns = [a for a in anns if category_to_detection_name(a["category_name"]) is not None]
        assert len(anns) == len(s.boxes) == len(by_instance) > 5
        for a in anns:
            i = by_instance[a["instance_token"]]
            heading = (q_cs.inverse * q_pose.inverse * Quaternion(a["rotation"])).rotate([1.0, 0.0, 0.0])
            w, length, h = a["size"]
            velocity = q_cs.inverse.rotate(q_pose.inverse.rotate(nusc.box_velocity(a["token"])))
            np.testing.assert_allclose(s.boxes[i, :3], _global_to_sensor(nusc, lidar_sd, a["translation"]), atol=1e-4)
            np.testing.assert_allclose(s.boxes[i, 3:6], [length, w, h], atol=1e-5)
            assert abs(wrap_angle(s.boxes[i, 6] - np.arctan2(heading[1], heading[0]))) < 1e-5
            np.testing.assert_allclose(s.boxes[i, 7:9], velocity[:2], atol=1e-4)  # NaN where the devkit has none
            assert DETECTION_CLASSES[s.labels[i]] == category_to_detection_name(a["category_name"])
            assert s.num_lidar_pts[i] == a["num_lidar_pts"]
            checked += 1
    assert checked > 100


def test_boxes_hold_their_keyframe_points(samples):
    total, mismatched = 0, 0
    for s in _all(samples):
        points = s.points
        key = points[points[:, 4] == 0]
        inside = points_in_boxes(key[:, :3], s.boxes).sum(axis=0)
        total += s.num_lidar_pts.sum()
        mismatched += np.abs(inside - s.num_lidar_pts).sum()
        assert (inside[s.num_lidar_pts >= 5] > 0).all()
    assert total > 5000 and mismatched <= 0.01 * total


def test_sweep_points_of_static_objects_stay_in_their_boxes(samples):
    """Sweeps are motion compensated: within 1 m around the static boxes (above the ground, outside moving
    boxes) nearly every sweep point lies inside a static box, while the same points taken as if recorded at the
    keyframe (no compensation; the ego drives ~9 m/s) fall outside many times more often."""

    def count(xyz, boxes, static):
        """(points near the static boxes but outside them, points inside them)."""
        grown = boxes[static].copy()
        grown[:, 3:5] += 2.0
        moving = points_in_boxes(xyz, boxes[~static]).any(axis=1)
        near = points_in_boxes(xyz, grown).any(axis=1) & (xyz[:, 2] > -1.6) & ~moving
        inside = points_in_boxes(xyz, boxes[static]).any(axis=1)
        return (near & ~inside).sum(), inside.sum()

    checked = 0
    for s in _all(samples):
        static = (np.hypot(s.boxes[:, 7], s.boxes[:, 8]) < 0.05) & (s.num_lidar_pts >= 20)
        points = s.points
        assert len(s.sweeps) >= 4 and static.sum() >= 5
        for sweep in s.sweeps[:4]:
            out, inside = count(points[np.isclose(points[:, 4], sweep.time_lag), :3], s.boxes, static)
            raw_out, _ = count(np.fromfile(sweep.path, np.float32).reshape(-1, 5)[:, :3], s.boxes, static)
            assert inside > 500 and out < 0.05 * inside + 30 and raw_out > 3 * out, \
                (s.token, sweep.time_lag, out, inside, raw_out)
            checked += 1
    assert checked == 32


def test_lidar2img_goes_through_the_camera_pose_and_hits_the_object_colour(nusc, samples, synth_root):
    """``lidar2cam`` = LiDAR (t_lidar) -> global -> ego (t_cam) -> camera; box centres land on their class colour."""
    names, colours = palette()
    checked, correct = 0, 0
    for s in _all(samples):
        rec = nusc.get("sample", s.token)
        lidar_sd = nusc.get("sample_data", rec["data"]["LIDAR_TOP"])
        (q_l, t_l), (q_pl, t_pl) = _quat_pose(nusc, lidar_sd)
        visible = {a["instance_token"] for a in map(lambda t: nusc.get("sample_annotation", t), rec["anns"])
                   if a["visibility_token"] == "4"}
        assert set(s.cameras) == set(CAMERA_NAMES)
        for name, cam in s.cameras.items():
            sd = nusc.get("sample_data", rec["data"][name])
            # The hand chain for one point: LiDAR -> global at the LiDAR time, then into the camera at its time.
            p = np.array([3.0, 20.0, -1.0])
            p_global = q_pl.rotate(q_l.rotate(p) + t_l) + t_pl
            np.testing.assert_allclose(transform_points(cam.lidar2cam, p[None])[0],
                                       _global_to_sensor(nusc, sd, p_global), atol=1e-6)
            assert cam.path == os.path.join(str(synth_root), sd["filename"])
            image = cam.image.astype(np.float64)
            H, W = image.shape[:2]
            for i in (i for i, t in enumerate(s.instance_tokens) if t in visible):
                uvw = cam.lidar2img @ np.append(s.boxes[i, :3], 1.0)
                if not 3.0 < uvw[2] < 40.0:
                    continue
                u, v = uvw[:2] / uvw[2]
                if not (2 <= u < W - 2 and 2 <= v < H - 2):
                    continue
                rgb = np.median(image[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2].reshape(-1, 3), axis=0)
                checked += 1
                nearest = names[int(np.argmin(np.linalg.norm(colours - rgb, axis=1)))]
                correct += nearest == f"class:{DETECTION_CLASSES[s.labels[i]]}"
    assert checked >= 30 and correct >= 0.97 * checked, (correct, checked)


def test_occupancy_and_bev_map_agree_with_the_boxes_and_each_other(samples):
    lower, size = np.array(OCC3D_GRID.lower), np.array(OCC3D_GRID.size)
    drivable = BEV_MAP_CLASSES.index("drivable_area")
    for s in (samples["train"][0], samples["val"][-1]):
        occ = s.occupancy
        assert occ is not None and occ.semantics.shape == OCC3D_GRID.shape and occ.mask_camera.any()
        # Car box centres (LiDAR frame) taken to the ego frame land in car voxels.
        cars = s.boxes[(s.labels == DETECTION_CLASSES.index("car")) & (s.num_lidar_pts > 0)]
        ijk = ((transform_points(s.lidar2ego, cars[:, :3].astype(np.float64)) - lower) / size).astype(int)
        ijk = ijk[((ijk >= 0) & (ijk < OCC3D_GRID.shape)).all(axis=1)]
        assert len(ijk) >= 3 and (occ.semantics[tuple(ijk.T)] == OCC3D_CLASSES.index("car")).all()
        bev = s.bev_map
        assert bev.shape == (6, 200, 200) and bev[drivable].mean() < 0.6
        # Under the ego (LiDAR frame: the ego origin is 0.94 m behind the LiDAR) is drivable area.
        ego = transform_points(invert(s.lidar2ego), np.zeros((1, 3)))[0]
        ix, iy = ((ego[:2] - np.array(BEV_MAP_GRID.lower)) / np.array(BEV_MAP_GRID.size)).astype(int)
        assert bev[drivable, ix - 4:ix + 5, iy - 4:iy + 5].all()
        # The map (LiDAR frame) and the Occ3D road (ego frame) are the same street: columns with a
        # driveable_surface voxel against the drivable_area cells at the same place.
        g = BEV_MAP_GRID
        axes = [np.arange(n) * d + lo + d / 2 for n, d, lo in zip(g.shape, g.size, g.lower, strict=True)]
        cx, cy = np.meshgrid(*axes, indexing="ij")
        ego_xy = transform_points(s.lidar2ego, np.stack([cx.ravel(), cy.ravel(), np.zeros(cx.size)], axis=1))[:, :2]
        oi = ((ego_xy - lower[:2]) / size[:2]).astype(int)
        in_grid = ((ego_xy > lower[:2]) & (oi < OCC3D_GRID.shape[:2])).all(axis=1)
        road = (occ.semantics == OCC3D_CLASSES.index("driveable_surface")).any(axis=2)[tuple(oi[in_grid].T)]
        mapped = bev[drivable].ravel()[in_grid].astype(bool)
        assert (road & mapped).sum() / (road | mapped).sum() > 0.8


def test_cli_prints_counts_per_split_and_reasons(synth_root, tmp_path, capsys):
    assert main(["index", "--dataroot", str(synth_root), "--version", VERSION, "--out", str(tmp_path / "i.pkl"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "wrote 8 samples" in out and "'train': 4" in out and "'val': 4" in out
    assert "boxes kept without LiDAR/radar points:" in out


# --- other versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version, splits", [("v1.0-mini", ("mini_train", "mini_val")), ("v1.0-test", ("test",))])
def test_mini_and_test_versions(tmp_path, version, splits):
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.splits import create_splits_scenes

    from perception.synth.generate import generate_dataset

    root = tmp_path / "root"
    generate_dataset(root, scenes=2, samples_per_scene=2, seed=1, version=version, sweeps_per_sample=1,
                     image_size=(96, 54))
    nusc = NuScenes(version, str(root), verbose=False)
    report = build_index(root, version, tmp_path / "index.pkl", progress=False)
    assert report["samples"] == 4 and report["details"] == []
    official = create_splits_scenes()
    for split in splits:
        expected = sorted(s["token"] for s in nusc.sample
                          if nusc.get("scene", s["scene_token"])["name"] in official[split])
        loaded = load_info_file(tmp_path / "index.pkl", split=split)
        assert expected and sorted(s.token for s in loaded) == expected and report["splits"][split] == len(expected)
    loaded = load_info_file(tmp_path / "index.pkl")
    assert all(len(s.cameras) == 6 and s.points.shape[1] == 5 for s in loaded)
    if version == "v1.0-test":  # like the real test set: no annotations, no Occ3D labels
        assert nusc.sample_annotation == [] and nusc.instance == []
        assert all(len(s.boxes) == 0 and s.boxes.shape == (0, 9) and s.occupancy is None for s in loaded)
    else:
        assert sum(len(s.boxes) for s in loaded) > 10


# --- bad input on a copy of the synthetic dataroot ---------------------------------------------------------


@pytest.fixture
def copy_root(synth_root, tmp_path):
    """The tables copied, the maps and every sensor file linked (a test replaces the file it corrupts)."""
    root = tmp_path / "root"
    shutil.copytree(synth_root / VERSION, root / VERSION)
    os.symlink(synth_root / "maps", root / "maps")  # the devkit loads the map mask
    for folder in ("samples", "sweeps"):
        for src in (synth_root / folder).rglob("*"):
            if src.is_file():
                dst = root / src.relative_to(synth_root)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src, dst)
    return root


def _records(root, table):
    return json.loads((root / VERSION / f"{table}.json").read_text())


def _first_keyframe(root, channel):
    """The (sample token, filename) of the first keyframe sample_data record of ``channel``'s files."""
    rec = next(r for r in _records(root, "sample_data") if r["is_key_frame"] and f"__{channel}__" in r["filename"])
    return rec["sample_token"], rec["filename"]


def _truncate(path):
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data[:-8])


@pytest.mark.parametrize("case", ["truncated LiDAR", "missing LiDAR", "truncated sweep", "missing camera"])
def test_bad_sensor_files_are_counted_and_named(copy_root, tmp_path, capsys, case):
    token, filename = _first_keyframe(copy_root, "CAM_BACK" if case == "missing camera" else "LIDAR_TOP")
    if case == "truncated sweep":
        filename = next(r["filename"] for r in _records(copy_root, "sample_data")
                        if r["filename"].startswith("sweeps/"))
    path = copy_root / filename
    (_truncate if case.startswith("truncated") else os.unlink)(path)
    out = tmp_path / "index.pkl"
    assert main(["index", "--dataroot", str(copy_root), "--version", VERSION, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    reason = {"truncated LiDAR": "samples skipped: truncated LiDAR file: 1",
              "missing LiDAR": "samples skipped: missing LiDAR file: 1",
              "truncated sweep": "sweeps dropped: truncated sweep file:",
              "missing camera": "cameras left out: missing image file: 1"}[case]
    assert reason in printed and str(path) in printed
    loaded = {s.token: s for s in load_info_file(out)}
    if case.endswith("LiDAR"):
        assert f"sample {token}" in printed and "wrote 7 samples" in printed and token not in loaded
        return
    assert len(loaded) == 8
    if case == "missing camera":
        assert f"sample {token} CAM_BACK" in printed
        assert sorted(loaded[token].cameras) == sorted(set(CAMERA_NAMES) - {"CAM_BACK"})
    else:  # the sweep is left out of every keyframe that would merge it; their points load
        assert all(sw.path != str(path) for s in loaded.values() for sw in s.sweeps)
        assert all(s.points.shape[1] == 5 for s in loaded.values())


@pytest.mark.parametrize("table, field",
                         [("sample_data", "calibrated_sensor_token"), ("sample_data", "ego_pose_token")])
def test_missing_token_names_the_table_file_and_token(copy_root, tmp_path, capsys, table, field):
    """The devkit fails on the first with a bare KeyError while loading, on the second while indexing."""
    records = _records(copy_root, table)
    bad = records[3]
    bad[field] = "0123456789abcdef0123456789abcdef"
    (copy_root / VERSION / f"{table}.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match=rf"{table}\.json record {bad['token']} \(sample {bad['sample_token']}\): "
                                         rf"{field} '0123456789abcdef0123456789abcdef' not found in "
                                         rf"{field[:-6]}\.json"):
        build_index(copy_root, VERSION, tmp_path / "index.pkl", progress=False)
    assert main(["index", "--dataroot", str(copy_root), "--version", VERSION, "--out", str(tmp_path / "i.pkl"),
                 "--no-progress"]) == 2
    assert f"{field[:-6]}.json" in capsys.readouterr().err and not (tmp_path / "i.pkl").exists()


def test_unknown_box_convention_names_the_file(index, tmp_path):
    data = pickle.loads(index[0].read_bytes())
    data["metainfo"]["box_convention"] = "kitti"
    path = tmp_path / "kitti.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError,
                       match=rf"info file {path}: unknown box convention 'kitti' \(metainfo\['box_convention'\]\)"):
        load_info_file(path)
    with pytest.raises(ValueError, match="unknown box convention 'lidar2' \\(argument"):
        load_info_file(index[0], box_convention="lidar2")


# --- perception show -----------------------------------------------------------------------------------------


def test_show_by_index_and_token_draws_boxes_on_their_objects(synth_root, samples, tmp_path, capsys):
    from perception.viz.colors import DETECTION_COLORS, to_uint8

    args = ["--dataroot", str(synth_root), "--version", VERSION, "--num-sweeps", "0"]
    assert main(["show", "0", "--out", str(tmp_path / "a"), *args]) == 0
    first = capsys.readouterr().out.split()
    token = os.path.basename(first[0])[: -len("_bev.png")]
    assert main(["show", token, "--out", str(tmp_path / "b"), *args]) == 0
    second = capsys.readouterr().out.split()
    assert [os.path.basename(p) for p in first] == [os.path.basename(p) for p in second] == \
        [f"{token}_bev.png", f"{token}_cameras.png"]
    assert open(first[1], "rb").read() == open(second[1], "rb").read()
    sheet = np.asarray(Image.open(first[1]).convert("RGB")).astype(int)
    car = np.array(to_uint8(DETECTION_COLORS[0]))
    assert (np.abs(sheet - car).sum(axis=2) < 30).sum() > 200  # car wireframes drawn
