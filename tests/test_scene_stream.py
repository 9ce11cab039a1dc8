"""SceneStream (every sensor message of a scene, in time order) on a synthesized nuScenes-format dataroot,
checked against the devkit's tables recomputed independently with pyquaternion; the player's publication
plan (no DDS)."""

import inspect
import os

import numpy as np
import pytest
from pyquaternion import Quaternion

from perception.constants import CAMERA_NAMES
from perception.data.scene_stream import SceneStream

VERSION = "v1.0-trainval"


def _sweeps_per_sample():
    """The generator's default, read from its signature (the ``synth_root`` fixture uses the defaults)."""
    from perception.synth.generate import generate_dataset

    return inspect.signature(generate_dataset).parameters["sweeps_per_sample"].default


def _T(record):
    """4x4 from a table record's ``rotation`` (w, x, y, z) and ``translation``, via pyquaternion."""
    T = Quaternion(record["rotation"]).transformation_matrix
    T[:3, 3] = record["translation"]
    return T


@pytest.fixture(scope="module")
def nusc(synth_root):
    from nuscenes.nuscenes import NuScenes

    return NuScenes(version=VERSION, dataroot=str(synth_root), verbose=False)


@pytest.fixture(scope="module")
def streams(synth_root, nusc):
    return {s["name"]: SceneStream(synth_root, VERSION, s["name"], nusc=nusc) for s in nusc.scene}


def _scene_sample_data(nusc, scene, channel):
    """Tokens of the ``channel`` sample_data whose sample is in ``scene`` (a full table scan, not a chain walk)."""
    samples = {s["token"] for s in nusc.sample if s["scene_token"] == scene["token"]}
    return {sd["token"] for sd in nusc.sample_data if sd["sample_token"] in samples and sd["channel"] == channel}


def test_counts_order_and_tokens(nusc, streams):
    n_sweeps = _sweeps_per_sample()
    assert n_sweeps >= 1  # the test means something only with sweeps
    for scene in nusc.scene:
        stream = streams[scene["name"]]
        assert stream.problems == []
        records = stream.records()
        lidar = [r for r in records if r.channel == "LIDAR_TOP"]
        # keyframes x (1 + sweeps): every sweep is in the stream, not only the keyframes
        assert len(stream.keyframe_tokens()) == scene["nbr_samples"]
        assert len(lidar) == scene["nbr_samples"] * (1 + n_sweeps)
        assert sum(r.is_key_frame for r in lidar) == scene["nbr_samples"]
        assert [r.sample_token for r in lidar if r.is_key_frame] == stream.keyframe_tokens()
        ts = [r.timestamp_us for r in records]
        assert ts == sorted(ts)
        assert records == sorted(records, key=lambda r: (r.timestamp_us, r.channel))
        # the same sample_data as a full scan of the table, per channel
        for channel in ("LIDAR_TOP",) + CAMERA_NAMES:
            got = [r.sample_data_token for r in records if r.channel == channel]
            assert len(got) == len(set(got))
            assert set(got) == _scene_sample_data(nusc, scene, channel), channel
        assert {r.channel for r in records} == {"LIDAR_TOP", *CAMERA_NAMES}
        assert len(stream) == len(records) == scene["nbr_samples"] * (1 + n_sweeps + len(CAMERA_NAMES))
        # keyframe tokens in the scene's sample chain order
        first = nusc.get("sample", scene["first_sample_token"])
        assert stream.keyframe_tokens()[0] == first["token"]
        assert stream.keyframe_tokens()[-1] == scene["last_sample_token"]


def test_records_poses_and_files(synth_root, nusc, streams):
    for stream in streams.values():
        for r in stream.records():
            sd = nusc.get("sample_data", r.sample_data_token)
            assert r.timestamp_us == sd["timestamp"] and r.channel == sd["channel"]
            assert r.sample_token == sd["sample_token"] and r.is_key_frame == sd["is_key_frame"]
            assert r.path == os.path.join(os.path.abspath(str(synth_root)), sd["filename"])
            assert os.path.isabs(r.path) and os.path.isfile(r.path)
            # each record's OWN ego pose (sweeps and cameras are not at the keyframe pose)
            np.testing.assert_allclose(r.ego2global, _T(nusc.get("ego_pose", sd["ego_pose_token"])), atol=1e-9)
            cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
            np.testing.assert_allclose(r.sensor2ego, _T(cs), atol=1e-9)
            assert r.ego2global.dtype == np.float64 and r.ego2global.shape == (4, 4)
            if r.channel == "LIDAR_TOP":
                assert r.intrinsics is None and r.width == 0 and r.height == 0
                assert r.path.endswith(".pcd.bin")
            else:
                np.testing.assert_allclose(r.intrinsics, np.asarray(cs["camera_intrinsic"]), atol=0)
                assert (r.width, r.height) == (sd["width"], sd["height"]) and r.width > 0
        # sweeps move: consecutive LiDAR records have different poses
        lidar = stream.lidar_records()
        assert not np.allclose(lidar[0].ego2global, lidar[1].ego2global)


def test_calibration(nusc, streams):
    for scene in nusc.scene:
        stream = streams[scene["name"]]
        first = nusc.get("sample", scene["first_sample_token"])
        cs = {ch: nusc.get("calibrated_sensor", nusc.get("sample_data", tok)["calibrated_sensor_token"])
              for ch, tok in first["data"].items()}
        calib = stream.calibration()
        lidar2ego = _T(cs["LIDAR_TOP"])
        np.testing.assert_allclose(calib["lidar2ego"], lidar2ego, atol=1e-9)
        assert set(calib["lidar2cam"]) == set(CAMERA_NAMES)
        assert calib["camera_frames"] == {c: c for c in CAMERA_NAMES}
        assert calib["lidar_frame"] == "LIDAR_TOP" and calib["ego_frame"] == "base_link"
        for cam in CAMERA_NAMES:
            expected = np.linalg.inv(_T(cs[cam])) @ lidar2ego
            np.testing.assert_allclose(calib["lidar2cam"][cam], expected, atol=1e-9)
        intr = stream.camera_intrinsics()
        for cam in CAMERA_NAMES:
            K, w, h = intr[cam]
            np.testing.assert_allclose(K, np.asarray(cs[cam]["camera_intrinsic"]))
            assert w > 0 and h > 0


def test_default_scene_and_names(synth_root, nusc, streams):
    names = [s["name"] for s in nusc.scene]
    assert SceneStream.scene_names(nusc=nusc) == names
    assert SceneStream.scene_names(synth_root, VERSION) == names
    assert SceneStream(synth_root, VERSION, "", nusc=nusc).scene_name == names[0]
    assert SceneStream(synth_root, VERSION, nusc=nusc).scene_name == names[0]
    # the two scenes do not share records
    a, b = (set(r.sample_data_token for r in streams[n].records()) for n in names[:2])
    assert not a & b


def test_unknown_scene_and_bad_dataroot(synth_root, nusc, tmp_path):
    names = [s["name"] for s in nusc.scene]
    with pytest.raises(ValueError) as e:
        SceneStream(synth_root, VERSION, "scene-9999", nusc=nusc)
    assert "scene-9999" in str(e.value) and all(n in str(e.value) for n in names)
    with pytest.raises(FileNotFoundError, match="v1.0-mini"):
        SceneStream(synth_root, "v1.0-mini")
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        SceneStream(missing, VERSION)


def test_missing_files_are_reported_and_skipped(synth_root, nusc, tmp_path):
    """A dataroot whose tables list files that are not there (a partial download): those records are skipped
    and named in ``problems``; the rest of the scene streams."""
    root = tmp_path / "partial"
    root.mkdir()
    for name in (VERSION, "maps"):
        os.symlink(synth_root / name, root / name)
    scene = nusc.scene[0]
    full = SceneStream(synth_root, VERSION, scene["name"], nusc=nusc).records()
    lidar_sweep = next(r for r in full if r.channel == "LIDAR_TOP" and not r.is_key_frame)
    camera = next(r for r in full if r.channel == "CAM_BACK")
    truncated = next(r for r in full if r.channel == "LIDAR_TOP" and r.is_key_frame)
    for r in full:
        rel = os.path.relpath(r.path, synth_root)
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if r is truncated:
            dst.write_bytes(open(r.path, "rb").read()[:-3])
        elif r is not lidar_sweep and r is not camera:
            os.symlink(r.path, dst)
    stream = SceneStream(root, VERSION, scene["name"])
    assert len(stream.records()) == len(full) - 3
    assert len(stream.problems) == 3
    text = "\n".join(stream.problems)
    for r in (lidar_sweep, camera, truncated):
        assert os.path.relpath(r.path, synth_root) in text
    assert "truncated" in text and "missing" in text
    assert {r.sample_data_token for r in stream.records()} == \
        {r.sample_data_token for r in full} - {lidar_sweep.sample_data_token, camera.sample_data_token,
                                                truncated.sample_data_token}


def test_publish_plan(streams):
    """The player's schedule without DDS: odometry before each sensor message, times scaled by the rate."""
    from ros_nodes.sensor_player import camera_topics, publish_plan

    stream = next(iter(streams.values()))
    records = stream.records()
    plan = publish_plan(stream, rate=2.0)
    n_cam = len(stream.camera_records())
    assert [p.kind for p in plan].count("odom") == len(records)
    assert [p.kind for p in plan].count("lidar") == len(stream.lidar_records())
    assert [p.kind for p in plan].count("image") == [p.kind for p in plan].count("camera_info") == n_cam
    offsets = [p.offset_s for p in plan]
    assert offsets == sorted(offsets) and offsets[0] == 0.0
    assert offsets[-1] == pytest.approx(stream.duration_s() / 2.0)
    for i, item in enumerate(plan):
        if item.kind == "odom":
            assert plan[i + 1].record is item.record and plan[i + 1].kind in ("lidar", "camera_info")
            assert plan[i + 1].offset_s == item.offset_s
        if item.kind == "camera_info":
            assert plan[i + 1].kind == "image" and plan[i + 1].record is item.record
        if item.kind != "odom":
            assert plan[i - 1].record is item.record
    assert publish_plan([], 1.0) == []
    with pytest.raises(ValueError):
        publish_plan(stream, 0.0)
    assert camera_topics("/", "CAM_FRONT") == ("/CAM_FRONT/image_rect_compressed", "/CAM_FRONT/camera_info")
    assert camera_topics("/cams/", "CAM_BACK", "raw") == ("/cams/CAM_BACK/image_rect", "/cams/CAM_BACK/camera_info")
    assert camera_topics("", "CAM_BACK")[1] == "CAM_BACK/camera_info"
