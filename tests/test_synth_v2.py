"""Tests of synthetic world v2 (issue #17): determinism, v1 unchanged, devkit loading, overlapping materials,
LiDAR noise and dropout, terrain and kerbs, road layouts, random placement, velocities, occlusion and point counts.

Most dataset checks read one small module-scoped v2 dataroot (2 scenes x 3 samples, 1 sweep, 320 x 180 images)
through the unmodified nuscenes-devkit; world-level checks build scenes directly (a fraction of a second each).
"""

import argparse
import filecmp
import json

import numpy as np
import pytest

from perception.geometry import invert, make_transform, transform_points
from perception.synth.world import WorldParams

VERSION = "v1.0-trainval"
SEED, SCENES, SAMPLES = 1, 2, 3


def _scene(seed=0, index=0, duration=3.1, params=None):
    from perception.synth.populate import build_scene_v2

    rng = np.random.default_rng([seed, index])
    return build_scene_v2(rng, "scene-x", (400.0, 400.0), duration, params or WorldParams())


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory):
    from perception.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("synth_v2")
    generate_dataset(out, scenes=SCENES, samples_per_scene=SAMPLES, seed=SEED, sweeps_per_sample=1,
                     image_size=(320, 180), world="v2")
    return out


@pytest.fixture(scope="module")
def nusc(v2_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(VERSION, str(v2_root), verbose=False)


@pytest.fixture(scope="module")
def scenes(nusc):
    """scene token -> (the writer's Scene2, rebuilt from its seed and index; actor index of each instance token)."""
    from perception.synth.backends import WorldV2
    from perception.synth.generate import KEYFRAME_INTERVAL, scene_grid
    from perception.synth.tables import token

    spacing, cols, _ = scene_grid(SCENES, SAMPLES, "v2")
    out = {}
    for index, rec in enumerate(sorted(nusc.scene, key=lambda r: r["name"])):
        origin = (spacing * (index % cols + 0.5), spacing * (index // cols + 0.5))
        sc = WorldV2(WorldParams()).build(np.random.default_rng([SEED, index]), rec["name"], origin,
                                          KEYFRAME_INTERVAL * SAMPLES + 0.1)
        actor_of = {token(SEED, "instance", index, i): i for i in range(len(sc.actors))}
        out[rec["token"]] = (sc, actor_of)
    return out


def _lidar_pose(nusc, sample):
    sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return sd, make_transform(pose["rotation"], pose["translation"]), make_transform(cs["rotation"], cs["translation"])


# -- knobs, CLI helpers, record -----------------------------------------------------------------------------

def test_world_arguments_defaults_help_and_bad_values():
    from perception.synth.world import add_world_arguments, world_from_args

    parser = argparse.ArgumentParser()
    add_world_arguments(parser)
    args = parser.parse_args([])
    assert args.world == "v2" and world_from_args(args) == WorldParams()
    assert world_from_args(parser.parse_args(["--world", "v1"])) == "v1"
    p = world_from_args(parser.parse_args(["--lidar-range-noise", "0.05", "--max-lanes", "2"]))
    assert p.lidar_range_noise == 0.05 and p.max_lanes == 2 and p.kerb_height == WorldParams().kerb_height
    text = parser.format_help()
    import dataclasses

    for f in dataclasses.fields(WorldParams):
        assert f"--{f.name.replace('_', '-')}" in text and f"(default: {f.default})" in " ".join(text.split())
    with pytest.raises(ValueError, match="lidar_dropout"):
        world_from_args(parser.parse_args(["--lidar-dropout", "2"]))
    with pytest.raises(ValueError, match="world"):
        from perception.synth.generate import generate_dataset

        generate_dataset("/nonexistent/never", world="v3")


def test_dataset_records_world_version_and_params(v2_root):
    from perception.synth.world import read_world_record

    rec = json.loads((v2_root / "synth_world.json").read_text())
    assert rec["world"] == "v2" and rec["params"]["lidar_range_noise"] == WorldParams().lidar_range_noise
    assert read_world_record(v2_root) == ("v2", WorldParams())


# -- determinism and v1 -------------------------------------------------------------------------------------

def test_v2_same_seed_identical_files_in_parallel_too_and_other_seed_differs(tmp_path):
    from perception.synth.generate import generate_dataset

    args = {"scenes": 2, "samples_per_scene": 2, "seed": 4, "sweeps_per_sample": 0, "image_size": (64, 36),
            "world": "v2"}
    generate_dataset(tmp_path / "a", **args)
    generate_dataset(tmp_path / "b", workers=2, **args)
    files = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(tmp_path / "b")) for p in (tmp_path / "b").rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", files, shallow=False)
    assert mismatch == [] and errors == [] and len(files) > 20
    generate_dataset(tmp_path / "c", **{**args, "seed": 5, "scenes": 1})
    lidar_a = min((tmp_path / "a" / "samples" / "LIDAR_TOP").iterdir()).read_bytes()
    lidar_c = min((tmp_path / "c" / "samples" / "LIDAR_TOP").iterdir()).read_bytes()
    assert lidar_a != lidar_c


def _fingerprint(root):
    """Robust summary of a dataroot: exact counts, float sums (compared with a relative tolerance)."""
    lidar = sorted((root / "samples" / "LIDAR_TOP").iterdir()) + sorted((root / "sweeps" / "LIDAR_TOP").iterdir())
    pts = [np.fromfile(p, dtype=np.float32).reshape(-1, 5).astype(np.float64) for p in lidar]
    anns = json.loads((root / VERSION / "sample_annotation.json").read_text())
    from PIL import Image

    images = sorted((root / "samples").glob("CAM_*/*.jpg"))
    occ = sorted((root / "gts").rglob("labels.npz"))
    sem = np.concatenate([np.bincount(np.load(p)["semantics"].ravel(), minlength=18) for p in occ])
    counts = [len(p) for p in pts] + [len(anns), sum(a["num_lidar_pts"] for a in anns)] + sem.tolist()
    sums = [float(sum(np.abs(p[:, :3]).sum() for p in pts)), float(sum(p[:, 3].sum() for p in pts)),
            float(np.abs([a["translation"] for a in anns]).sum()),
            float(np.mean([np.asarray(Image.open(p), dtype=np.float64).mean() for p in images]))]
    return counts, sums


def test_v2_is_the_default_and_v1_is_unchanged(tmp_path):
    """v2 is the default world; v1 output is pinned to the original generator's (checked byte-for-byte
    against it when v2 was added)."""
    from perception.synth.generate import generate_dataset

    args = {"scenes": 1, "samples_per_scene": 2, "seed": 2, "sweeps_per_sample": 1, "image_size": (96, 54)}
    generate_dataset(tmp_path / "a", world="v1", **args)
    generate_dataset(tmp_path / "b", **args)
    assert json.loads((tmp_path / "a" / "synth_world.json").read_text()) == {"world": "v1"}
    assert json.loads((tmp_path / "b" / "synth_world.json").read_text())["world"] == "v2"
    counts, sums = _fingerprint(tmp_path / "a")
    assert counts == V1_COUNTS
    np.testing.assert_allclose(sums, V1_SUMS, rtol=1e-6)


# _fingerprint of the original (pre-v2) generator's output for the arguments above.
V1_COUNTS = [30966, 31102, 30986, 30984, 72, 16493, 0, 63, 64, 3519, 2565, 909, 172, 290, 15, 2380, 2622, 25496, 9553,
             8945, 68463, 81298, 4078, 429568, 0, 54, 52, 3447, 2722, 873, 168, 310, 15, 3040, 2624, 25422, 9572,
             8937, 68562, 79664, 3632, 430906]
V1_SUMS = [1913707.654282085, 2871399.8129324913, 50547.20682205989, 118.1872588734568]


# -- devkit -------------------------------------------------------------------------------------------------

def test_devkit_loads_v2_with_map_and_all_classes(nusc, v2_root):
    from nuscenes.eval.common.loaders import load_gt
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.map_expansion.map_api import NuScenesMap

    from perception.constants import DETECTION_CLASSES
    from perception.geometry import quat_yaw

    assert len(nusc.scene) == SCENES and len(nusc.sample) == SCENES * SAMPLES
    names = set()
    for split in ("train", "val"):
        gt = load_gt(nusc, split, DetectionBox)
        names |= {b.detection_name for t in gt.sample_tokens for b in gt[t]}
    assert names == set(DETECTION_CLASSES)
    nmap = NuScenesMap(dataroot=str(v2_root), map_name=nusc.log[0]["location"])
    layers = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider"]
    seen = dict.fromkeys(layers, 0)
    for sample in nusc.sample:
        _, e2g, _ = _lidar_pose(nusc, sample)
        masks = nmap.get_map_mask((e2g[0, 3], e2g[1, 3], 100.0, 100.0), np.degrees(quat_yaw(
            nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])["rotation"])),
            layers, canvas_size=(200, 200))
        assert masks[0, 97:103, 97:103].all() and masks[0].mean() < 0.6  # the ego on a street, not everywhere
        for name, m in zip(layers, masks, strict=True):
            seen[name] += int(m.sum())
    assert all(seen[k] > 0 for k in ("drivable_area", "walkway", "ped_crossing", "stop_line", "road_divider")), seen
    # Walkways lie beside the drivable area, never on it; crossings on it.
    from shapely.ops import unary_union

    drivable = unary_union([nmap.extract_polygon(t) for r in nmap.drivable_area for t in r["polygon_tokens"]])
    walk = unary_union([nmap.extract_polygon(r["polygon_token"]) for r in nmap.walkway])
    cross = unary_union([nmap.extract_polygon(r["polygon_token"]) for r in nmap.ped_crossing])
    assert walk.intersection(drivable).area < 0.002 * walk.area
    assert cross.difference(drivable).area < 0.01 * cross.area


# -- materials ----------------------------------------------------------------------------------------------

def _balanced_accuracy(values, labels, bins):
    """Balanced accuracy of the best 1-D classifier on the data itself (majority class per value bin)."""
    idx = np.digitize(values, bins)
    classes = sorted(set(labels))
    lab = np.array([classes.index(v) for v in labels])
    table = np.zeros((len(bins) + 1, len(classes)))
    np.add.at(table, (idx, lab), 1)
    table /= table.sum(0, keepdims=True)  # per-class frequencies: balanced
    pred = table.argmax(1)[idx]
    return float(np.mean([np.mean(pred[lab == c] == c) for c in range(len(classes))]))


def test_materials_overlap_across_classes():
    from perception.synth.kernels import P_PLAIN  # noqa: F401  (materials are drawn by kernels' patterns)
    from perception.synth.materials import object_material

    rng = np.random.default_rng(0)
    kinds = ["car", "truck", "bus", "trailer", "construction_vehicle", "motorcycle", "bicycle", "pedestrian",
             "traffic_cone", "barrier"]
    inten, rgb, labels = [], [], []
    for kind in kinds:
        for _ in range(150):
            m, _ = object_material(rng, kind)
            inten.append(m[9]), rgb.append(m[:3]), labels.append(kind)
    inten, rgb, labels = np.array(inten), np.array(rgb), np.array(labels)
    for a, b in (("car", "bus"), ("car", "pedestrian"), ("truck", "trailer"), ("traffic_cone", "construction_vehicle")):
        lo_a, hi_a = np.percentile(inten[labels == a], [10, 90])
        lo_b, hi_b = np.percentile(inten[labels == b], [10, 90])
        assert lo_a < hi_b and lo_b < hi_a, (a, b)
    assert _balanced_accuracy(np.log(inten), labels, np.linspace(0, 6, 25)) < 0.5
    # Colour: nearest class-mean RGB is far from a label; buses come in many colours.
    means = np.array([rgb[labels == k].mean(0) for k in kinds])
    pred = np.array(kinds)[np.argmin(np.linalg.norm(rgb[:, None] - means[None], axis=2), axis=1)]
    assert np.mean(pred == labels) < 0.5
    assert rgb[labels == "bus"].std(0).mean() > 40


def test_sensor_intensities_and_colours_vary_within_classes_and_objects(nusc, v2_root):
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.utils.geometry_utils import points_in_box
    from PIL import Image

    per_obj, labels, spread = [], [], []
    for sample in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
        for b in boxes:
            inside = points_in_box(b, pts[:, :3].T.astype(np.float64))
            if inside.sum() >= 8:
                per_obj.append(np.median(pts[inside, 3]))
                labels.append(category_to_detection_name(b.name))
                spread.append(pts[inside, 3].std() / max(pts[inside, 3].mean(), 1e-6))
    assert len(per_obj) > 40 and np.median(spread) > 0.15  # not one intensity per object either
    assert _balanced_accuracy(np.log1p(per_obj), labels, np.linspace(0, 6, 13)) < 0.85
    # Camera: an object's pixels are not one flat colour.
    sd = nusc.get("sample_data", nusc.sample[0]["data"]["CAM_FRONT"])
    img = np.asarray(Image.open(v2_root / sd["filename"]), dtype=np.float64)
    assert img.reshape(-1, 3).std(0).mean() > 20
    assert np.abs(np.diff(img, axis=1)).mean() > 2.0  # noise and texture: neighbouring pixels differ


# -- LiDAR measurement model --------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.02, 0.05])
def test_range_noise_std_and_dropout(sigma):
    from perception.synth.backends import WorldV2
    from perception.synth.lidar import lidar2ego
    from perception.synth.sensors_v2 import scan

    p = WorldParams(lidar_range_noise=sigma)
    sc = _scene(3, 0, params=p)
    pts, _, miss, info = scan(sc, WorldV2(p).sensor_boxes(sc, 1.0), sc.ego_pose(1.0) @ lidar2ego(),
                                np.random.default_rng(0), truth=True)
    err = info["t_meas"] - info["t_true"]
    assert abs(err.std() - sigma) < 0.05 * sigma and abs(err.mean()) < 0.1 * sigma
    # Ranges of the points are the noisy ones.
    np.testing.assert_allclose(np.linalg.norm(pts[:, :3].astype(np.float64), axis=1), info["t_meas"], atol=2e-3)
    valid, dropped, cos = info["valid"], info["dropped"], info["cos"]
    rate = dropped.sum() / valid.sum()
    assert 0.02 < rate < 0.15
    assert dropped[valid & (cos < 0.2)].mean() > 2 * dropped[valid & (cos > 0.8)].mean()  # grazing rays drop more
    assert len(pts) == (valid & ~dropped).sum() and len(miss) == (~valid).sum()


# -- terrain, kerbs, occupancy ------------------------------------------------------------------------------

def test_terrain_is_not_flat_and_kerbs_are_raised():
    from perception.synth.ground import CODE_ROAD, CODE_WALKWAY

    for seed in range(3):
        sc = _scene(seed)
        ego = sc.ego_pose(0.0)[:2, 3]
        xy = ego + np.stack(np.meshgrid(np.linspace(-60, 60, 41), np.linspace(-60, 60, 41)), -1).reshape(-1, 2)
        base = sc.terrain.base(xy)
        assert base.max() - base.min() > 0.3, seed
        # Kerb: across the main street's kerb (walkway outside, road inside) the ground steps up by kerb_height.
        main = sc.layout.main
        steps = []
        for s in np.arange(-40, 60, 4.0):
            for sign in (-1, 1):
                out_xy = main.path.to_global(s, sign * (main.kerb(sign) + 0.25))
                in_xy = main.path.to_global(s, sign * (main.kerb(sign) - 0.25))
                codes = sc.raster.codes(np.stack([out_xy, in_xy])) & 7
                if codes[0] == CODE_WALKWAY and codes[1] == CODE_ROAD:
                    steps.append(float(np.diff(sc.ground_height(np.stack([in_xy, out_xy])))[0]))
        assert len(steps) > 10
        np.testing.assert_allclose(steps, WorldParams().kerb_height, atol=0.04)


def test_boxes_ego_and_occupancy_follow_the_terrain(nusc, v2_root, scenes):
    from perception.constants import OCC3D_CLASSES, OCC3D_GRID

    zs = []
    for sample in nusc.sample:
        sc, _ = scenes[sample["scene_token"]]
        _, e2g, _ = _lidar_pose(nusc, sample)
        assert e2g[2, 3] == pytest.approx(float(sc.ground_height(e2g[None, :2, 3])[0]), abs=1e-6)
        zs.append(e2g[2, 3])
        anns = [nusc.get("sample_annotation", t) for t in sample["anns"]]
        xyz = np.array([a["translation"] for a in anns])
        bottom = xyz[:, 2] - np.array([a["size"][2] for a in anns]) / 2
        np.testing.assert_allclose(bottom, sc.ground_height(xyz[:, :2]), atol=1e-6)  # boxes stand on the ground
        # Occ3D: the ground layers of each column are those at or below the terrain (ego frame).
        scene_name = nusc.get("scene", sample["scene_token"])["name"]
        with np.load(v2_root / "gts" / scene_name / sample["token"] / "labels.npz") as f:
            sem = f["semantics"]
        ground_classes = ("driveable_surface", "other_flat", "sidewalk", "terrain")
        ground = np.isin(sem, [OCC3D_CLASSES.index(c) for c in ground_classes])
        xs = np.asarray(OCC3D_GRID.centers(0))
        g = np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
        h = sc.ground_height(transform_points(e2g, np.c_[g, np.zeros(len(g))])[:, :2]) - e2g[2, 3]
        expect = (np.asarray(OCC3D_GRID.centers(2))[None] <= h[:, None] + 1e-6).sum(1).reshape(200, 200)
        free_above = (sem == 17) | ground  # columns without objects in their ground layers
        clean = np.all(free_above[:, :, :4], axis=2)
        assert (ground.sum(2)[clean] == expect[clean]).mean() > 0.99
        assert len(np.unique(expect)) >= 2  # the grid spans more than one ground level
    assert np.ptp(zs) > 0.0


# -- layouts and placement ----------------------------------------------------------------------------------

def test_road_layouts_vary_across_seeds():
    from perception.synth.layout import build_layout

    p = WorldParams()
    kinds, lanes, widths, curved = set(), set(), set(), 0
    for seed in range(8):
        rng = np.random.default_rng(seed)
        lay = build_layout(rng, p, (0.0, 0.0), -90.0, 130.0, (0.0, 40.0))
        kinds.add(len(lay.streets) - 1)  # 0 straight / curved street, 1 T junction, 2 cross junction
        lanes.add(lay.main.lanes)
        widths.add(round(lay.main.lane_w, 1))
        h = lay.main.path.heading(np.array([-90.0, 130.0]))
        curved += abs(h[1] - h[0]) > 0.2
    assert kinds == {0, 1, 2}
    assert len(lanes) >= 3 and len(widths) >= 4 and 0 < curved < 8


def test_rare_classes_are_not_at_fixed_places_relative_to_the_ego_start():
    rel = {k: [] for k in ("bus", "trailer", "bicycle", "motorcycle", "construction_vehicle")}
    for seed in range(5):
        sc = _scene(seed)
        boxes = sc.boxes_at(0.0)
        g2e = invert(sc.ego_pose(0.0))
        for kind, found in rel.items():
            i = next(i for i, a in enumerate(sc.actors) if a.kind == kind)  # the first placed of its class
            found.append(transform_points(g2e, boxes[i:i + 1, :3])[0, :2])
    for kind, xy in rel.items():
        xy = np.array(xy)
        d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
        assert d[np.triu_indices(len(xy), 1)].min() > 1.0 and xy.std(0).max() > 5.0, kind


def test_no_two_actors_overlap_and_headings_vary():
    from perception.synth.prune import _overlap

    sc = _scene(6)
    for t in (0.0, 1.5, 3.0):
        b = sc.boxes_at(t)
        fp = np.c_[b[:, :2], b[:, 3:5] / 2 - 0.02, b[:, 6]]
        z = np.array([[a.z0, a.z0 + a.size[2]] for a in sc.actors])
        i, j = np.triu_indices(len(b), 1)
        both = (z[i, 0] < z[j, 1] - 0.05) & (z[j, 0] < z[i, 1] - 0.05)
        group = np.array([a.group for a in sc.actors])
        same = (group[i] == group[j]) & (group[i] >= 0)
        close = np.hypot(*(b[i, :2] - b[j, :2]).T) < 30
        sel = both & ~same & close
        assert not _overlap(fp[i[sel]], fp[j[sel]]).any()
    # Parked cars are not all aligned with the street: angled bays, either direction, car parks.
    street_rel = [((a.yaw_off + np.pi / 2) % np.pi) - np.pi / 2 for a in sc.actors if a.kind == "car" and not a.moving
                  and a.street >= 0]
    assert np.ptp(np.abs(street_rel)) > 0.3 or any(a.street < 0 and a.kind == "car" for a in sc.actors)


def test_pedestrians_on_walkways_and_crossings():
    from shapely.geometry import Point
    from shapely.ops import unary_union

    from perception.synth.ground import CODE_WALKWAY

    on_walk, on_crossing, n = 0, 0, 0
    for seed in range(4):
        sc = _scene(seed)
        b = sc.boxes_at(0.0)
        ped = np.array([a.kind == "pedestrian" for a in sc.actors])
        on_walk += int(((sc.raster.codes(b[ped, :2]) & 7) == CODE_WALKWAY).sum())
        crossings = unary_union([c[3] for c in sc.layout.crossings])
        on_crossing += sum(crossings.contains(Point(*xy)) for xy in b[ped, :2])
        n += int(ped.sum())
        ped_attributes = {a.attribute for a in sc.actors if a.kind == "pedestrian"}
        assert ped_attributes >= {"pedestrian.moving", "pedestrian.standing"}
    assert n > 100 and on_walk > 0.75 * n and on_crossing >= 3


# -- motion, occlusion, point counts ------------------------------------------------------------------------

def test_gt_velocities_match_the_motion_and_vary(nusc, scenes):
    errors, speeds = [], []
    for ann in nusc.sample_annotation:
        if not ann["prev"] or not ann["next"]:
            continue
        sc, actor_of = scenes[nusc.get("sample", ann["sample_token"])["scene_token"]]
        i = actor_of[ann["instance_token"]]
        if not sc.actors[i].moving:
            continue
        v_devkit = nusc.box_velocity(ann["token"])[:2]
        t = (nusc.get("sample", ann["sample_token"])["timestamp"] - nusc.get("sample", nusc.get(
            "scene", sc_token(nusc, ann))["first_sample_token"])["timestamp"]) / 1e6 + 0.5
        v_true = (sc.boxes_at(t + 0.01)[i, :2] - sc.boxes_at(t - 0.01)[i, :2]) / 0.02
        errors.append(np.linalg.norm(v_devkit - v_true))
        speeds.append(np.linalg.norm(v_true))
    assert len(errors) > 10
    assert np.percentile(errors, 90) < 0.2, np.percentile(errors, 90)
    assert np.std(speeds) > 1.0 and max(speeds) > 3.0


def sc_token(nusc, ann):
    return nusc.get("sample", ann["sample_token"])["scene_token"]


def test_num_lidar_pts_are_points_in_box_and_occlusion_hides_objects(nusc, scenes):
    from nuscenes.utils.geometry_utils import points_in_box

    from perception.synth.backends import WorldV2
    from perception.synth.lidar import beam_directions
    from perception.synth.sensors_v2 import cast_world

    total, mismatched, vis = 0, 0, set()
    for sample in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
        for b in boxes:
            ann = nusc.get("sample_annotation", b.token)
            total += ann["num_lidar_pts"]
            mismatched += abs(int(points_in_box(b, pts[:, :3].T.astype(np.float64)).sum()) - ann["num_lidar_pts"])
            vis.add(ann["visibility_token"])
    assert total > 5000 and mismatched <= 0.005 * total
    assert {"1", "4"} <= vis
    # Occlusion: noise-free keyframe rays against every box vs against one box alone.
    sample = nusc.sample[1]
    sc, actor_of = scenes[sample["scene_token"]]
    _, e2g, l2e = _lidar_pose(nusc, sample)
    t = (sample["timestamp"] - nusc.get("sample", nusc.get("scene", sample["scene_token"])["first_sample_token"])[
        "timestamp"]) / 1e6 + 0.5
    packed = WorldV2(sc.params).sensor_boxes(sc, t)
    dirs, _ = beam_directions()
    l2g = e2g @ l2e
    dirs_g = dirs @ l2g[:3, :3].T
    _, hit = cast_world(sc, packed, l2g[:3, 3], dirs_g, 70.0)
    ratios = []
    for tok in sample["anns"]:
        i = actor_of[nusc.get("sample_annotation", tok)["instance_token"]]
        _, alone = cast_world(sc, packed[i:i + 1], l2g[:3, 3], dirs_g, 70.0)
        n_alone = int((alone == 0).sum())
        if n_alone >= 20:
            ratios.append((hit == i).sum() / n_alone)
    ratios = np.array(ratios)
    assert len(ratios) > 10 and (ratios < 0.5).sum() >= 2 and (ratios > 0.95).sum() >= 2

