"""Tests of the synthetic nuScenes-format dataset generator (``perception synth``).

Most tests read the shared ``synth_root`` fixture (2 scenes x 4 samples, seed 0, v1.0-trainval) through the
unmodified nuscenes-devkit, so they check the files as a consumer sees them.
"""

import filecmp
import os

import numpy as np
import pytest
from PIL import Image

from perception.constants import CAMERA_NAMES, DETECTION_CLASSES, OCC3D_CLASSES, OCC3D_GRID
from perception.geometry import invert, make_transform, quat_yaw, transform_points
from perception.synth.camera import palette

VERSION = "v1.0-trainval"
LOCATION = "singapore-onenorth"


@pytest.fixture(scope="module")
def nusc(synth_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(VERSION, str(synth_root), verbose=False)


def _pose(nusc, sd):
    """4x4 ego -> global and sensor -> ego of a sample_data record."""
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    return make_transform(pose["rotation"], pose["translation"]), make_transform(cs["rotation"], cs["translation"])


def test_devkit_loads_all_tables_and_official_scene_names(nusc, synth_root):
    from nuscenes.utils.splits import create_splits_scenes

    tables = sorted(p.stem for p in (synth_root / VERSION).glob("*.json"))
    assert len(tables) == 13
    assert len(nusc.scene) == 2 and len(nusc.sample) == 8
    splits = create_splits_scenes()
    names = [s["name"] for s in nusc.scene]
    assert sum(n in splits["train"] for n in names) == 1 and sum(n in splits["val"] for n in names) == 1
    assert {c["name"] for c in nusc.category} >= {"vehicle.car", "human.pedestrian.adult", "movable_object.barrier"}
    assert [v["token"] for v in nusc.visibility] == ["1", "2", "3", "4"]
    assert nusc.log[0]["location"] == LOCATION
    assert os.path.isfile(os.path.join(synth_root, nusc.map[0]["filename"]))


def test_every_sample_has_six_cameras_and_lidar_with_consistent_files(nusc, synth_root):
    for sample in nusc.sample:
        assert set(sample["data"]) == set(CAMERA_NAMES) | {"LIDAR_TOP"}
        lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        assert lidar["is_key_frame"] and lidar["filename"].startswith("samples/LIDAR_TOP/")
        assert lidar["timestamp"] == sample["timestamp"]
        for cam in CAMERA_NAMES:
            sd = nusc.get("sample_data", sample["data"][cam])
            with Image.open(synth_root / sd["filename"]) as im:
                assert im.size == (sd["width"], sd["height"]) and im.mode == "RGB"
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            K = np.array(cs["camera_intrinsic"])
            assert 0 < K[0, 2] < sd["width"] and 0 < K[1, 2] < sd["height"]
            # Cameras fire 0-50 ms before the LiDAR keyframe timestamp (as in nuScenes), with their own ego pose.
            assert 0 < lidar["timestamp"] - sd["timestamp"] <= 50_000
            assert nusc.get("ego_pose", sd["ego_pose_token"])["timestamp"] == sd["timestamp"]


def test_lidar_files_and_sweep_chains(nusc, synth_root):
    for scene in nusc.scene:
        first = nusc.get("sample", scene["first_sample_token"])
        sd = nusc.get("sample_data", first["data"]["LIDAR_TOP"])
        while sd["prev"]:
            sd = nusc.get("sample_data", sd["prev"])
        chain = [sd]
        while sd["next"]:
            sd = nusc.get("sample_data", sd["next"])
            assert nusc.get("sample_data", sd["prev"])["token"] == chain[-1]["token"]
            chain.append(sd)
        keys = [s for s in chain if s["is_key_frame"]]
        assert len(keys) == scene["nbr_samples"] == 4
        assert len(chain) == 4 * (1 + 4)  # default 4 sweeps before each keyframe
        stamps = [s["timestamp"] for s in chain]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        for s in chain:
            assert s["filename"].startswith("samples/" if s["is_key_frame"] else "sweeps/")
            raw = np.fromfile(synth_root / s["filename"], dtype=np.float32)
            assert raw.size % 5 == 0 and raw.size > 5 * 10000
            pts = raw.reshape(-1, 5)
            ring = pts[:, 4]
            assert np.all(ring == np.round(ring)) and ring.min() == 0 and ring.max() == 31
            assert pts[:, 3].min() >= 0 and pts[:, 3].max() <= 255
            # The ground plane is 1.84 m below the LiDAR; nothing is below it.
            assert pts[:, 2].min() == pytest.approx(-1.84023, abs=0.01)


def test_boxes_in_lidar_frame_contain_their_counted_points(nusc, synth_root):
    from nuscenes.utils.geometry_utils import points_in_box

    total, mismatched = 0, 0
    for sample in nusc.sample:
        path, boxes, _ = nusc.get_sample_data(sample["data"]["LIDAR_TOP"])  # global -> ego -> LiDAR (devkit)
        pts = np.fromfile(path, dtype=np.float32).reshape(-1, 5)
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            inside = int(points_in_box(box, pts[:, :3].T.astype(np.float64)).sum())
            total += ann["num_lidar_pts"]
            mismatched += abs(inside - ann["num_lidar_pts"])
    assert total > 5000
    assert mismatched <= 0.01 * total


def test_box_centres_project_onto_their_class_colour(nusc, synth_root):
    """Frame chain global -> LiDAR (keyframe) -> camera (camera timestamp, through both ego poses) -> pixels."""
    from nuscenes.eval.detection.utils import category_to_detection_name
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    names, colours = palette()
    checked, correct = 0, 0
    for sample in nusc.sample:
        lidar_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        e2g_l, l2e = _pose(nusc, lidar_sd)
        global2lidar = invert(e2g_l @ l2e)
        anns = [nusc.get("sample_annotation", t) for t in sample["anns"]]
        centres = transform_points(global2lidar, np.array([a["translation"] for a in anns]))
        for cam in CAMERA_NAMES:
            sd = nusc.get("sample_data", sample["data"][cam])
            e2g_c, c2e = _pose(nusc, sd)
            lidar2cam = invert(c2e) @ invert(e2g_c) @ e2g_l @ l2e
            K = np.array(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"])
            img = np.asarray(Image.open(synth_root / sd["filename"]), dtype=np.float64)
            # Every annotated box's depth range and pixel rectangle, to skip centres another box may hide.
            rects = []
            for a in anns:
                box = Box(a["translation"], a["size"], Quaternion(a["rotation"]))
                corners = transform_points(lidar2cam @ global2lidar, box.corners().T)
                uv = corners @ K.T
                z = corners[:, 2]
                if (z < 0.1).all():
                    rects.append(None)
                elif (z < 0.1).any():
                    rects.append((z.min(), -np.inf, -np.inf, np.inf, np.inf))
                else:
                    u, v = uv[:, 0] / z, uv[:, 1] / z
                    rects.append((z.min(), u.min(), v.min(), u.max(), v.max()))
            p_cam = transform_points(lidar2cam, centres)
            for i, a in enumerate(anns):
                z = p_cam[i, 2]
                if not 3.0 < z < 40.0:
                    continue
                u, v = (K @ p_cam[i])[:2] / z
                if not (2 <= u < sd["width"] - 2 and 2 <= v < sd["height"] - 2):
                    continue
                hidden = any(r is not None and j != i and r[0] < z and r[1] <= u <= r[3] and r[2] <= v <= r[4]
                             for j, r in enumerate(rects))
                if hidden:
                    continue
                patch = img[int(v) - 1:int(v) + 2, int(u) - 1:int(u) + 2].reshape(-1, 3)
                rgb = np.median(patch, axis=0)
                best = names[int(np.argmin(np.linalg.norm(colours - rgb, axis=1)))]
                checked += 1
                correct += best == f"class:{category_to_detection_name(a['category_name'])}"
    assert checked >= 30
    assert correct >= 0.95 * checked, f"{correct}/{checked} box centres show their class colour"


def test_map_expansion_loads_and_has_road_under_the_ego(nusc, synth_root):
    from nuscenes.map_expansion.map_api import NuScenesMap

    nmap = NuScenesMap(dataroot=str(synth_root), map_name=LOCATION)
    layers = ["drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "road_divider", "lane_divider"]
    seen = dict.fromkeys(layers, 0)
    for sample in nusc.sample:
        pose = nusc.get("ego_pose", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["ego_pose_token"])
        x, y = pose["translation"][:2]
        yaw = np.degrees(quat_yaw(pose["rotation"]))
        masks = nmap.get_map_mask((x, y, 100.0, 100.0), yaw, layers, canvas_size=(200, 200))
        assert masks.shape == (7, 200, 200)
        assert masks[0, 95:105, 95:105].all()  # the ego stands on the drivable area
        assert masks[0].mean() < 0.5  # ...which is a street, not everything
        for name, m in zip(layers, masks, strict=True):
            seen[name] += int(m.sum())
    assert all(v > 0 for v in seen.values()), seen


def test_occ3d_labels_shapes_classes_and_car_voxels_match_car_boxes(nusc, synth_root):
    lower, size = np.array(OCC3D_GRID.lower), np.array(OCC3D_GRID.size)
    car_voxels, car_voxels_in_box = 0, 0
    for sample in nusc.sample:
        scene = nusc.get("scene", sample["scene_token"])
        path = synth_root / "gts" / scene["name"] / sample["token"] / "labels.npz"
        with np.load(path) as f:
            sem, m_lidar, m_cam = f["semantics"], f["mask_lidar"], f["mask_camera"]
        for arr in (sem, m_lidar, m_cam):
            assert arr.shape == (200, 200, 16) and arr.dtype == np.uint8
        assert sem.max() <= len(OCC3D_CLASSES) - 1
        assert set(np.unique(m_lidar)) == {0, 1} and set(np.unique(m_cam)) == {0, 1}
        assert sem[100, 100, 2] == OCC3D_CLASSES.index("driveable_surface")  # under the ego
        assert (sem[:, :, 8:] == 17).mean() > 0.7  # mostly free above 2.2 m (buildings, buses, trailers are not)
        # Voxels seen by the cameras end at occupied voxels: the free ones in front of the ego are seen.
        assert m_cam[110:130, 95:105, 4].all() or (sem[110:130, 95:105, 4] != 17).any()
        assert m_cam.sum() > 10000 and m_lidar.sum() > 10000
        # Car voxels lie inside car boxes (boxes taken to the ego frame at the keyframe).
        e2g, _ = _pose(nusc, nusc.get("sample_data", sample["data"]["LIDAR_TOP"]))
        cars = [nusc.get("sample_annotation", t) for t in sample["anns"]]
        cars = [a for a in cars if a["category_name"] == "vehicle.car"]
        centres = transform_points(invert(e2g), np.array([a["translation"] for a in cars]))
        yaws = np.array([quat_yaw(a["rotation"]) for a in cars]) - np.arctan2(e2g[1, 0], e2g[0, 0])
        # Cars that nothing sees are not annotated (as in nuScenes), so check the car voxels the cameras see.
        idx = np.argwhere((sem == OCC3D_CLASSES.index("car")) & (m_cam == 1))
        xyz = lower + (idx + 0.5) * size
        for p in xyz:
            d = p - centres
            c, s = np.cos(yaws), np.sin(yaws)
            lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
            half = np.array([[a["size"][1] / 2, a["size"][0] / 2, a["size"][2] / 2] for a in cars]) + 0.01
            car_voxels_in_box += bool(((np.abs(lx) <= half[:, 0]) & (np.abs(ly) <= half[:, 1])
                                       & (np.abs(d[:, 2]) <= half[:, 2])).any())
        car_voxels += len(idx)
        # And every car box well inside the grid holds car voxels.
        in_grid = (np.abs(centres[:, :2]) < 38).all(axis=1)
        for ctr in centres[in_grid]:
            ix, iy, iz = ((ctr - lower) / size).astype(int)
            assert sem[ix, iy, iz] == OCC3D_CLASSES.index("car")
    assert car_voxels > 500
    # mask_camera is cast from the keyframe pose for all six cameras while annotation visibility uses each
    # camera's own pose and timestamp, so a handful of voxels of an unannotated, barely visible car differ.
    assert car_voxels_in_box >= 0.99 * car_voxels, (car_voxels_in_box, car_voxels)


def test_devkit_load_gt_reads_the_val_split(nusc):
    from nuscenes.eval.common.loaders import load_gt
    from nuscenes.eval.detection.data_classes import DetectionBox
    from nuscenes.utils.splits import val

    gt = load_gt(nusc, "val", DetectionBox)
    val_scene = next(s for s in nusc.scene if s["name"] in val)
    assert len(gt.sample_tokens) == val_scene["nbr_samples"] == 4
    train = load_gt(nusc, "train", DetectionBox)
    names = {b.detection_name for boxes in (gt, train) for t in boxes.sample_tokens for b in boxes[t]}
    assert names == set(DETECTION_CLASSES)  # all 10 detection classes are annotated
    moving = [b for t in train.sample_tokens for b in train[t] if b.attribute_name == "vehicle.moving"]
    assert moving and all(np.hypot(*b.velocity) > 1.0 for b in moving if not np.isnan(b.velocity).any())


def test_annotation_tracks_are_consistent(nusc):
    for inst in nusc.instance:
        ann = nusc.get("sample_annotation", inst["first_annotation_token"])
        n = 1
        while ann["next"]:
            nxt = nusc.get("sample_annotation", ann["next"])
            assert nxt["prev"] == ann["token"] and nxt["instance_token"] == inst["token"]
            ann, n = nxt, n + 1
        assert ann["token"] == inst["last_annotation_token"] and n == inst["nbr_annotations"]


def test_same_seed_gives_identical_files_and_cli_matches(tmp_path):
    """Sequential library call and the CLI with two worker processes write byte-identical datasets (camera
    sweeps included: the CLI writes them by default)."""
    from perception.cli.main import main
    from perception.synth.generate import generate_dataset

    args = dict(scenes=2, samples_per_scene=2, seed=3, sweeps_per_sample=1, image_size=(96, 54))
    generate_dataset(tmp_path / "a", camera_sweeps=True, **args)
    rc = main(["synth", "--out", str(tmp_path / "b"), "--scenes", "2", "--samples-per-scene", "2", "--seed", "3",
               "--sweeps-per-sample", "1", "--image-size", "96", "54", "--workers", "2"])
    assert rc == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 20
    assert len([p for p in files_a if p.parts[:2] == ("sweeps", "CAM_FRONT")]) == 4  # one per LiDAR sweep
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", [str(p) for p in files_a], shallow=False)
    assert mismatch == [] and errors == []
    generate_dataset(tmp_path / "c", **{**args, "seed": 4})
    assert not filecmp.cmp(tmp_path / "a" / VERSION / "sample_annotation.json",
                           tmp_path / "c" / VERSION / "sample_annotation.json", shallow=False)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(scenes=0), "scenes"),
        (dict(samples_per_scene=1), "samples_per_scene"),
        (dict(sweeps_per_sample=-1), "sweeps_per_sample"),
        (dict(image_size=(8, 8)), "image_size"),
        (dict(version="v9.9"), "version"),
        (dict(location="atlantis"), "location"),
        (dict(workers=0), "workers"),
    ],
)
def test_bad_arguments_raise_clear_errors(tmp_path, kwargs, word):
    from perception.synth.generate import generate_dataset

    with pytest.raises(ValueError, match=word):
        generate_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()
