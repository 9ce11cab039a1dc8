"""``perception replay``: a converted synthetic scene through the perception node's code (PerceptionBridge).

- round trip: convert, replay, read OUT with ``mcap`` + ``mcap_ros2`` and with ``rosbags``: one output frame
  per LiDAR sweep; boxes, BEV map and occupancy of each keyframe equal ``Predictor.predict_sample``;
- a Foxglove-protobuf MCAP of the same scene (lower-case topics, RADAR clouds beside the LiDAR) replays to the
  same output messages, byte for byte; so does the dataroot itself, and the same bag twice (determinism);
- keyframes are scored (``<OUT>.metrics.json``), frames rendered; the summary has per-stage latency.
Bad input: ``tests/test_replay_bad_input.py``.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from output_checks import check_outputs
from perception.config import load_config
from perception.data import build_index, load_info_file
from perception.data.scene_stream import SceneStream
from perception.replay.convert import convert_scene
from perception.runtime import Predictor
from perception.synth.generate import generate_dataset

REPO_CONFIG = "configs/tiny.py"
CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


@pytest.fixture(scope="module")
def checkpoint(tiny_random_checkpoint):
    return tiny_random_checkpoint


@pytest.fixture(scope="module")
def predictor(checkpoint):
    # map memory off: the replayed frames are compared one by one with predict_sample (the memory would fuse
    # the two LiDAR sweeps between keyframes in; its own tests: tests/test_map_memory.py)
    return Predictor(load_config(REPO_CONFIG, ["model.map_memory_s=0"]), checkpoint)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 2-keyframe synthetic scene with one sweep before each keyframe (4 LiDAR messages), its bag and samples."""
    root = tmp_path_factory.mktemp("replay_scene")
    data = root / "data"
    generate_dataset(data, scenes=1, samples_per_scene=2, seed=5, sweeps_per_sample=1)
    build_index(str(data), "v1.0-trainval", str(root / "index.pkl"), num_sweeps=1, progress=False)
    samples = sorted(load_info_file(str(root / "index.pkl"), data_root=str(data), num_sweeps=1),
                     key=lambda s: s.timestamp)
    bag = root / "scene.mcap"
    convert_scene(data, "v1.0-trainval", None, bag, progress=False)
    return data, bag, samples


def read_mcap_ros2(path):
    """``{(topic, log_time): decoded message}`` and ``{(topic, log_time): raw bytes}`` via mcap + mcap_ros2."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    decoded, raw = {}, {}
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, channel, message, msg in reader.iter_decoded_messages():
            decoded[(channel.topic, message.log_time)] = msg
            raw[(channel.topic, message.log_time)] = bytes(message.data)
    return decoded, raw


def read_rosbags(path):
    """``{(topic, log_time): decoded message}`` via rosbags' AnyReader (a single .mcap file is a rosbag2 too)."""
    from pathlib import Path

    from rosbags.highlevel import AnyReader

    out = {}
    with AnyReader([Path(path)]) as reader:
        for conn, stamp, data in reader.messages():
            out[(conn.topic, stamp)] = reader.deserialize(data, conn.msgtype)
    return out


def output_raw(path):
    """Raw bytes of the replay outputs (``/perception/*``), by (topic, stamp)."""
    return {k: v for k, v in read_mcap_ros2(path)[1].items() if k[0].startswith("/perception/")}


def run_replay(source, predictor, out, **kw):
    from perception.replay.options import ReplayOptions
    from perception.replay.run import replay

    fields = ReplayOptions.__dataclass_fields__
    options = ReplayOptions(score_threshold=0.0, **{k: v for k, v in kw.items() if k in fields})
    rest = {k: v for k, v in kw.items() if k not in fields}
    lines = []
    result = replay(source, predictor, out, options, progress=False, log=lines.append, **rest)
    result["log"] = lines
    return result


def check_against_predict_sample(msgs, stamp, expected):
    """The node test's comparison (tests/output_checks.py) on the messages of one output frame."""
    check_outputs({topic: msg for (topic, t), msg in msgs.items() if t == stamp}, expected)


@pytest.fixture(scope="module")
def round_trip(scene, predictor, tmp_path_factory):
    """The converted bag replayed once, whole, with rendering (the other tests compare against it)."""
    from perception.replay.sources import open_source

    data, bag, samples = scene
    out = tmp_path_factory.mktemp("replay_out") / "out.mcap"
    result = run_replay(open_source(bag), predictor, out, render_dir=out.parent / "frames")
    return out, result


def test_round_trip_equals_predict_sample(scene, predictor, round_trip):
    data, bag, samples = scene
    out, result = round_trip
    n_lidar = len(SceneStream(data, "v1.0-trainval").lidar_records())
    decoded, _ = read_mcap_ros2(out)
    via_rosbags = read_rosbags(out)
    for msgs in (decoded, via_rosbags):  # both readers see the same frames
        marker_stamps = sorted(s for t, s in msgs if t == "/perception/markers")
        assert len(marker_stamps) == n_lidar == result["summary"]["frames_processed"] == 4
    # the two sweeps have no camera image (keyframe images only): they ran LiDAR-only, on the fusion model
    assert result["summary"]["frames_without_cameras"] == 2 and result["summary"]["frames_by_model"] == {"main": 4}
    assert result["summary"]["frames_camera_triggered"] == 0  # the LiDAR never stops in this scene
    keyframes = [s for s in samples]
    assert {s.timestamp * 1000 for s in keyframes} <= set(marker_stamps)
    for s in keyframes:
        expected = predictor.predict_sample(s)
        check_against_predict_sample(via_rosbags, s.timestamp * 1000, expected)
    # the mcap_ros2 reading agrees with rosbags on a grid
    key = ("/perception/bev/drivable_area", keyframes[0].timestamp * 1000)
    assert bytes(decoded[key].data) == bytes(np.asarray(via_rosbags[key].data, np.int8).tobytes())


def test_summary_metrics_and_render(round_trip, scene):
    out, result = round_trip
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["frames_processed"] == 4 and summary["frames_skipped"] == {}
    for stage in ("read", "decode", "model", "write", "overhead", "total"):
        assert set(summary["stages_ms"][stage]) == {"mean", "p50", "p99"}
    assert summary["stages_ms"]["model"]["mean"] > 0 and 0 < summary["overhead_fraction"] < 1
    metrics = json.loads(out.with_name("out.metrics.json").read_text())
    assert metrics["num_frames_scored"] == 2
    assert "mAP" in metrics["detection"] and "mIoU" in metrics["bev_map"] and "mIoU" in metrics["occupancy"]
    assert (out.parent / "out_eval" / "metrics.json").is_file()
    assert len(result["pngs"]) == 4
    for bev, cams in result["pngs"]:
        from PIL import Image

        assert Image.open(bev).size[0] > 500 and Image.open(cams).size == (1440, 540)


def test_deterministic_and_dataroot_source(scene, predictor, round_trip, tmp_path):
    """The same bag twice, and the dataroot scene directly: byte-identical output messages."""
    from perception.replay.sources import open_source

    data, bag, _ = scene
    reference = output_raw(round_trip[0])
    again = run_replay(open_source(bag), predictor, tmp_path / "again.mcap", max_frames=2, score=False)
    direct = run_replay(open_source(data), predictor, tmp_path / "direct.mcap", max_frames=2, score=False)
    assert again["summary"]["frames_processed"] == direct["summary"]["frames_processed"] == 2
    for path in (tmp_path / "again.mcap", tmp_path / "direct.mcap"):
        got = output_raw(path)
        assert got and set(got) <= set(reference)
        assert all(got[k] == reference[k] for k in got)


def test_sqlite3_bag_and_copy_inputs(scene, predictor, round_trip, tmp_path):
    """A sqlite3 rosbag2 in, a sqlite3 rosbag2 out with the inputs copied: Foxglove shows both from OUT alone."""
    from perception.replay.sources import open_source

    data, _, _ = scene
    bag = tmp_path / "scene_sqlite"
    convert_scene(data, "v1.0-trainval", None, bag, fmt="sqlite3", progress=False)
    out = tmp_path / "out_sqlite"
    result = run_replay(open_source(bag), predictor, out, max_frames=1, copy_inputs=True, fmt="sqlite3", score=False)
    assert result["summary"]["frames_processed"] == 1
    msgs = read_rosbags(out)
    topics = {t for t, _ in msgs}
    assert {"/LIDAR_TOP", "/CAM_FRONT/image_rect_compressed", "/tf_static", "/odom", "/perception/markers"} <= topics
    reference = read_rosbags(round_trip[0])
    key = next(k for k in msgs if k[0] == "/perception/bev/drivable_area")
    assert np.array_equal(np.asarray(msgs[key].data), np.asarray(reference[key].data))


# ---------------------------------------------------------------------------------------------- Foxglove
def write_foxglove_mcap(data, path, lower=True, radar=True, bad_x_type=False):
    """The scene in the layout of Foxglove's nuScenes MCAPs (foxglove/nuscenes2mcap): foxglove.PointCloud
    (x, y, z, intensity, ring float32, stride 20, the .pcd.bin bytes), CompressedImage, CameraCalibration
    (K, P = [K|0], R = I), FrameTransform map -> base_link per record and base_link -> sensor per keyframe;
    keyframe cameras logged at the LiDAR keyframe's time, as the converter does."""
    from foxglove_schemas_protobuf.CameraCalibration_pb2 import CameraCalibration
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from foxglove_schemas_protobuf.FrameTransform_pb2 import FrameTransform
    from foxglove_schemas_protobuf.PackedElementField_pb2 import PackedElementField
    from foxglove_schemas_protobuf.PointCloud_pb2 import PointCloud
    from google.protobuf.timestamp_pb2 import Timestamp
    from mcap_protobuf.writer import Writer

    from perception.ros.transforms import pose_from_matrix

    name = (lambda s: s.lower()) if lower else (lambda s: s)
    stream = SceneStream(data, "v1.0-trainval")

    def ts(stamp_ns):
        return Timestamp(seconds=stamp_ns // 10**9, nanos=stamp_ns % 10**9)

    def tf(T, stamp, parent, child):
        t, q = pose_from_matrix(T)
        msg = FrameTransform(timestamp=ts(stamp), parent_frame_id=parent, child_frame_id=child)
        msg.translation.x, msg.translation.y, msg.translation.z = t
        msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = q
        return msg

    def cloud(raw, stamp, frame, x_type=7):
        fields = [PackedElementField(name=n, offset=4 * i, type=x_type if n == "x" else 7)
                  for i, n in enumerate(("x", "y", "z", "intensity", "ring"))]
        return PointCloud(timestamp=ts(stamp), frame_id=frame, point_stride=20, fields=fields, data=raw)

    key_stamp = {}  # sample token -> keyframe LiDAR stamp (log time of the keyframe's messages)
    for r in stream.lidar_records():
        if r.is_key_frame:
            key_stamp[r.sample_token] = r.stamp_ns
    with open(path, "wb") as f:
        w = Writer(f)
        for r in stream.records():
            stamp = r.stamp_ns
            log = key_stamp[r.sample_token] if r.is_key_frame else stamp
            w.write_message("/tf", tf(r.ego2global, stamp, "map", "base_link"), log_time=log, publish_time=log)
            if r.is_key_frame:
                w.write_message("/tf", tf(r.sensor2ego, stamp, "base_link", name(r.channel)), log_time=log,
                                publish_time=log)
            raw = open(r.path, "rb").read()
            if r.is_lidar:
                msg = cloud(raw, stamp, name(r.channel), x_type=0 if bad_x_type else 7)
                w.write_message(name("/LIDAR_TOP"), msg, log_time=log, publish_time=log)
                if radar:  # a RADAR cloud (same schema) that must not be taken for the LiDAR
                    w.write_message(name("/RADAR_FRONT"), cloud(raw[:200], stamp, name("RADAR_FRONT")),
                                    log_time=log, publish_time=log)
                continue
            base = name("/" + r.channel)
            w.write_message(base + "/image_rect_compressed",
                            CompressedImage(timestamp=ts(stamp), frame_id=name(r.channel), format="jpeg", data=raw),
                            log_time=log, publish_time=log)
            K = [float(v) for v in r.intrinsics.reshape(-1)]
            P = [K[0], K[1], K[2], 0.0, K[3], K[4], K[5], 0.0, 0.0, 0.0, 1.0, 0.0]
            w.write_message(base + "/camera_info",
                            CameraCalibration(timestamp=ts(stamp), frame_id=name(r.channel), width=r.width,
                                              height=r.height, K=K, R=[1, 0, 0, 0, 1, 0, 0, 0, 1], P=P),
                            log_time=log, publish_time=log)
        w.finish()
    return path


def test_foxglove_mcap_replays_like_the_ros2_bag(scene, predictor, round_trip, tmp_path):
    from perception.replay.sources import open_source
    from perception.replay.topics import TopicOptions, describe, resolve

    data, _, samples = scene
    fox = write_foxglove_mcap(data, tmp_path / "foxglove.mcap", lower=False)
    source = open_source(fox)
    roles = resolve(source.topics(), TopicOptions(), CAMERAS)
    assert roles.topic_of("lidar") == "/LIDAR_TOP" and "/RADAR_FRONT" not in roles.by_topic
    assert any("lidar" in line and "/LIDAR_TOP" in line for line in describe(source.topics(), roles))
    # keyframes found from the LiDAR stamps through --dataroot: scored like the converted bag
    result = run_replay(source, predictor, tmp_path / "fox_out.mcap", max_frames=2, copy_inputs=True,
                        dataroot=str(data))
    assert result["summary"]["frames_processed"] == 2
    got, reference = output_raw(tmp_path / "fox_out.mcap"), output_raw(round_trip[0])
    assert got and set(got) <= set(reference)
    assert all(got[k] == reference[k] for k in got)  # same predictions, byte for byte
    assert result["metrics"]["num_frames_scored"] == 1  # the second LiDAR message is the first keyframe
    copied = read_rosbags(tmp_path / "fox_out.mcap")  # inputs copied as ROS 2 messages: readable by rosbags
    assert any(t == "/LIDAR_TOP" for t, _ in copied) and any(t == "/tf" for t, _ in copied)
    assert any(t == "/CAM_FRONT/image_rect_compressed" for t, _ in copied)


def test_foxglove_lower_case_names(scene, predictor, round_trip, tmp_path):
    """The converter's newer layout: /lidar_top, /cam_front/..., frame ids in lower case."""
    from perception.replay.sources import open_source

    data, _, _ = scene
    fox = write_foxglove_mcap(data, tmp_path / "foxglove_lower.mcap", lower=True)
    result = run_replay(open_source(fox), predictor, tmp_path / "lower_out.mcap", max_frames=1, score=False)
    assert result["summary"]["frames_processed"] == 1 and result["summary"]["frames_skipped"] == {}
    got, reference = read_rosbags(tmp_path / "lower_out.mcap"), read_rosbags(round_trip[0])
    key = next(k for k in got if k[0] == "/perception/bev/drivable_area")
    assert got[key].header.frame_id == "lidar_top"  # outputs in the input cloud's own frame
    assert np.array_equal(np.asarray(got[key].data), np.asarray(reference[key].data))
    markers = ("/perception/markers", key[1])
    assert len(got[markers].markers) == len(reference[markers].markers)


def test_cli_replay_and_list_topics(scene, checkpoint, tmp_path, capsys):
    from perception.cli.main import main

    data, bag, _ = scene
    assert main(["replay", str(bag), "--list-topics", "--config", REPO_CONFIG]) == 0
    listing = capsys.readouterr().out
    assert "/LIDAR_TOP" in listing and "lidar" in listing and "image CAM_FRONT" in listing
    out = tmp_path / "cli.mcap"
    # the first LiDAR message is a sweep with no camera image near it: the LiDAR-only fallback model runs it
    import torch

    from perception.models import build_model
    from perception.training.checkpoint import save_checkpoint

    lidar_config = str(Path(REPO_CONFIG).parent / "tiny_lidar.py")
    torch.manual_seed(0)
    lidar_only = tmp_path / "lidar_only.pth"
    save_checkpoint(lidar_only, {"model": build_model(load_config(lidar_config).model).state_dict()})
    assert main(["replay", str(bag), "--config", REPO_CONFIG, "--checkpoint", str(checkpoint), "--out", str(out),
                 "--max-frames", "1", "--no-progress", "--no-score",
                 "--no-camera-model", lidar_config, str(lidar_only)]) == 0
    assert out.is_file() and (tmp_path / "cli.summary.json").is_file()
    summary = json.loads((tmp_path / "cli.summary.json").read_text())
    assert summary["frames_by_model"] == {"no_cameras": 1} and summary["frames_without_cameras"] == 1
    assert "frames run by a fallback model: no_cameras 1" in capsys.readouterr().out
    assert main(["replay", str(bag), "--config", REPO_CONFIG, "--checkpoint", str(checkpoint), "--out", str(out),
                 "--max-frames", "1", "--no-progress"]) == 2  # exists: refused without --overwrite
    assert "exists" in capsys.readouterr().err


def test_video_from_rendered_frames(round_trip, tmp_path):
    import imageio_ffmpeg

    from perception.replay.render import write_video

    _, result = round_trip
    path = write_video(result["pngs"], tmp_path / "replay.mp4", fps=2.0)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = list(reader)
    assert len(frames) == len(result["pngs"]) == 4 and meta["size"][0] == 960
