"""Rig calibration for the ROS 2 node: YAML file round trip and errors, and reading it from tf (a stand-in
buffer built from known matrices; tf2_ros is not installed here)."""

from types import SimpleNamespace as NS

import numpy as np
import pytest

from perception.ros.calibration import (
    RigCalibration,
    calibration_from_tf,
    load_calibration_yaml,
    write_calibration_yaml,
)
from perception.ros.transforms import matrix_from_pose, pose_from_matrix

# nuScenes-like rig: LiDAR 1.84 m up, rotated -90 deg about z (LiDAR x right, y forward); a front camera.
LIDAR2EGO = matrix_from_pose([0.985, 0.0, 1.84], [0.0, 0.0, -np.sqrt(0.5), np.sqrt(0.5)])
CAM_FRONT2EGO = matrix_from_pose([1.70, 0.016, 1.51], [-0.5, 0.5, -0.5, 0.5])  # optical: z fwd, x right, y down
CAM_BACK2EGO = matrix_from_pose([-0.5, 0.0, 1.6], [0.5, 0.5, -0.5, -0.5])


def _rig():
    return RigCalibration(
        lidar2ego=LIDAR2EGO,
        lidar2cam={
            "CAM_FRONT": np.linalg.inv(CAM_FRONT2EGO) @ LIDAR2EGO,
            "CAM_BACK": np.linalg.inv(CAM_BACK2EGO) @ LIDAR2EGO,
        },
        camera_frames={"CAM_FRONT": "cam_front_optical", "CAM_BACK": "CAM_BACK"},
        lidar_frame="lidar_top",
        ego_frame="base_link",
    )


def test_camera_frame_convention():
    # a point 10 m ahead of the car (ego x) is in front of CAM_FRONT (optical z > 0) and behind CAM_BACK
    p_ego = np.array([10.0, 0.0, 1.5, 1.0])
    assert (np.linalg.inv(CAM_FRONT2EGO) @ p_ego)[2] > 0
    assert (np.linalg.inv(CAM_BACK2EGO) @ p_ego)[2] < 0
    # LiDAR y is forward
    np.testing.assert_allclose((LIDAR2EGO @ [0, 1, 0, 1])[:3], [1.985, 0, 1.84], atol=1e-12)


def test_cam2ego():
    rig = _rig()
    np.testing.assert_allclose(rig.cam2ego("CAM_FRONT"), CAM_FRONT2EGO, atol=1e-12)
    with pytest.raises(KeyError, match="CAM_FRONT_LEFT"):
        rig.cam2ego("CAM_FRONT_LEFT")


def test_yaml_round_trip(tmp_path):
    rig = _rig()
    path = tmp_path / "rig.yaml"
    write_calibration_yaml(rig, path)
    back = load_calibration_yaml(path)
    assert (back.lidar_frame, back.ego_frame) == ("lidar_top", "base_link")
    assert back.camera_frames == rig.camera_frames
    assert list(back.lidar2cam) == ["CAM_FRONT", "CAM_BACK"]
    np.testing.assert_allclose(back.lidar2ego, rig.lidar2ego, atol=1e-12)
    for name in rig.lidar2cam:
        np.testing.assert_allclose(back.lidar2cam[name], rig.lidar2cam[name], atol=1e-12)
    text = path.read_text()
    t, q = pose_from_matrix(LIDAR2EGO)
    assert "rotation" in text and "translation" in text
    assert all(abs(a - b) < 1e-12 for a, b in zip(q, [0.0, 0.0, -np.sqrt(0.5), np.sqrt(0.5)], strict=True))


def test_yaml_minimal_defaults(tmp_path):
    path = tmp_path / "min.yaml"
    path.write_text(
        "cameras:\n  CAM_FRONT:\n    lidar2cam: {translation: [0, 0, 0], rotation: [0, 0, 0, 2]}\n"
    )
    calib = load_calibration_yaml(path)
    assert calib.lidar2ego is None and calib.lidar_frame == "LIDAR_TOP" and calib.ego_frame == "base_link"
    assert calib.camera_frames == {"CAM_FRONT": "CAM_FRONT"}
    np.testing.assert_allclose(calib.lidar2cam["CAM_FRONT"], np.eye(4))  # quaternion normalised
    np.testing.assert_allclose(calib.cam2ego("CAM_FRONT"), np.eye(4))
    path.write_text("cameras: {}\n")
    assert load_calibration_yaml(path).lidar2cam == {}


GOOD_CAM = "{frame_id: CAM_FRONT, lidar2cam: {translation: [0, 0, 0], rotation: [0, 0, 0, 1]}}"
GOOD_POSE = "{translation: [1, 2, 3], rotation: [0, 0, 0, 1]}"


@pytest.mark.parametrize(
    "text, key, what",
    [
        (f"lidar2ego: {GOOD_POSE}\n", "cameras", "missing key"),
        ("lidar2ego: {translation: [1, 2, 3]}\ncameras: {}\n", "lidar2ego.rotation", "missing key"),
        ("lidar2ego: {translation: [1, 2], rotation: [0, 0, 0, 1]}\ncameras: {}\n", "lidar2ego.translation",
         "expected a list of 3 numbers, got 2 values"),
        ("lidar2ego: {translation: [1, 2, .nan], rotation: [0, 0, 0, 1]}\ncameras: {}\n", "lidar2ego.translation",
         "not finite"),
        ("lidar2ego: {translation: [1, 2, 3], rotation: [0, 0, 0, 0]}\ncameras: {}\n", "lidar2ego.rotation",
         "zero quaternion"),
        ("lidar2ego: {translation: [1, 2, 3], rotation: [0, 0, 1]}\ncameras: {}\n", "lidar2ego.rotation",
         "expected a list of 4 numbers"),
        (f"cameras:\n  CAM_TOP: {GOOD_CAM}\n", "cameras.CAM_TOP", "unknown camera name"),
        ("cameras:\n  CAM_FRONT: {frame_id: CAM_FRONT}\n", "cameras.CAM_FRONT.lidar2cam", "missing key"),
        ("cameras:\n  CAM_FRONT: {lidar2cam: {translation: [0, 0, 0], rotation: [0, 0, 'a', 1]}}\n",
         "cameras.CAM_FRONT.lidar2cam.rotation", "is not a number"),
        (f"cameras: {{}}\nlidar_2_ego: {GOOD_POSE}\n", "lidar_2_ego", "unknown key"),
        ("cameras: {}\nego_frame: null\n", "ego_frame", "non-empty frame name"),
        ("- just\n- a list\n", "top level", "expected a mapping"),
    ],
)
def test_yaml_errors_name_file_and_key(tmp_path, text, key, what):
    path = tmp_path / "bad_rig.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        load_calibration_yaml(path)
    msg = str(e.value)
    assert str(path) in msg and key in msg and what in msg, msg


def test_yaml_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_calibration_yaml(tmp_path / "nope.yaml")


class StandInBuffer:
    """A tf2 buffer over known ``frame -> world`` matrices: ``lookup_transform(target, source)`` returns the
    TransformStamped mapping source-frame points into the target frame (tf2 semantics)."""

    def __init__(self, frame2world):
        self.frame2world = frame2world
        self.calls = []

    def lookup_transform(self, target_frame, source_frame, time, timeout=None):
        self.calls.append((target_frame, source_frame, time, timeout))
        if target_frame not in self.frame2world or source_frame not in self.frame2world:
            raise RuntimeError(f'"{target_frame}" passed to lookupTransform argument target_frame does not exist.')
        T = np.linalg.inv(self.frame2world[target_frame]) @ self.frame2world[source_frame]
        t, q = pose_from_matrix(T)
        return NS(
            header=NS(frame_id=target_frame),
            child_frame_id=source_frame,
            transform=NS(translation=NS(x=t[0], y=t[1], z=t[2]), rotation=NS(x=q[0], y=q[1], z=q[2], w=q[3])),
        )


def test_calibration_from_tf_stand_in_buffer():
    ego2world = matrix_from_pose([100.0, -20.0, 0.3], [0.0, 0.0, 0.2, 0.98])  # the car somewhere in the map
    buffer = StandInBuffer({
        "base_link": ego2world,
        "lidar_top": ego2world @ LIDAR2EGO,
        "cam_front_optical": ego2world @ CAM_FRONT2EGO,
        "CAM_BACK": ego2world @ CAM_BACK2EGO,
    })
    rig = _rig()
    calib = calibration_from_tf(buffer, "lidar_top", "base_link", rig.camera_frames, timeout_s=0.5)
    np.testing.assert_allclose(calib.lidar2ego, LIDAR2EGO, atol=1e-12)
    for name in rig.lidar2cam:
        np.testing.assert_allclose(calib.lidar2cam[name], rig.lidar2cam[name], atol=1e-12)
    np.testing.assert_allclose(calib.cam2ego("CAM_FRONT"), CAM_FRONT2EGO, atol=1e-12)
    assert calib.camera_frames == rig.camera_frames
    # (target, source): ego <- lidar, then each camera <- lidar
    assert [c[:2] for c in buffer.calls] == [
        ("base_link", "lidar_top"), ("cam_front_optical", "lidar_top"), ("CAM_BACK", "lidar_top")
    ]
    import rclpy.time  # the PyPI wheel is installed here: rclpy types are passed

    assert isinstance(buffer.calls[0][2], rclpy.time.Time) and buffer.calls[0][2].nanoseconds == 0
    assert buffer.calls[0][3].nanoseconds == 500_000_000
    # a LiDAR point on a known target lands where the camera sees it
    p_lidar = np.linalg.inv(LIDAR2EGO) @ [15.0, 1.0, 1.0, 1.0]
    p_cam = calib.lidar2cam["CAM_FRONT"] @ p_lidar
    np.testing.assert_allclose(p_cam, np.linalg.inv(CAM_FRONT2EGO) @ [15.0, 1.0, 1.0, 1.0], atol=1e-12)

    with pytest.raises(LookupError) as e:
        calibration_from_tf(buffer, "lidar_top", "base_link", {"CAM_FRONT": "cam_missing"})
    assert "cam_missing" in str(e.value) and "lidar_top" in str(e.value)
    with pytest.raises(ValueError, match="CAM_TOP"):
        calibration_from_tf(buffer, "lidar_top", "base_link", {"CAM_TOP": "x"})
