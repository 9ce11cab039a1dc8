"""Info files on the real mmdet3d fixtures: v2 pickle, legacy pickle (calibration chains), index round trip."""

import pickle

import numpy as np
import pytest

from perception.constants import DETECTION_CLASSES
from perception.data import load_info_file, write_info_file
from perception.geometry import invert, make_transform, wrap_angle

V2 = "mmdetection3d/tests/data/nuscenes/nus_info.pkl"
LEGACY = "mmdetection3d/branch-1.0_47285b3f/tests/data/nuscenes/nus_info.pkl"


def _legacy_infos(real_dir):
    with open(real_dir / LEGACY, "rb") as f:
        return pickle.load(f)["infos"]


def test_v2_fixture_loads_with_classes_and_lazy_missing_images(real_dir):
    samples = load_info_file(real_dir / V2, box_convention="mmdet3d_legacy")
    assert [s.token for s in samples] == ["fd8420396768425eabec9bdddf7e64b6", "6eb8a3ff0abf4f3a9380a48f2a0b87ef"]
    assert samples[0].boxes.shape == (37, 9) and len(samples[0].labels) == 37
    # metainfo CLASSES order (car, truck, trailer, bus, ...) is mapped onto DETECTION_CLASSES.
    names = [DETECTION_CLASSES[i] for i in samples[0].labels[:5]]
    assert names == list(np.asarray(_legacy_infos(real_dir)[0]["gt_names"][:5]))
    assert samples[0].num_lidar_pts[0] == 169
    assert samples[0].timestamp == 1533201470448696
    cam = samples[0].cameras["CAM_FRONT"]
    with pytest.raises(FileNotFoundError, match=r"CAM_FRONT__1533201470412460\.jpg.*fd8420396768425eabec9bdddf7e64b6"):
        _ = cam.image  # the property reads the file


def test_legacy_override_equals_mmdet3d_1_0_boxes(real_dir):
    legacy = _legacy_infos(real_dir)[0]["gt_boxes"]
    # mmdet3d >= 1.0 from the legacy boxes: swap w/l, yaw -> -yaw - pi/2 (its update_data_coords rule).
    expected = np.concatenate([legacy[:, :3], legacy[:, [4, 3, 5]], wrap_angle(-legacy[:, 6:7] - np.pi / 2)], axis=1)
    boxes = load_info_file(real_dir / V2, box_convention="mmdet3d_legacy")[0].boxes
    np.testing.assert_allclose(boxes[:, :6], expected[:, :6], atol=1e-5)
    np.testing.assert_allclose(wrap_angle(boxes[:, 6] - expected[:, 6]), 0, atol=1e-5)
    plain = load_info_file(real_dir / V2)[0].boxes  # without the override the numbers are taken as-is
    assert np.abs(plain[:, 3] - boxes[:, 3]).max() > 1.0
    # z is the gravity centre: car bottoms sit on the ground, ~1.84 m below the LiDAR.
    cars = boxes[load_info_file(real_dir / V2)[0].labels == 0]
    assert abs(np.median(cars[:, 2] - cars[:, 5] / 2) + 1.84) < 0.25


def test_legacy_lidar2cam_includes_ego_motion(real_dir):
    info = _legacy_infos(real_dir)[0]
    sample = load_info_file(real_dir / LEGACY)[0]
    lidar2ego = make_transform(info["lidar2ego_rotation"], info["lidar2ego_translation"])
    moved = []
    for name, cam in info["cams"].items():
        view = sample.cameras[name]
        sensor2lidar = np.eye(4)
        sensor2lidar[:3, :3], sensor2lidar[:3, 3] = cam["sensor2lidar_rotation"], cam["sensor2lidar_translation"]
        # The pickle's sensor2lidar goes through both ego poses: our chain must equal its inverse ...
        np.testing.assert_allclose(view.lidar2cam, invert(sensor2lidar), atol=1e-6)
        # ... and differ from the chain that assumes the LiDAR timestamp for the camera.
        cam2ego = make_transform(cam["sensor2ego_rotation"], cam["sensor2ego_translation"])
        moved.append(np.abs(view.lidar2cam - invert(cam2ego) @ lidar2ego).max())
        np.testing.assert_allclose(view.lidar2img[:3, :3], view.intrinsics @ view.lidar2cam[:3, :3])
    # This car drives slowly: the cameras moved by 0.1 to a few mm, still far above the 1e-6 match.
    assert min(moved) > 1e-4 and max(moved) > 3e-3


def test_sweeps_are_motion_compensated(real_dir):
    info = _legacy_infos(real_dir)[1]
    sample = load_info_file(real_dir / LEGACY, data_root=real_dir / "mmdetection3d")[1]
    sw = info["sweeps"][0]
    hand = (invert(make_transform(info["lidar2ego_rotation"], info["lidar2ego_translation"]))
            @ invert(make_transform(info["ego2global_rotation"], info["ego2global_translation"]))
            @ make_transform(sw["ego2global_rotation"], sw["ego2global_translation"])
            @ make_transform(sw["sensor2ego_rotation"], sw["sensor2ego_translation"]))
    np.testing.assert_allclose(sample.sweeps[0].sweep2lidar, hand, atol=1e-9)
    assert sample.sweeps[0].time_lag == pytest.approx((info["timestamp"] - sw["timestamp"]) / 1e6, rel=1e-6)
    points = sample.points
    raw = [np.fromfile(sweep.path, np.float32).reshape(-1, 5) for sweep in sample.sweeps]
    assert len(sample.sweeps) == 2 and points.shape == (100 + sum(map(len, raw)), 5)
    first = points[100 : 100 + len(raw[0])]
    np.testing.assert_allclose(first[:, 4], sample.sweeps[0].time_lag, rtol=1e-6)
    np.testing.assert_allclose(first[:, :3], raw[0][:, :3] @ hand[:3, :3].T + hand[:3, 3], atol=1e-4)
    assert (points[:100, 4] == 0).all()


def test_index_round_trip_and_split_selection(real_dir, tmp_path):
    with open(real_dir / V2, "rb") as f:
        data = pickle.load(f)
    for entry, scene in zip(data["data_list"], ["scene-0001", "scene-0003"], strict=True):  # train, val
        entry["scene_name"] = scene
    meta = dict(data["metainfo"], box_convention="mmdet3d_legacy",
                data_root=str(real_dir / "mmdetection3d/tests/data/nuscenes"))
    out = tmp_path / "index.pkl"
    write_info_file(out, data["data_list"], meta)
    val = load_info_file(out, split="val")
    assert [s.token for s in val] == ["6eb8a3ff0abf4f3a9380a48f2a0b87ef"]
    assert val[0].points.shape[1] == 5  # the recorded data_root resolves the sensor files
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        load_info_file(out, split="validation")
