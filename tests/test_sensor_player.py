"""``ros_nodes.sensor_player`` as a real process over real DDS: a test-process rclpy node (own Context, own
ROS_DOMAIN_ID) subscribes and checks what arrives against the scene read independently."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from perception.constants import CAMERA_NAMES  # noqa: E402
from perception.data.io import load_image, load_points  # noqa: E402
from perception.data.scene_stream import SceneStream  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VERSION = "v1.0-trainval"
DOMAIN_ID = os.getpid() % 100 + 100  # one DDS domain per test process: parallel runs do not see each other
DISCOVERY_ENV = {"ROS_DOMAIN_ID": str(DOMAIN_ID), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def _player(*params):
    """Start the player; ``params`` are ``name:=value`` strings."""
    env = dict(os.environ, OMP_NUM_THREADS="1", **DISCOVERY_ENV)
    cmd = [sys.executable, "-m", "ros_nodes.sensor_player", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    out, _ = proc.communicate(timeout=10)
    return out


@pytest.fixture
def ros(monkeypatch):
    """``(context, node, executor)`` on the test's own domain; always shut down."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    for k, v in DISCOVERY_ENV.items():
        monkeypatch.setenv(k, v)
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID)
    node = rclpy.create_node("sensor_player_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield context, node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def _reliable(depth=200):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def _subscribe_all(node, lidar_topic="/LIDAR_TOP", prefix="/", transport="compressed"):
    """Subscribe (reliable) to every topic of the player; returns ``({topic: [messages]}, subscriptions)``."""
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

    from ros_nodes.sensor_player import camera_topics

    types = {lidar_topic: PointCloud2, "/odom": Odometry}
    for cam in CAMERA_NAMES:
        image, info = camera_topics(prefix, cam, transport)
        types[image] = CompressedImage if transport == "compressed" else Image
        types[info] = CameraInfo
    got = {topic: [] for topic in types}
    subs = [node.create_subscription(msg_type, topic, got[topic].append, _reliable())
            for topic, msg_type in types.items()]
    return got, subs


def _open_gate(node, executor, subs, lidar_topic="/LIDAR_TOP", timeout=30.0):
    """Two-phase start, deterministic on a loaded machine. DDS discovery is asymmetric: a writer can match a
    reader that has not matched it yet, and a volatile reader then misses what came before. The player runs
    with ``wait_for_subscribers:=2`` (LiDAR and odometry topics); once every subscription in ``subs`` has
    matched the player's publisher ON ITS OWN SIDE, a second, discarding pair of subscriptions lets the player
    start. The player learns of readers in creation order (reliable, in-order endpoint discovery), so when
    it sees the second pair it has matched every earlier subscription, cameras included."""
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import PointCloud2

    deadline = time.monotonic() + timeout
    while any(sub.get_publisher_count() < 1 for sub in subs):
        assert time.monotonic() < deadline, [s.topic_name for s in subs if s.get_publisher_count() < 1]
        executor.spin_once(timeout_sec=0.05)
    return [node.create_subscription(PointCloud2, lidar_topic, lambda m: None, _reliable(5)),
            node.create_subscription(Odometry, "/odom", lambda m: None, _reliable(5))]


def _spin_until_exit(proc, executor, done, timeout=60.0):
    """Spin until the player exited and ``done()`` holds (or 10 s after its exit: a loaded machine takes the
    queued messages slowly), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    exited_at = None
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        if proc.poll() is not None:
            exited_at = exited_at or time.monotonic()
            if done() or time.monotonic() - exited_at > 10.0:
                return


def test_player_publishes_the_scene(synth_root, tmp_path, ros):
    from perception.ros.calibration import load_calibration_yaml
    from perception.ros.image import camera_info_to_intrinsics
    from perception.ros.pointcloud import pointcloud2_to_points
    from perception.ros.stamps import header_stamp_ns
    from perception.ros.transforms import odometry_to_matrix

    stream = SceneStream(synth_root, VERSION)  # '' = the first scene, as the player's default
    records = stream.records()
    lidar = [r for r in records if r.channel == "LIDAR_TOP"]
    front = [r for r in records if r.channel == "CAM_FRONT"]
    assert len(lidar) > len(stream.keyframe_tokens())  # sweeps included

    _, node, executor = ros
    topics, subs = _subscribe_all(node)
    got = {"lidar": topics["/LIDAR_TOP"], "odom": topics["/odom"], "info": topics["/CAM_FRONT/camera_info"],
           "image": topics["/CAM_FRONT/image_rect_compressed"]}

    calib_path = tmp_path / "out" / "rig.yaml"
    proc = _player(f"dataroot:={synth_root}", "rate:=5", "reliable_sensors:=true", "wait_for_subscribers:=2",
                   "start_delay:=0.2", f"calibration_out:={calib_path}")
    try:
        gate = _open_gate(node, executor, subs)  # noqa: F841  (kept alive until the end)
        _spin_until_exit(proc, executor, lambda: sum(map(len, topics.values())) == len(lidar) + len(records) + 2 * (
            len(records) - len(lidar)))
        assert proc.wait(timeout=10) == 0
    finally:
        out = _stop(proc)
    assert "Traceback" not in out, out
    assert stream.scene_name in out and "finished" in out, out
    # this dataroot has camera images at keyframes only: the player says how many LiDAR messages lack one (all
    # but the keyframe and the sweep 0.1 s before it, whose images fired <= 45.5 ms before the keyframe)
    lonely = stream.lidar_without_camera(0.12)
    assert lonely == len(lidar) - 2 * len(stream.keyframe_tokens()) > 0
    assert f"{lonely} of {len(lidar)} LiDAR messages have no image of some camera within 0.12 s" in out, out

    # LiDAR: every keyframe and sweep, in order, dataset stamps, the file's x, y, z, intensity
    assert len(got["lidar"]) == len(lidar), out
    for cam in CAMERA_NAMES:  # every camera: one image and one CameraInfo per record
        n_cam = sum(r.channel == cam for r in records)
        assert len(topics[f"/{cam}/image_rect_compressed"]) == len(topics[f"/{cam}/camera_info"]) == n_cam > 0
    assert [header_stamp_ns(m) for m in got["lidar"]] == [r.timestamp_us * 1000 for r in lidar]
    assert {m.header.frame_id for m in got["lidar"]} == {"LIDAR_TOP"}
    for i in (0, len(lidar) - 1):
        expected = load_points(lidar[i].path)[:, :4]
        np.testing.assert_array_equal(pointcloud2_to_points(got["lidar"][i]), expected)

    # odometry: one per record, each with that record's own ego pose
    assert len(got["odom"]) == len(records), ({t: len(m) for t, m in topics.items()}, out,
                                              [(x.topic_name, x.get_publisher_count()) for x in subs])
    poses = {}
    for m in got["odom"]:
        stamp, T = odometry_to_matrix(m)
        assert (m.header.frame_id, m.child_frame_id) == ("map", "base_link")
        poses.setdefault(stamp, []).append(T)
    for r in records:
        assert any(np.allclose(T, r.ego2global, atol=1e-6) for T in poses[r.timestamp_us * 1000]), r.channel

    # CAM_FRONT: the JPEG bytes unchanged and its CameraInfo (devkit intrinsics), same stamps
    nusc_K = np.asarray(stream.nusc.get("calibrated_sensor", stream.nusc.get(
        "sample_data", front[0].sample_data_token)["calibrated_sensor_token"])["camera_intrinsic"])
    assert [header_stamp_ns(m) for m in got["image"]] == [r.timestamp_us * 1000 for r in front]
    assert [header_stamp_ns(m) for m in got["info"]] == [r.timestamp_us * 1000 for r in front]
    assert got["image"][0].format == "jpeg" and got["image"][0].header.frame_id == "CAM_FRONT"
    assert bytes(got["image"][0].data) == Path(front[0].path).read_bytes()
    K, (w, h) = camera_info_to_intrinsics(got["info"][0])
    np.testing.assert_allclose(K, nusc_K)
    assert (w, h) == (front[0].width, front[0].height)
    assert got["info"][0].header.frame_id == "CAM_FRONT"

    # the calibration YAML of the scene
    calib = load_calibration_yaml(calib_path)
    expected = stream.calibration()
    np.testing.assert_allclose(calib.lidar2ego, expected["lidar2ego"], atol=1e-6)
    assert set(calib.lidar2cam) == set(CAMERA_NAMES)
    for cam in CAMERA_NAMES:
        np.testing.assert_allclose(calib.lidar2cam[cam], expected["lidar2cam"][cam], atol=1e-6)
        assert calib.camera_frames[cam] == cam


def test_player_raw_images(synth_root, ros):
    """``image_transport:=raw``: decoded rgb8 Images on ``<prefix><CAM>/image_rect``, equal to the JPEG
    decoded by the data layer; a second scene by name."""
    from perception.ros.image import image_to_rgb

    name = SceneStream.scene_names(synth_root, VERSION)[1]
    stream = SceneStream(synth_root, VERSION, name)
    back = [r for r in stream.records() if r.channel == "CAM_BACK"]
    _, node, executor = ros
    topic_args = ("/cams_lidar", "/cams/", "raw")
    topics, subs = _subscribe_all(node, *topic_args)
    images = topics["/cams/CAM_BACK/image_rect"]
    proc = _player(f"dataroot:={synth_root}", f"scene:={name}", "rate:=5", "reliable_sensors:=true",
                   "wait_for_subscribers:=2", "start_delay:=0.2", "image_transport:=raw",
                   "camera_topic_prefix:=/cams/", "lidar_topic:=/cams_lidar")
    try:
        gate = _open_gate(node, executor, subs, topic_args[0])  # noqa: F841
        _spin_until_exit(proc, executor, lambda: len(images) == len(back))
        assert proc.wait(timeout=10) == 0
    finally:
        out = _stop(proc)
    assert name in out and "Traceback" not in out, out
    assert len(images) == len(back), out
    assert images[0].encoding == "rgb8" and images[0].header.frame_id == "CAM_BACK"
    np.testing.assert_array_equal(image_to_rgb(images[0]), load_image(back[0].path))


@pytest.mark.parametrize("case", ["scene", "dataroot"])
def test_player_bad_input_exits_2(synth_root, tmp_path, case):
    if case == "scene":
        params, needle = [f"dataroot:={synth_root}", "scene:=scene-4242"], "scene-4242"
    else:
        params, needle = [f"dataroot:={tmp_path / 'nowhere'}"], str(tmp_path / "nowhere")
    proc = _player(*params)
    try:
        assert proc.wait(timeout=30) == 2
    finally:
        out = _stop(proc)
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "ERROR" in lines[0], out
    if case == "scene":
        assert all(n in lines[0] for n in SceneStream.scene_names(synth_root, VERSION))
