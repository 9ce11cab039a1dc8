"""``perception replay`` of a drive whose LiDAR stops: after ``lidar_timeout_s`` of message time without LiDAR, each
CAM_FRONT image triggers a frame of the cameras alone (as perception_node does, ``perception.ros.camera_trigger``),
run by the camera-only fallback model when one is set; frames come from the LiDAR again once it returns."""

import json

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.models import build_model
from perception.replay.bagio import BagWriter
from perception.replay.convert import convert_scene
from perception.replay.sources import open_source
from perception.runtime import Predictor
from perception.synth.generate import generate_dataset
from test_replay import REPO_CONFIG, read_mcap_ros2, run_replay

FAST = ["model.head.occ.lidar_cues=False", "model.refiner=None"]
GAP = (0.6, 1.6)  # s after the first LiDAR message: the LiDAR messages in this window are dropped


def random_predictor(config, options=(), seed=0):
    torch.manual_seed(seed)
    cfg = load_config(config, list(options))
    return Predictor(cfg, {"model": build_model(cfg.model).state_dict()})


@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    """A 2 s synthetic drive (LiDAR at 10 Hz, six cameras before each sweep) as a bag, and the same bag with the
    LiDAR silent for the second in GAP. Returns ``(full bag, gapped bag, LiDAR stamps kept, CAM_FRONT stamps)``."""
    root = tmp_path_factory.mktemp("dropout")
    generate_dataset(root / "data", scenes=1, samples_per_scene=4, seed=3, sweeps_per_sample=4,
                     image_size=(320, 180), camera_sweeps=True)
    bag = root / "scene.mcap"
    convert_scene(root / "data", "v1.0-trainval", None, bag, progress=False)
    messages = list(open_source(bag).messages())
    lidar = sorted(m.log_time_ns for m in messages if m.topic == "/LIDAR_TOP")
    lo, hi = (lidar[0] + int(s * 1e9) for s in GAP)
    gapped = root / "gapped.mcap"
    with BagWriter(gapped) as writer:
        for m in messages:
            if m.topic == "/LIDAR_TOP" and lo <= m.log_time_ns < hi:
                continue
            writer.write_raw(m.topic, m.msgtype, m.raw, m.log_time_ns, m.msgdef)
    kept = [t for t in lidar if not lo <= t < hi]
    front = sorted(m.log_time_ns for m in messages if m.topic == "/CAM_FRONT/image_rect_compressed")
    return bag, gapped, kept, front


def expected_triggers(lidar, front, timeout_s):
    """CAM_FRONT stamps more than ``timeout_s`` after the newest LiDAR stamp before them (CameraTrigger's rule)."""
    return [t for t in front if t - max((s for s in lidar if s <= t), default=front[0]) > timeout_s * 1e9]


def test_camera_frames_while_the_lidar_is_silent(drive, tmp_path):
    _, gapped, lidar, front = drive
    predictor = random_predictor(REPO_CONFIG, FAST)
    camera_only = random_predictor(REPO_CONFIG.replace("tiny.py", "tiny_camera.py"), seed=1)
    predictor.set_fallback("no_lidar", camera_only, "tiny_camera")
    timeout = 0.35
    triggers = expected_triggers(lidar, front, timeout)
    assert len(triggers) >= 4  # the second without LiDAR, less the timeout, at 10 Hz
    result = run_replay(open_source(gapped), predictor, tmp_path / "out.mcap", lidar_timeout_s=timeout, score=False,
                        render_dir=tmp_path / "frames")
    summary = result["summary"]
    assert len(result["pngs"]) == summary["frames_processed"]  # the frames without points render too
    assert summary["frames_camera_triggered"] == len(triggers)
    assert summary["frames_processed"] == len(lidar) + len(triggers) and summary["frames_skipped"] == {}
    assert summary["frames_by_model"] == {"main": len(lidar), "no_lidar": len(triggers)}
    marker_stamps = sorted(s for topic, s in read_mcap_ros2(tmp_path / "out.mcap")[0] if topic == "/perception/markers")
    assert marker_stamps == sorted(lidar + triggers)
    saved = json.loads((tmp_path / "out.summary.json").read_text())
    assert saved["frames_camera_triggered"] == len(triggers)
    # 'none' switches the trigger off (a drive with its LiDAR whole triggers none: tests/test_replay.py)
    off = run_replay(open_source(gapped), predictor, tmp_path / "off.mcap", lidar_timeout_s=timeout,
                     lidar_down_camera="none", score=False)
    assert off["summary"]["frames_processed"] == len(lidar) and off["summary"]["frames_camera_triggered"] == 0
    assert np.all(np.diff(marker_stamps) > 0)
