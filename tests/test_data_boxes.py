"""Box conventions on real data: SurroundOcc frames (points vs semantics), mono3d json (camera projection)."""

import json

import numpy as np
import pytest
from pyquaternion import Quaternion

from perception.data.boxes import box_corners, convert_boxes, points_in_boxes
from perception.geometry import make_transform

SOCC = "surroundocc/tools/generate_occupancy_with_own_data"
MONO3D = "mmdetection3d/tests/data/nuscenes/nus_infos_mono3d.coco.json"


def _socc_frame(real_dir, i):
    d = real_dir / SOCC
    return (
        np.load(d / f"pc_seman/pc_seman_{i}.npy"),
        np.load(d / f"bbox/bbox{i}.npy"),
        np.load(d / f"bbox/object_category{i}.npy"),
        np.load(d / f"bbox/boxes_token{i}.npy"),
    )


def _socc_lidar2global(real_dir, i):
    d = real_dir / SOCC
    cs = np.load(d / f"calib/lidar_calibrated_sensor{i}.npy", allow_pickle=True).item()
    pose = np.load(d / f"pose/lidar_ego_pose{i}.npy", allow_pickle=True).item()
    lidar2global = (make_transform(pose["rotation"], pose["translation"])
                    @ make_transform(cs["rotation"], cs["translation"]))
    return cs, pose, lidar2global


def _class_agreement(points, boxes, category):
    inside = points_in_boxes(points[:, :3], boxes)
    agree = inside & (points[:, 3:4].astype(np.int64) == category[None, :])
    return agree.sum() / inside.sum()


def test_surroundocc_boxes_match_point_semantics(real_dir):
    points, raw, category, _ = _socc_frame(real_dir, 0)
    right = _class_agreement(points, convert_boxes(raw, "surroundocc"), category)
    assert right >= 0.90
    # Reading the same numbers with another convention puts fewer same-class points in the boxes.
    with_vel = np.concatenate([raw, np.zeros((len(raw), 2))], axis=1)
    for wrong in ("mmdet3d", "mmdet3d_legacy"):
        assert _class_agreement(points, convert_boxes(with_vel, wrong), category) < right - 0.03
    negated = raw.copy()
    negated[:, 6] *= -1
    assert _class_agreement(points, convert_boxes(negated, "surroundocc"), category) < right - 0.02


def test_surroundocc_lidar2global_matches_hand_chain(real_dir):
    cs, pose, lidar2global = _socc_lidar2global(real_dir, 0)
    p = np.array([10.0, -3.0, 1.5])
    by_hand = Quaternion(pose["rotation"]).rotate(Quaternion(cs["rotation"]).rotate(p) + cs["translation"])
    by_hand = by_hand + np.asarray(pose["translation"])
    np.testing.assert_allclose(lidar2global[:3, :3] @ p + lidar2global[:3, 3], by_hand, atol=1e-9)


def test_static_objects_stay_put_in_global_frame(real_dir):
    """Barriers and cones (static) seen in frames 0 and 1: same global centre and heading (mod pi)."""
    globals_, tokens = [], []
    for i in (0, 1):
        _, raw, category, token = _socc_frame(real_dir, i)
        keep = np.isin(category, [1, 8])  # barrier, traffic_cone
        g = convert_boxes(convert_boxes(raw[keep], "surroundocc"), "lidar", "nuscenes_global",
                          lidar2global=_socc_lidar2global(real_dir, i)[2])
        globals_.append(g)
        tokens.append(list(token[keep]))
    common = [t for t in tokens[0] if t in tokens[1]]
    assert len(common) >= 5
    a = globals_[0][[tokens[0].index(t) for t in common]]
    b = globals_[1][[tokens[1].index(t) for t in common]]
    # x, y only: nuScenes ego poses carry z = 0, so heights are not comparable across frames.
    err = np.linalg.norm(a[:, :2] - b[:, :2], axis=1)  # annotations jitter by a few cm
    assert err.max() < 0.15 and np.median(err) < 0.05
    yaw_a = np.array([Quaternion(q).yaw_pitch_roll[0] for q in a[:, 6:10]])
    yaw_b = np.array([Quaternion(q).yaw_pitch_roll[0] for q in b[:, 6:10]])
    diff = (yaw_a - yaw_b + np.pi / 2) % np.pi - np.pi / 2
    assert np.median(np.abs(diff)) < 1e-3 and np.abs(diff).max() < 0.05  # one annotation turns by 2 degrees


@pytest.mark.parametrize("conv", ["mmdet3d_legacy", "surroundocc", "nuscenes_global", "camera"])
def test_round_trip(conv):
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(-30, 30, (6, 3)), rng.uniform(0.5, 5, (6, 3)),
                            rng.uniform(-np.pi, np.pi, (6, 1)), rng.uniform(-5, 5, (6, 2))], axis=1)
    T = make_transform(Quaternion(axis=[0.1, 0.2, 1], angle=0.7).elements, [300.0, 900.0, 2.0])
    if conv == "camera":  # a camera looks along LiDAR x with its y axis down
        T = make_transform(np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]]), [0.1, -0.3, 0.5])
    other = convert_boxes(boxes, "lidar", conv, lidar2global=T, lidar2cam=T)
    back = convert_boxes(other, conv, "lidar", lidar2global=T, lidar2cam=T)
    np.testing.assert_allclose(box_corners(back), box_corners(boxes), atol=1e-6)
    if conv != "surroundocc":  # the only convention without velocity
        np.testing.assert_allclose(back[:, 7:9], boxes[:, 7:9], atol=1e-6)
    # A sample without boxes (v1.0-test, an empty keyframe) converts both ways to zero rows.
    empty = convert_boxes(boxes[:0], "lidar", conv, lidar2global=T, lidar2cam=T)
    assert empty.shape == (0, other.shape[1])
    assert convert_boxes(empty, conv, "lidar", lidar2global=T, lidar2cam=T).shape == (0, 9)


def test_bad_convention_and_missing_matrix():
    with pytest.raises(ValueError, match="'kitti'.*allowed: lidar, mmdet3d"):
        convert_boxes(np.zeros((1, 7)), "kitti", "lidar")
    with pytest.raises(ValueError, match="lidar2global"):
        convert_boxes(np.zeros((1, 10)), "nuscenes_global", "lidar")
    with pytest.raises(ValueError, match="shape"):
        convert_boxes(np.zeros((1, 5)), "mmdet3d", "lidar")


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_mono3d_boxes_project_onto_the_real_image(real_dir):
    """CAM_BACK_LEFT: boxes through camera -> LiDAR-like frame -> lidar2img land on the json's 2D labels."""
    from perception.data.io import load_image
    from perception.data.sample import CameraView

    path = real_dir / MONO3D
    data = json.loads(path.read_text())
    image = next(im for im in data["images"] if "CAM_BACK_LEFT" in im["file_name"])
    anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
    assert len(anns) == 5
    # A LiDAR-like frame: ego at this camera's timestamp, so lidar2cam = inv(cam2ego).
    cam2ego = make_transform(image["cam2ego_rotation"], image["cam2ego_translation"])
    view = CameraView(name="CAM_BACK_LEFT", path=str(path.parent / image["file_name"]),
                      intrinsics=np.asarray(image["cam_intrinsic"]), lidar2cam=np.linalg.inv(cam2ego))
    h, w = view.image.shape[:2]
    assert (h, w) == (image["height"], image["width"]) and view.image.dtype == np.uint8
    raw = np.array([a["bbox_cam3d"] + a["velo_cam3d"] for a in anns])
    boxes = convert_boxes(raw, "camera", "lidar", lidar2cam=view.lidar2cam)
    P = view.lidar2img
    for box, ann in zip(boxes, anns, strict=True):
        c = P @ np.append(box[:3], 1.0)
        np.testing.assert_allclose(c[:2] / c[2], ann["center2d"][:2], atol=0.5)
        assert c[2] == pytest.approx(ann["center2d"][2], abs=1e-3)
        corners = box_corners(box[None])[0]
        uvw = np.c_[corners, np.ones(8)] @ P.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        projected = [max(uv[:, 0].min(), 0), max(uv[:, 1].min(), 0), min(uv[:, 0].max(), w), min(uv[:, 1].max(), h)]
        x, y, bw, bh = ann["bbox"]
        assert _iou(projected, [x, y, x + bw, y + bh]) > 0.7
    assert load_image(view.path).shape == (900, 1600, 3)
