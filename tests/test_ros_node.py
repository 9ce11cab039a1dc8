"""perception_node over real DDS (the PyPI ROS 2 wheels): node, sensor player and test each in their own process.

- The node's boxes, BEV map and occupancy for a keyframe equal ``Predictor.predict_sample`` on the same
  dataset sample: message conversion, calibration, sweep accumulation and camera association lose nothing.
- Bad messages, a camera that stops, a LiDAR that stops: reported on /diagnostics, the node goes on; without a
  fallback the fusion model runs the camera-triggered frames with its calibrated no-LiDAR steps.
- Bad parameters: one log line, exit code 2.
"""

import warnings

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from output_checks import check_map, check_occupancy, check_outputs, markers_boxes
from perception.config import load_config
from perception.constants import BEV_MAP_CLASSES
from perception.data import build_index, load_info_file
from perception.data.io import load_image, load_points
from perception.data.scene_stream import SceneStream
from perception.models import build_model
from perception.models.precision import autocast_dtype
from perception.ros.calibration import RigCalibration, write_calibration_yaml
from perception.ros.image import (
    intrinsics_to_camera_info,
    jpeg_bytes_to_compressed,
    rgb_to_image,
)
from perception.ros.pointcloud import make_pointcloud2, points_to_pointcloud2
from perception.ros.stamps import make_header, stamp_to_ns
from perception.ros.transforms import matrix_to_odometry
from perception.runtime import Predictor
from perception.runtime.frame import CameraFrame, Frame
from perception.synth.generate import generate_dataset
from perception.training.checkpoint import save_checkpoint
from ros_harness import REPO, Bus, diagnostics_values, node_threads, start_node, stop

CONFIG = str(REPO / "configs" / "tiny.py")
LIDAR_CONFIG = str(REPO / "configs" / "tiny_lidar.py")
CAMERA_CONFIG = str(REPO / "configs" / "tiny_camera.py")
LIDAR = ("mmdetection3d/tests/data/nuscenes/samples/LIDAR_TOP/"
         "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin")
IMAGE = ("mmdetection3d/tests/data/nuscenes/samples/CAM_BACK_LEFT/"
         "n015-2018-07-18-11-07-57+0800__CAM_BACK_LEFT__1531883530447423.jpg")
K = np.array([[1260.0, 0.0, 800.0], [0.0, 1260.0, 450.0], [0.0, 0.0, 1.0]])
L2C = np.eye(4)  # LiDAR (x right, y forward, z up) -> a camera looking along LiDAR +y
L2C[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
RELIABLE_NODE = {"sensor_qos": "reliable", "max_input_wait": 2.0, "score_threshold": 0.0, "lidar_timeout": 1.0,
                 "diagnostics_period": 0.5}


@pytest.fixture
def bus():
    b = Bus()
    yield b
    b.close()


def stamp_of(msg):
    return stamp_to_ns((msg.markers[0] if isinstance(msg, MarkerArray) else msg).header.stamp)


def latest(bus, topic, stamp_ns):
    return next((m for m in reversed(bus.messages(topic)) if stamp_of(m) == stamp_ns), None)


# ---------------------------------------------------------------------------------------------- equivalence
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 3-keyframe synthetic scene with one sweep before each keyframe, its index and calibration YAML. The
    last keyframe is compared: by then every camera has been flowing for a keyframe (DDS may match a camera
    topic after the first images were sent), so the node waits for that keyframe's images."""
    root = tmp_path_factory.mktemp("node_scene")
    generate_dataset(root, scenes=1, samples_per_scene=3, seed=5, sweeps_per_sample=1)
    build_index(str(root), "v1.0-trainval", str(root / "index.pkl"), num_sweeps=1, progress=False)
    samples = load_info_file(str(root / "index.pkl"), data_root=str(root), num_sweeps=1)
    stream = SceneStream(str(root), "v1.0-trainval")
    write_calibration_yaml(RigCalibration(**stream.calibration()), root / "rig.yaml")
    return root, sorted(samples, key=lambda s: s.timestamp)


def test_node_output_equals_predict_sample(bus, scene, tiny_random_checkpoint, tmp_path):
    checkpoint = tiny_random_checkpoint
    root, samples = scene
    last = samples[-1]  # the scene's last LiDAR message: never replaced in the node's frame slot
    stamp = last.timestamp * 1000
    topics = {"/perception/markers": MarkerArray, "/perception/occupancy": PointCloud2, "/diagnostics": DiagnosticArray}
    topics.update({f"/perception/bev/{c}": OccupancyGrid for c in BEV_MAP_CLASSES})
    for topic, kind in topics.items():
        bus.subscribe(topic, kind)
    # max_input_wait 10 s: under CI load the keyframe's images may come late; the node must wait for them here
    # map memory off: the keyframe is compared with predict_sample alone (the memory: tests/test_map_memory.py)
    node = start_node("ros_nodes.perception_node", {"config": CONFIG, "checkpoint": str(checkpoint),
                      "cfg_options": "model.map_memory_s=0",
                      "calibration": str(root / "rig.yaml"), **dict(RELIABLE_NODE, max_input_wait=10.0)},
                      tmp_path / "node.log",
                      params_file=REPO / "configs" / "ros" / "perception.yaml")  # the shipped parameter file
    player = start_node("ros_nodes.sensor_player", {"dataroot": str(root), "rate": 0.25, "reliable_sensors": True,
                        "wait_for_subscribers": 1, "start_delay": 1.0}, tmp_path / "player.log")
    try:
        assert bus.wait_for(lambda: latest(bus, "/perception/occupancy", stamp) is not None, 120, [node]), \
            (tmp_path / "node.log").read_text()[-3000:]
        bus.wait_for(lambda: all(latest(bus, t, stamp) for t in topics if t != "/diagnostics"), 10)
    finally:
        stop(player), stop(node)
    # The inputs first: every camera of the keyframe and its past sweep reached the frame.
    inputs = [diagnostics_values(m, ": inputs") for m in bus.messages("/diagnostics")]
    seen = next(v for v in reversed(inputs) if v and "sweeps_merged" in v)
    assert seen["sweeps_merged"] == "1" and all(seen[f"camera {c}"] == "ok" for c in last.cameras), seen
    with node_threads():
        expected = Predictor(load_config(CONFIG, ["model.map_memory_s=0"]), checkpoint).predict_sample(last)

    check_outputs({t: latest(bus, t, stamp) for t in topics if t != "/diagnostics"}, expected)


# ---------------------------------------------------------------------------------------------- robustness
class Sensors:
    """Test-side publishers of one LiDAR, CAM_FRONT (compressed) and CAM_FRONT_LEFT (raw) and odometry."""

    def __init__(self, bus, real_dir):
        self.bus = bus
        self.lidar = bus.publisher("/LIDAR_TOP", PointCloud2)
        self.odom = bus.publisher("/odom", Odometry)
        self.front = bus.publisher("/CAM_FRONT/image_rect_compressed", CompressedImage)
        self.front_info = bus.publisher("/CAM_FRONT/camera_info", CameraInfo)
        self.left = bus.publisher("/CAM_FRONT_LEFT/image_rect", Image)
        self.left_info = bus.publisher("/CAM_FRONT_LEFT/camera_info", CameraInfo)
        self.points = load_points(str(real_dir / LIDAR))[::4, :4]
        self.jpeg = (real_dir / IMAGE).read_bytes()
        self.rgb = np.zeros((90, 160, 3), np.uint8)
        self.stamp = 1_700_000_000_000_000_000

    def frame(self, cameras=True, cloud=None):
        """One sensor moment: odometry, cameras (10 ms after the LiDAR stamp), LiDAR. Returns the LiDAR stamp."""
        self.stamp += 100_000_000
        t = self.stamp
        self.odom.publish(matrix_to_odometry(np.eye(4), t, "odom", "base_link"))
        if cameras:
            self.front_info.publish(intrinsics_to_camera_info(K, 1600, 900, make_header(t + 10**7, "CAM_FRONT")))
            self.front.publish(jpeg_bytes_to_compressed(self.jpeg, make_header(t + 10**7, "CAM_FRONT")))
            self.left_info.publish(intrinsics_to_camera_info(K * [[0.1], [0.1], [1]], 160, 90,
                                                             make_header(t + 10**7, "CAM_FRONT_LEFT")))
            self.left.publish(rgb_to_image(self.rgb, make_header(t + 10**7, "CAM_FRONT_LEFT")))
        self.lidar.publish(cloud(t) if cloud else points_to_pointcloud2(self.points, make_header(t, "LIDAR_TOP")))
        return t

    def cameras_only(self):
        """One moment without LiDAR: odometry and both cameras. Returns CAM_FRONT's stamp."""
        self.stamp += 100_000_000
        t = self.stamp + 10**7
        self.odom.publish(matrix_to_odometry(np.eye(4), self.stamp, "odom", "base_link"))
        self.odom.publish(matrix_to_odometry(np.eye(4), t, "odom", "base_link"))
        self.front.publish(jpeg_bytes_to_compressed(self.jpeg, make_header(t, "CAM_FRONT")))
        self.left.publish(rgb_to_image(self.rgb, make_header(t, "CAM_FRONT_LEFT")))
        return t


@pytest.fixture(scope="module")
def rig_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("rig") / "rig.yaml"
    write_calibration_yaml(RigCalibration(lidar2ego=np.eye(4), lidar2cam={"CAM_FRONT": L2C, "CAM_FRONT_LEFT": L2C}),
                           path)
    return path


FAST = "model.head.occ.lidar_cues=False model.refiner=None"  # tiny without its two refiners: ~2x faster frames


def test_node_survives_bad_input_and_sensor_dropouts(bus, rig_yaml, real_dir, tmp_path):
    torch.manual_seed(0)
    precision = "bf16" if autocast_dtype("cpu", True, True)[0] == torch.bfloat16 else "fp32"
    checkpoint = tmp_path / "fast.pth"
    save_checkpoint(checkpoint, {"model": build_model(load_config(CONFIG, FAST.split()).model).state_dict()})
    lidar_only = tmp_path / "lidar_only.pth"  # the fallback for frames without cameras
    save_checkpoint(lidar_only, {"model": build_model(load_config(LIDAR_CONFIG).model).state_dict()})
    camera_only = tmp_path / "camera_only.pth"  # the fallback for frames without LiDAR
    save_checkpoint(camera_only, {"model": build_model(load_config(CAMERA_CONFIG).model).state_dict()})
    for topic, kind in {"/perception/markers": MarkerArray, "/diagnostics": DiagnosticArray}.items():
        bus.subscribe(topic, kind)
    log = tmp_path / "node.log"
    node = start_node("ros_nodes.perception_node", {
        "config": CONFIG, "checkpoint": str(checkpoint), "calibration": str(rig_yaml),
        "cameras": "CAM_FRONT CAM_FRONT_LEFT", "raw_cameras": "CAM_FRONT_LEFT", "cfg_options": FAST, "bf16": True,
        "no_camera_config": LIDAR_CONFIG, "no_camera_checkpoint": str(lidar_only),
        "no_lidar_config": CAMERA_CONFIG, "no_lidar_checkpoint": str(camera_only),
        **dict(RELIABLE_NODE, lidar_timeout=3.0)}, log)
    sensors = Sensors(bus, real_dir)
    try:
        inputs_topics = ["/LIDAR_TOP", "/odom", "/CAM_FRONT/image_rect_compressed", "/CAM_FRONT/camera_info",
                         "/CAM_FRONT_LEFT/image_rect", "/CAM_FRONT_LEFT/camera_info"]
        subscribed = bus.wait_for(lambda: all(bus.node.count_subscribers(t) for t in inputs_topics), 60, [node])
        assert subscribed, log.read_text()

        def answered(stamp, timeout=30):
            return bus.wait_for(lambda: latest(bus, "/perception/markers", stamp) is not None, timeout, [node])

        def inputs():
            diags = [diagnostics_values(m, ": inputs") for m in bus.messages("/diagnostics")]
            return [d for d in diags if d]

        assert answered(sensors.frame(), 60), log.read_text()[-3000:]
        def cameras_ok():
            return inputs()[-1]["camera CAM_FRONT"] == "ok" and inputs()[-1]["camera CAM_FRONT_LEFT"] == "ok"

        # The cameras flow once DDS has matched their publishers with the node (an image sent before is lost, and
        # on a loaded machine that can take more than one frame): then the node waits for their images.
        for _ in range(5):
            assert answered(sensors.frame())
            if cameras_ok():
                break
        assert cameras_ok(), inputs()[-1]
        # bf16:=true runs bf16 where this CPU has native bf16, fp32 (said once in the log) where it does not
        latency = [d for d in (diagnostics_values(m, ": latency") for m in bus.messages("/diagnostics")) if d]
        assert latency[-1]["precision"] == precision and float(latency[-1]["input_age"]) > 0, latency[-1]
        assert latency[-1]["fallback"] == "none"
        # a CAM_FRONT image stamped 5 s ahead (a camera clock running ahead) while the LiDAR flows: no frame of its own
        ahead = sensors.stamp + 5 * 10**9
        sensors.front.publish(jpeg_bytes_to_compressed(sensors.jpeg, make_header(ahead, "CAM_FRONT")))
        assert answered(sensors.frame())
        frames = [d for d in (diagnostics_values(m, ": frames") for m in bus.messages("/diagnostics")) if d]
        assert frames[-1]["camera_triggered"] == "0" and latest(bus, "/perception/markers", ahead) is None

        def cloud_without_xyz(t):
            return make_pointcloud2(make_header(t, "LIDAR_TOP"), {"a": np.zeros(10, np.float32)})

        def cloud_short_step(t):
            msg = points_to_pointcloud2(sensors.points, make_header(t, "LIDAR_TOP"))
            msg.point_step = 8  # fields x, y, z, intensity need 16 bytes
            return msg

        bad = {
            "lidar: pointcloud_no_xyz": lambda: sensors.frame(cameras=False, cloud=cloud_without_xyz),
            "lidar: pointcloud_layout": lambda: sensors.frame(cameras=False, cloud=cloud_short_step),
            "CAM_FRONT: image_decode": lambda: sensors.front.publish(
                CompressedImage(header=make_header(sensors.stamp, "CAM_FRONT"), format="jpeg",
                                data=b"\xff\xd8garbage")),
            "CAM_FRONT_LEFT: image_encoding": lambda: sensors.left.publish(Image(
                header=make_header(sensors.stamp, "CAM_FRONT_LEFT"), height=2, width=2, encoding="yuv422", step=4,
                data=bytes(8))),
            "CAM_FRONT_LEFT: image_size": lambda: sensors.left.publish(
                rgb_to_image(np.zeros((45, 80, 3), np.uint8), make_header(sensors.stamp, "CAM_FRONT_LEFT"))),
            "CAM_FRONT: camera_info_k": lambda: sensors.front_info.publish(
                CameraInfo(header=make_header(sensors.stamp, "CAM_FRONT"), width=1600, height=900, k=[0.0] * 9)),
        }
        for kind, send in bad.items():
            send()
            send()  # twice: logged once, counted twice
            assert answered(sensors.frame()), f"no answer after {kind}"
            key = f"bad input {kind}"
            assert bus.wait_for(lambda key=key: inputs()[-1].get(key, "").startswith("2 ("), 5), inputs()[-1]
            assert inputs()[-1]["_level"] >= 1  # WARN
        # NaN and empty clouds are degraded frames, not bad ones: answered, NaNs dropped
        nan_points = sensors.points.copy()
        nan_points[:50] = np.nan
        assert answered(sensors.frame(cloud=lambda t: points_to_pointcloud2(nan_points, make_header(t, "LIDAR_TOP"))))
        empty = sensors.frame(
            cloud=lambda t: points_to_pointcloud2(np.zeros((0, 4), np.float32), make_header(t, "LIDAR_TOP")))
        assert answered(empty) and len(markers_boxes(latest(bus, "/perception/markers", empty))[0]) >= 0
        # a camera that stops: outputs keep coming, diagnostics name it
        sensors.frame()
        for _ in range(3):
            stamp = sensors.frame(cameras=False)
        assert answered(stamp)
        assert bus.wait_for(lambda: inputs()[-1].get("camera CAM_FRONT") == "stale", 5), inputs()[-1]
        assert "CAM_FRONT" in inputs()[-1]["_message"]
        # ... and with no camera left, the LiDAR-only fallback model ran the frame
        latency = [d for d in (diagnostics_values(m, ": latency") for m in bus.messages("/diagnostics")) if d]
        assert latency[-1]["fallback"] == "no_cameras", latency[-1]
        assert "no cameras: fallback model" in inputs()[-1]["_message"]
        # the LiDAR stops: diagnostics say so (ERROR); output resumes when it returns
        assert bus.wait_for(lambda: inputs()[-1]["lidar"].startswith("no message for"), 15)
        assert inputs()[-1]["_level"] == 2
        # ... meanwhile, once lidar_timeout (3 s) of camera stamps passed without LiDAR, CAM_FRONT (lidar_down_camera
        # 'auto') triggers the frames, and the camera-only fallback runs them
        for _ in range(28):
            sensors.cameras_only()
        quiet = sensors.cameras_only()  # 2.91 s after the last LiDAR stamp: not yet (the next is 3.01 s)
        last = sensors.cameras_only()
        assert answered(last), log.read_text()[-3000:]
        assert latest(bus, "/perception/markers", quiet) is None
        def newest(suffix):
            return [d for d in (diagnostics_values(m, suffix) for m in bus.messages("/diagnostics")) if d][-1]

        assert bus.wait_for(lambda: newest(": latency")["fallback"] == "no_lidar", 5), newest(": latency")
        assert int(newest(": frames")["camera_triggered"]) >= 1
        back = sensors.frame()
        # (the diagnostics timer reports the LiDAR within lidar_timeout of its message, whatever the worker does)
        assert bus.wait_for(lambda: inputs()[-1]["lidar"] == "ok", 5)
        assert answered(back)
        assert node.poll() is None
    finally:
        code = stop(node)
    text = log.read_text()
    for kind in bad:
        assert text.count(kind.split(": ")[1]) >= 1
    assert text.count("pointcloud_no_xyz") == 1, "each kind of bad input is logged once"
    assert text.count("native bf16") == (precision == "fp32"), "the bf16 fallback is logged once, or not at all"
    assert text.count("warm-up frame") == 1  # the shipped default: one synthetic frame through the models at start
    assert "Traceback" not in text and code == 0


def test_lidar_silence_runs_the_fusion_model_without_lidar_with_its_calibrated_steps(bus, rig_yaml, real_dir,
                                                                                     tmp_path):
    """No fallback set: once the LiDAR is silent, the camera-triggered frames run the fusion model itself, with the
    no-LiDAR BatchNorm statistics and the occupancy prior its (calibrated) checkpoint carries and tiny's no-LiDAR
    steps (camera map blend, prior fill, ground from the map), each named on /diagnostics; outputs keep coming, and
    the last camera-triggered frame's map and occupancy equal ``Predictor.predict`` on the same frame built by hand
    (map memory off, so that the frame alone decides them)."""
    from perception.constants import OCC3D_CLASSES, OCC3D_FREE, OCC3D_GRID
    from perception.models.sensor_norms import SENSOR_NORMS_KEY, condition_layers
    from perception.runtime.occ_prior import OCC_PRIOR_KEY

    torch.manual_seed(0)
    model = build_model(load_config(CONFIG, FAST.split()).model)
    model.head.occ.head.mlp[-1].bias.data[OCC3D_FREE] += 0.2  # a random head that calls some voxels free
    model.camera_map.net[-1].bias.data[BEV_MAP_CLASSES.index("drivable_area")] = 3.0  # a camera head sure of road
    norms = {name: {"running_mean": m.running_mean.clone(), "running_var": m.running_var * 1.5}
             for name, m in condition_layers(model, "no_lidar").items()}
    prior = np.full(OCC3D_GRID.shape, OCC3D_FREE, np.uint8)
    prior[:, :, 2] = OCC3D_CLASSES.index("terrain")  # a ground layer for the fill, and so for the relabel
    checkpoint = tmp_path / "calibrated.pth"
    save_checkpoint(checkpoint, {"model": model.state_dict(), SENSOR_NORMS_KEY: {"conditions": {"no_lidar": norms}},
                                 OCC_PRIOR_KEY: {"labels": torch.from_numpy(prior)}})
    topics = {"/perception/occupancy": PointCloud2, "/diagnostics": DiagnosticArray}
    topics.update({f"/perception/bev/{c}": OccupancyGrid for c in BEV_MAP_CLASSES})
    for topic, kind in topics.items():
        bus.subscribe(topic, kind)
    log = tmp_path / "node.log"
    options = f"{FAST} model.map_memory_s=0"
    node = start_node("ros_nodes.perception_node", {
        "config": CONFIG, "checkpoint": str(checkpoint), "calibration": str(rig_yaml),
        "cameras": "CAM_FRONT CAM_FRONT_LEFT", "raw_cameras": "CAM_FRONT_LEFT", "cfg_options": options,
        **RELIABLE_NODE}, log)
    sensors = Sensors(bus, real_dir)
    try:
        inputs_topics = ["/LIDAR_TOP", "/odom", "/CAM_FRONT/image_rect_compressed", "/CAM_FRONT_LEFT/image_rect"]
        assert bus.wait_for(lambda: all(bus.node.count_subscribers(t) for t in inputs_topics), 60, [node])

        def answered(stamp, timeout=30):
            return bus.wait_for(lambda: latest(bus, "/perception/occupancy", stamp) is not None, timeout, [node])

        def inputs():
            found = [m for m in (diagnostics_values(d, ": inputs") for d in bus.messages("/diagnostics")) if m]
            return found[-1] if found else {}

        def notes():
            return inputs().get("_message", "")

        assert answered(sensors.frame(), 60), log.read_text()[-3000:]
        for _ in range(5):  # the cameras flow once DDS has matched their publishers (as in the test above)
            assert answered(sensors.frame())
            if inputs().get("camera CAM_FRONT") == "ok" and inputs().get("camera CAM_FRONT_LEFT") == "ok":
                break
        # the LiDAR stops (silent by the wall clock too), then 1.5 s of camera stamps without it: past
        # lidar_timeout (1 s), CAM_FRONT (lidar_down_camera 'auto') triggers the frames
        assert bus.wait_for(lambda: inputs().get("lidar", "").startswith("no message for"), 15), inputs()
        for _ in range(15):
            last = sensors.cameras_only()
        assert answered(last), log.read_text()[-3000:]

        steps = ("BatchNorm statistics of the no lidar condition", "map: 0.75 of it from the camera branch's map head",
                 "free voxels filled from the training prior", "ground voxels relabelled from the BEV map")
        assert bus.wait_for(lambda: all(step in notes() for step in steps), 10), notes()
        counts = [int(note.split()[1]) for note in notes().split("; ") if note.startswith("occupancy: ")]
        # the fill gave the prior's terrain layer (40000 voxels) to the free ones; the camera head's road, blended
        # into the map (0.75 x sigmoid(3) > 0.5 everywhere), then turned the terrain into driveable surface
        assert len(counts) == 2 and counts[0] > 0 and counts[1] >= counts[0] * 0.9, notes()
        latency = [d for d in (diagnostics_values(m, ": latency") for m in bus.messages("/diagnostics")) if d]
        assert latency[-1]["fallback"] == "none"  # the fusion model itself ran the camera-triggered frame
        assert bus.wait_for(lambda: all(latest(bus, t, last) for t in topics if t != "/diagnostics"), 10)
        assert node.poll() is None
    finally:
        code = stop(node)
    text = log.read_text()
    assert "Traceback" not in text and code == 0
    # The same frame by hand: both cameras as Sensors.cameras_only sends them (the rig: identity lidar2ego, L2C
    # for both; CAM_FRONT_LEFT's intrinsics scaled to its 160 x 90 image), no points, the pose odometry gave.
    cameras = {"CAM_FRONT": CameraFrame(load_image(str(real_dir / IMAGE)), K, L2C),
               "CAM_FRONT_LEFT": CameraFrame(sensors.rgb, K * [[0.1], [0.1], [1]], L2C)}
    frame = Frame(points=np.zeros((0, 4), np.float32), cameras=cameras, lidar2ego=np.eye(4), ego2world=np.eye(4),
                  timestamp=last // 1000)
    with warnings.catch_warnings(), node_threads():
        warnings.simplefilter("ignore")  # "no LiDAR points": this frame has none on purpose
        expected = Predictor(load_config(CONFIG, options.split()), str(checkpoint)).predict(frame)
    assert all(any(step in note for note in expected.warnings) for step in steps), expected.warnings
    check_map({t: latest(bus, t, last) for t in topics if t.startswith("/perception/bev/")}, expected)
    check_occupancy({"/perception/occupancy": latest(bus, "/perception/occupancy", last)}, expected)


# ---------------------------------------------------------------------------------------------- start-up errors
def test_bad_parameters_stop_the_node_with_one_line(tiny_random_checkpoint, rig_yaml, tmp_path):
    checkpoint = tiny_random_checkpoint
    torch.manual_seed(0)
    lidar_only = tmp_path / "lidar_only.pth"
    lidar_model = build_model(load_config(LIDAR_CONFIG).model)
    save_checkpoint(lidar_only, {"model": lidar_model.state_dict()})
    good = {"config": CONFIG, "checkpoint": str(checkpoint), "calibration": str(rig_yaml)}
    cases = {
        "missing checkpoint": ({"checkpoint": str(tmp_path / "nope.pth")}, "checkpoint: file not found"),
        "unknown device": ({"device": "tpu"}, "device must be 'cpu' or 'cuda'"),
        "config/checkpoint mismatch": ({"checkpoint": str(lidar_only)}, "does not fit the model of"),
        "no calibration": ({"calibration": ""}, "parameter calibration is required"),
        "unknown trigger camera": ({"cameras": "CAM_FRONT", "lidar_down_camera": "CAM_BACK"},
                                   "parameter lidar_down_camera: 'CAM_BACK' is not one of the cameras"),
        "fallback without checkpoint": ({"no_lidar_config": str(REPO / "configs" / "tiny_camera.py")},
                                        "no_lidar_config and no_lidar_checkpoint go together"),
        "fallback that cannot stand in": ({"no_lidar_config": LIDAR_CONFIG, "no_lidar_checkpoint": str(lidar_only)},
                                          "its model has no camera_encoder"),
    }
    procs = {name: start_node("ros_nodes.perception_node", dict(good, **change), tmp_path / f"{i}.log")
             for i, (name, (change, _)) in enumerate(cases.items())}
    for i, (name, (_, message)) in enumerate(cases.items()):
        assert procs[name].wait(120) == 2, name
        text = (tmp_path / f"{i}.log").read_text()
        errors = [line for line in text.splitlines() if "[ERROR]" in line and "[perception_node]" in line]
        assert len(errors) == 1 and message in errors[0], (name, text)
        assert "Traceback" not in text


# ---------------------------------------------------------------------------------------------- tf calibration
def test_tf_calibration_path_with_a_stand_in_tf2_ros(monkeypatch, tiny_random_checkpoint, real_dir):
    checkpoint = tiny_random_checkpoint
    """On a ROS install (calibration parameter empty) the extrinsics come from tf2_ros, which is not on PyPI:
    a stand-in module with a Buffer that knows the rig's transforms exercises the node's tf path in-process."""
    import sys
    import types

    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from perception.ros.transforms import matrix_to_transform_stamped
    from ros_nodes.perception_node import PerceptionNode

    lidar2ego = np.eye(4)
    lidar2ego[:3, 3] = [0.9, 0.0, 1.8]
    tree = {("base_link", "LIDAR_TOP"): lidar2ego, ("CAM_FRONT", "LIDAR_TOP"): L2C}
    lookups = []

    class Buffer:
        def lookup_transform(self, target, source, time, timeout=None):
            lookups.append((target, source))
            if (target, source) not in tree:
                raise LookupError(f"{source} -> {target} not on tf yet")
            return matrix_to_transform_stamped(tree[(target, source)], 0, target, source)

    fake_tf2 = types.SimpleNamespace(Buffer=Buffer, TransformListener=lambda b, n: None)
    monkeypatch.setitem(sys.modules, "tf2_ros", fake_tf2)
    context = Context()
    rclpy.init(context=context, domain_id=199)
    node = rclpy.create_node("perception_node", context=context, parameter_overrides=[
        Parameter("config", value=CONFIG), Parameter("checkpoint", value=str(checkpoint)),
        Parameter("cameras", value="CAM_FRONT")])
    perception = PerceptionNode(node)
    perception.stop()  # no worker: the test takes frames from the slot itself
    try:
        assert perception.bridge is None  # nothing known before the first cloud names the LiDAR frame
        cloud = points_to_pointcloud2(load_points(str(real_dir / LIDAR))[:, :4], make_header(10**18, "LIDAR_TOP"))
        perception._on_lidar(cloud)
        assert perception.slot.take(0.0) is None and perception.errors.counts["lidar: waiting for calibration"] == 1
        perception._try_tf()
        assert perception.bridge is not None and ("CAM_FRONT", "LIDAR_TOP") in lookups
        np.testing.assert_allclose(perception.bridge.assembler.lidar2ego, lidar2ego, atol=1e-12)
        np.testing.assert_allclose(perception.bridge.assembler.lidar2cam["CAM_FRONT"], L2C, atol=1e-12)
        perception._on_lidar(cloud)
        assert perception.slot.take(0.0)[0] == 10**18  # frames flow once tf has the rig
    finally:
        perception.stop()
        node.destroy_node()
        rclpy.shutdown(context=context)
