"""``perception replay`` on bad input: a clear error, or a per-frame warning naming the topic and stamp; the
output written so far is closed and readable; the summary counts skipped frames by reason.

Covered: a bag cut in the middle of a chunk, a missing LiDAR topic (and a missing camera), an unknown
message type on the LiDAR topic, frames without calibration, duplicate and out-of-order LiDAR messages, a
corrupt image, a PointCloud2 without x, a Foxglove PointCloud whose x has an unknown numeric type; --video
without imageio-ffmpeg.
"""

import json

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.models import build_model
from perception.replay.bagio import BagWriter, typestore
from perception.replay.convert import convert_scene
from perception.replay.sources import open_source
from perception.replay.topics import TopicError, TopicOptions, resolve
from perception.runtime import Predictor
from perception.synth.generate import generate_dataset
from perception.training.checkpoint import save_checkpoint
from test_replay import CAMERAS, REPO_CONFIG, read_rosbags, run_replay, write_foxglove_mcap

FAST = ["model.head.occ.lidar_cues=False", "model.refiner=None"]  # tiny without its refiners: faster frames


@pytest.fixture(scope="module")
def fast_predictor(tmp_path_factory):
    torch.manual_seed(0)
    cfg = load_config(REPO_CONFIG, FAST)
    path = tmp_path_factory.mktemp("bad_ckpt") / "fast.pth"
    save_checkpoint(path, {"model": build_model(cfg.model).state_dict()})
    return Predictor(cfg, path)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_scene")
    generate_dataset(root / "data", scenes=1, samples_per_scene=2, seed=7, sweeps_per_sample=1)
    bag = root / "scene.mcap"
    convert_scene(root / "data", "v1.0-trainval", None, bag, progress=False)
    return root / "data", bag


def rewrite(bag, out, edit):
    """Copy ``bag`` into ``out`` message by message; ``edit(msg) -> [(topic, msgtype, raw, stamp)]``."""
    with BagWriter(out) as writer:
        for m in open_source(bag).messages():
            for topic, msgtype, raw, stamp in edit(m):
                writer.write_raw(topic, msgtype, raw, stamp, m.msgdef if msgtype == m.msgtype else None)
    return out


def keep(m):
    return [(m.topic, m.msgtype, m.raw, m.log_time_ns)]


def test_missing_and_unknown_topics(scene, tmp_path, fast_predictor, capsys):
    from perception.cli.main import main

    _, bag = scene
    no_lidar = rewrite(bag, tmp_path / "no_lidar.mcap", lambda m: [] if m.topic == "/LIDAR_TOP" else keep(m))
    with pytest.raises(TopicError, match="no LiDAR topic /LIDAR_TOP"):
        resolve(open_source(no_lidar).topics(), TopicOptions(), CAMERAS)
    assert main(["replay", str(no_lidar), "--config", REPO_CONFIG, "--checkpoint", "/nonexistent.pth",
                 "--out", str(tmp_path / "o.mcap")]) == 2
    assert "--checkpoint: file not found" in capsys.readouterr().err
    # a camera topic missing: a note, not an error
    no_back = rewrite(bag, tmp_path / "no_back.mcap", lambda m: [] if m.topic.startswith("/CAM_BACK/") else keep(m))
    roles = resolve(open_source(no_back).topics(), TopicOptions(), CAMERAS)
    assert any("camera CAM_BACK: no image topic" in n for n in roles.notes)
    # an unknown message type on the LiDAR topic
    from std_msgs.msg import String

    from perception.replay.bagio import serialize

    wrong = rewrite(bag, tmp_path / "wrong_type.mcap", lambda m: [(m.topic, "std_msgs/msg/String",
                    serialize(String(data="not a cloud")), m.log_time_ns)] if m.topic == "/LIDAR_TOP" else keep(m))
    with pytest.raises(TopicError, match="/LIDAR_TOP has type std_msgs/msg/String"):
        resolve(open_source(wrong).topics(), TopicOptions(), CAMERAS)
    with pytest.raises(TopicError):
        run_replay(open_source(wrong), fast_predictor, tmp_path / "wrong_out.mcap")
    assert not (tmp_path / "wrong_out.mcap").exists()  # refused before any output


def test_no_calibration_skips_frames_by_reason(scene, tmp_path, fast_predictor):
    _, bag = scene
    no_static = rewrite(bag, tmp_path / "no_static.mcap", lambda m: [] if m.topic == "/tf_static" else keep(m))
    out = tmp_path / "out.mcap"
    result = run_replay(open_source(no_static), fast_predictor, out, score=False)
    s = result["summary"]
    assert s["frames_processed"] == 0 and s["frames_skipped"] == {"no_calibration": 4}
    assert any("frame /LIDAR_TOP @ " in w and "no_calibration" in w and "LIDAR_TOP" in w for w in s["warnings"])
    assert out.is_file() and read_rosbags(out) == {}  # closed properly, readable, empty


def test_truncated_bag_keeps_what_was_read(scene, tmp_path, fast_predictor):
    _, bag = scene
    data = bag.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # in the middle of a chunk
    out = tmp_path / "out.mcap"
    result = run_replay(open_source(cut), fast_predictor, out, score=False)
    s = result["summary"]
    assert 1 <= s["frames_processed"] < 4
    assert any("truncated" in p or "cut short" in p for p in s["input_problems"])
    msgs = read_rosbags(out)  # the output is complete and readable
    assert sum(t == "/perception/markers" for t, _ in msgs) == s["frames_processed"]
    assert json.loads(out.with_suffix(".summary.json").read_text())["frames_processed"] == s["frames_processed"]


def test_bad_messages_are_counted_and_the_replay_goes_on(scene, tmp_path, fast_predictor):
    _, bag = scene
    store = typestore()
    lidar_stamps = sorted(m.log_time_ns for m in open_source(bag).messages(["/LIDAR_TOP"]))
    first_raw = next(m.raw for m in open_source(bag).messages(["/LIDAR_TOP"]))
    front = sorted(m.log_time_ns for m in open_source(bag).messages(["/CAM_FRONT/image_rect_compressed"]))

    def edit(m):
        if m.topic == "/LIDAR_TOP" and m.log_time_ns == lidar_stamps[1]:  # sent twice
            return keep(m) + keep(m)
        if m.topic == "/LIDAR_TOP" and m.log_time_ns == lidar_stamps[2]:  # no 'x' field
            msg = store.deserialize_cdr(m.raw, m.msgtype)
            msg.fields[0].name = "q"
            return [(m.topic, m.msgtype, bytes(store.serialize_cdr(msg, m.msgtype)), m.log_time_ns)]
        if m.topic == "/CAM_FRONT/image_rect_compressed" and m.log_time_ns == front[0]:  # corrupt JPEG
            msg = store.deserialize_cdr(m.raw, m.msgtype)
            msg.data = np.frombuffer(b"\xff\xd8 not a jpeg", np.uint8)
            return [(m.topic, m.msgtype, bytes(store.serialize_cdr(msg, m.msgtype)), m.log_time_ns)]
        return keep(m)

    bad = rewrite(bag, tmp_path / "bad.mcap", edit)
    with BagWriter(tmp_path / "bad_tail.mcap") as w:  # the first sweep again at the end: out of order
        for m in open_source(bad).messages():
            w.write_raw(m.topic, m.msgtype, m.raw, m.log_time_ns, m.msgdef)
        late = store.deserialize_cdr(first_raw, "sensor_msgs/msg/PointCloud2")
        late.header.stamp.nanosec += 1_000_000  # 1 ms after the first sweep, arriving after the last one
        w.write_raw("/LIDAR_TOP", "sensor_msgs/msg/PointCloud2",
                    bytes(store.serialize_cdr(late, "sensor_msgs/msg/PointCloud2")), lidar_stamps[-1] + 10**9)
    out = tmp_path / "out.mcap"
    result = run_replay(open_source(tmp_path / "bad_tail.mcap"), fast_predictor, out, score=False)
    s = result["summary"]
    assert s["frames_skipped"] == {"bad_pointcloud": 1, "duplicate": 1, "out_of_order": 1}
    assert s["frames_processed"] == 3
    assert s["input_errors"] == {"/CAM_FRONT/image_rect_compressed: image_decode": 1}
    warnings = "\n".join(s["warnings"])
    assert f"/LIDAR_TOP @ {lidar_stamps[2]} ns skipped (bad_pointcloud)" in warnings and "no field 'x'" in warnings
    assert f"/LIDAR_TOP @ {lidar_stamps[1]} ns skipped (duplicate)" in warnings
    assert f"/CAM_FRONT/image_rect_compressed @ {front[0]} ns" in warnings
    stamps = sorted(st for t, st in read_rosbags(out) if t == "/perception/markers")
    assert stamps == [lidar_stamps[0], lidar_stamps[1], lidar_stamps[3]]


def test_foxglove_cloud_with_unknown_field_type(scene, tmp_path, fast_predictor):
    data, _ = scene
    fox = write_foxglove_mcap(data, tmp_path / "bad_fox.mcap", radar=False, bad_x_type=True)
    result = run_replay(open_source(fox), fast_predictor, tmp_path / "out.mcap", score=False)
    s = result["summary"]
    assert s["frames_processed"] == 0 and s["frames_skipped"] == {"bad_pointcloud": 4}
    assert any("/lidar_top @ " in w and "field 'x' has unknown datatype 0" in w for w in s["warnings"])


def test_video_needs_imageio_ffmpeg(monkeypatch, scene, tmp_path, capsys):
    import sys

    from perception.cli.main import main
    from perception.replay.render import video_writer_available

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if not installed
    assert "pip install imageio-ffmpeg" in video_writer_available()
    _, bag = scene
    ckpt = tmp_path / "none.pth"
    ckpt.write_bytes(b"")
    code = main(["replay", str(bag), "--config", REPO_CONFIG, "--checkpoint", str(ckpt), "--out",
                 str(tmp_path / "o.mcap"), "--video", str(tmp_path / "v.mp4")])
    assert code == 2 and "pip install imageio-ffmpeg" in capsys.readouterr().err
