"""``perception convert nuscenes``: the bag holds exactly what the devkit says about the scene.

Point counts per sweep, image bytes, intrinsics, extrinsics (tf_static) and ego poses equal the dataroot's
tables read by ``nuscenes.NuScenes``; keyframes carry their sample tokens and GT markers; MCAP and sqlite3 bags
read back with ``rosbags`` and with ``mcap`` + ``mcap_ros2``; the standard message definitions are stored.
"""

import json

import numpy as np
import pytest
from nuscenes.nuscenes import NuScenes

from perception.replay.convert import convert_scene
from perception.synth.generate import generate_dataset
from test_replay import read_mcap_ros2, read_rosbags


@pytest.fixture(scope="module")
def dataroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert_scene")
    generate_dataset(root, scenes=2, samples_per_scene=2, seed=11, sweeps_per_sample=1)
    return root


def _quat_xyzw(q_wxyz):
    w, x, y, z = q_wxyz
    q = np.array([x, y, z, w], np.float64)
    return q if q[3] >= 0 else -q


def test_bag_equals_devkit(dataroot, tmp_path):
    nusc = NuScenes(version="v1.0-trainval", dataroot=str(dataroot), verbose=False)
    scene = nusc.scene[0]
    result = convert_scene(dataroot, "v1.0-trainval", scene["name"], tmp_path / "scene.mcap", progress=False)
    assert result.problems == [] and (tmp_path / "scene.mcap").is_file()
    msgs = read_rosbags(tmp_path / "scene.mcap")
    decoded, _ = read_mcap_ros2(tmp_path / "scene.mcap")
    assert set(msgs) == set(decoded)

    # every sample_data of the scene, by channel and stamp
    sample_tokens = set()
    token = scene["first_sample_token"]
    while token:
        sample_tokens.add(token)
        token = nusc.get("sample", token)["next"]
    records = [sd for sd in nusc.sample_data if sd["sample_token"] in sample_tokens]
    lidar = [sd for sd in records if sd["channel"] == "LIDAR_TOP"]
    cams = [sd for sd in records if sd["channel"].startswith("CAM_")]
    assert result.lidar == len(lidar) and result.images == len(cams) and result.keyframes == len(sample_tokens)
    for sd in lidar:
        cloud = msgs[("/LIDAR_TOP", sd["timestamp"] * 1000)]
        points = np.fromfile(dataroot / sd["filename"], np.float32).reshape(-1, 5)
        assert cloud.width * cloud.height == len(points) and cloud.header.frame_id == "LIDAR_TOP"
        xyz = np.frombuffer(bytes(cloud.data), np.float32).reshape(-1, 4)
        np.testing.assert_array_equal(xyz, points[:, :4])
    for sd in cams:
        stamp, ch = sd["timestamp"] * 1000, sd["channel"]
        image = msgs[(f"/{ch}/image_rect_compressed", stamp)]
        assert bytes(image.data) == (dataroot / sd["filename"]).read_bytes() and image.format == "jpeg"
        info = msgs[(f"/{ch}/camera_info", stamp)]
        K = np.asarray(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["camera_intrinsic"])
        np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), K)
        assert (info.width, info.height) == (sd["width"], sd["height"]) and info.header.frame_id == ch
    # extrinsics: /tf_static base_link -> each sensor = calibrated_sensor
    (static,) = [m for (t, _), m in msgs.items() if t == "/tf_static"]
    by_child = {tf.child_frame_id: tf for tf in static.transforms}
    assert set(by_child) == {sd["channel"] for sd in records}
    for sd in records:
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        tf = by_child[sd["channel"]]
        assert tf.header.frame_id == "base_link"
        t, q = tf.transform.translation, tf.transform.rotation
        np.testing.assert_allclose([t.x, t.y, t.z], cs["translation"], atol=1e-9)
        np.testing.assert_allclose([q.x, q.y, q.z, q.w], _quat_xyzw(cs["rotation"]), atol=1e-9)
    # ego poses: /odom and /tf at every sensor stamp
    for sd in records:
        pose = nusc.get("ego_pose", sd["ego_pose_token"])
        odom = msgs[("/odom", sd["timestamp"] * 1000)]
        p = odom.pose.pose
        np.testing.assert_allclose([p.position.x, p.position.y, p.position.z], pose["translation"], atol=1e-9)
        np.testing.assert_allclose([p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w],
                                   _quat_xyzw(pose["rotation"]), atol=1e-9)
        (ego_tf,) = msgs[("/tf", sd["timestamp"] * 1000)].transforms
        assert (ego_tf.header.frame_id, ego_tf.child_frame_id) == ("map", "base_link")
    # keyframes: sample tokens and GT markers (one CUBE per annotation of a detection class)
    from nuscenes.eval.detection.utils import category_to_detection_name

    infos = [json.loads(m.data) for (t, _), m in msgs.items() if t == "/nuscenes/sample"]
    assert {i["sample_token"] for i in infos} == sample_tokens
    for info in infos:
        anns = [nusc.get("sample_annotation", a) for a in nusc.get("sample", info["sample_token"])["anns"]]
        n_det = sum(category_to_detection_name(a["category_name"]) is not None for a in anns)
        markers = msgs[("/markers/annotations", info["lidar_stamp_ns"])]
        assert sum(m.ns == "boxes" for m in markers.markers) == n_det > 0


def test_message_definitions_are_standard(dataroot, tmp_path):
    """The schemas in the file are the standard ROS 2 ones (what Foxglove and ros2 bag need to read it)."""
    from mcap.reader import make_reader

    convert_scene(dataroot, "v1.0-trainval", None, tmp_path / "scene.mcap", progress=False)
    with open(tmp_path / "scene.mcap", "rb") as f:
        summary = make_reader(f).get_summary()
    schemas = {s.name: s for s in summary.schemas.values()}
    assert {"tf2_msgs/msg/TFMessage", "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/CompressedImage",
            "sensor_msgs/msg/CameraInfo", "nav_msgs/msg/Odometry", "visualization_msgs/msg/MarkerArray",
            "std_msgs/msg/String"} <= set(schemas)
    assert all(s.encoding == "ros2msg" for s in schemas.values())
    assert "geometry_msgs/TransformStamped[] transforms" in schemas["tf2_msgs/msg/TFMessage"].data.decode()
    assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}


def test_sqlite3_all_scenes_and_cli(dataroot, tmp_path, capsys):
    from perception.cli.main import main

    out = tmp_path / "bags"
    assert main(["convert", "nuscenes", "--dataroot", str(dataroot), "--all-scenes", "--out", str(out),
                 "--format", "sqlite3", "--no-progress"]) == 0
    bags = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(bags) == 2 and all((b / "metadata.yaml").is_file() for b in bags)
    assert "LiDAR frames/s" in capsys.readouterr().out
    msgs = read_rosbags(bags[0])
    assert sum(t == "/LIDAR_TOP" for t, _ in msgs) == 4  # 2 keyframes + 2 sweeps
    # bad arguments: one line, exit 2
    assert main(["convert", "nuscenes", "--dataroot", str(dataroot), "--scene", "nope", "--out",
                 str(tmp_path / "x.mcap"), "--no-progress"]) == 2
    assert "scene 'nope' not found" in capsys.readouterr().err
    assert main(["convert", "nuscenes", "--dataroot", str(dataroot), "--all-scenes", "--out", str(out),
                 "--format", "sqlite3", "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err


def test_rosbag2_folder_with_mcap_storage(dataroot, tmp_path):
    """OUT not ending in .mcap: a rosbag2 folder (metadata.yaml + MCAP), which replay's reader opens too."""
    from perception.replay.mcap_source import McapSource
    from perception.replay.sources import open_source

    result = convert_scene(dataroot, "v1.0-trainval", None, tmp_path / "bag", progress=False)
    assert (tmp_path / "bag" / "metadata.yaml").is_file()
    source = open_source(tmp_path / "bag")
    assert isinstance(source, McapSource) and source.topics()["/LIDAR_TOP"].count == result.lidar == 4
    assert sum(1 for _ in source.messages(["/LIDAR_TOP"])) == 4 and source.problems == []
    assert sum(t == "/LIDAR_TOP" for t, _ in read_rosbags(tmp_path / "bag")) == 4
