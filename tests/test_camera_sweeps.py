"""Camera sweeps in the synthetic dataroot (``generate_dataset(camera_sweeps=True)``, ``perception synth``'s
default): six images before every LiDAR sweep, as nuScenes' non-keyframe camera sample_data.

- the keyframe files and annotation tables are the same with or without them (own random streams);
- the devkit walks each camera's chain: sweep, keyframe, sweep, keyframe, timestamps rising, each sweep image
  0.5-47 ms before its LiDAR sweep (the nuScenes camera offsets);
- streamed through the node's code (``perception replay`` of the dataroot), every LiDAR frame has all six
  cameras; without camera sweeps the sweep frames run LiDAR-only (``tests/test_replay.py`` counts them).
"""

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perception.constants import CAMERA_NAMES

VERSION = "v1.0-trainval"
SIZE = (320, 180)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    from perception.synth.generate import generate_dataset

    base = tmp_path_factory.mktemp("camera_sweeps")
    args = dict(scenes=1, samples_per_scene=2, seed=5, sweeps_per_sample=1, image_size=SIZE)
    generate_dataset(base / "with", camera_sweeps=True, **args)
    generate_dataset(base / "without", **args)
    return base / "with", base / "without"


def files_under(root, folder):
    return sorted(p.relative_to(root) for p in (root / folder).rglob("*") if p.is_file())


def test_keyframe_files_do_not_depend_on_camera_sweeps(roots):
    with_, without = roots
    for folder in ("samples", "sweeps/LIDAR_TOP", "gts", "maps"):
        names = files_under(without, folder)
        assert names and names == files_under(with_, folder), folder
        match, mismatch, errors = filecmp.cmpfiles(with_, without, [str(n) for n in names], shallow=False)
        assert not mismatch and not errors, (folder, mismatch, errors)
    for table in ("sample", "sample_annotation", "instance", "scene", "calibrated_sensor"):
        a = json.loads((with_ / VERSION / f"{table}.json").read_text())
        b = json.loads((without / VERSION / f"{table}.json").read_text())
        assert a == b, table
    assert not (without / "sweeps" / "CAM_FRONT").exists()


def test_the_scene_stream_counts_lidar_sweeps_without_a_camera_near_them(roots):
    """What the sensor_player warns about at start: 2 of the 4 LiDAR messages (the sweeps) have no image within
    the node's max_camera_lidar_delay when the dataroot has keyframe images only; none with camera sweeps."""
    from perception.constants import MAX_CAMERA_LIDAR_DELAY_S
    from perception.data.scene_stream import SceneStream

    with_, without = (SceneStream(root, VERSION) for root in roots)
    assert len(with_.lidar_records()) == len(without.lidar_records()) == 4
    assert with_.lidar_without_camera(MAX_CAMERA_LIDAR_DELAY_S) == 0
    assert without.lidar_without_camera(MAX_CAMERA_LIDAR_DELAY_S) == 2
    assert without.lidar_without_camera(0.5) == 0  # every sweep is within 0.25 s of a keyframe image


def test_camera_chains_hold_a_sweep_before_each_keyframe(roots):
    from nuscenes.nuscenes import NuScenes

    root = roots[0]
    nusc = NuScenes(VERSION, str(root), verbose=False)
    lidar = sorted(sd["timestamp"] for sd in nusc.sample_data if sd["channel"] == "LIDAR_TOP")
    samples = sorted(nusc.sample, key=lambda s: s["timestamp"])
    assert len(lidar) == 4 and len(samples) == 2
    for cam in CAMERA_NAMES:
        sd = nusc.get("sample_data", samples[0]["data"][cam])
        while sd["prev"]:
            sd = nusc.get("sample_data", sd["prev"])
        chain = [sd]
        while chain[-1]["next"]:
            chain.append(nusc.get("sample_data", chain[-1]["next"]))
        assert [r["is_key_frame"] for r in chain] == [False, True, False, True], cam
        assert [r["token"] for r in chain if r["is_key_frame"]] == [s["data"][cam] for s in samples]
        stamps = [r["timestamp"] for r in chain]
        assert stamps == sorted(stamps) and len(set(stamps)) == 4
        for rec, lidar_stamp in zip(chain, lidar, strict=True):
            # each camera fires shortly before its LiDAR sweep (nuScenes offsets 0.5-45.5 ms, +-1.5 ms jitter)
            assert 0 <= lidar_stamp - rec["timestamp"] <= 47_000, (cam, rec["filename"])
            folder = "samples" if rec["is_key_frame"] else "sweeps"
            assert rec["filename"].startswith(f"{folder}/{cam}/")
            with Image.open(root / rec["filename"]) as im:
                assert im.size == SIZE == (rec["width"], rec["height"])
        # the ego moved between sweep and keyframe: the sweep image is its own render, not a copy
        a, b = (np.asarray(Image.open(root / r["filename"]), np.float32) for r in chain[:2])
        assert np.abs(a - b).mean() > 1.0, cam


@pytest.mark.parametrize("with_sweeps", [True, False], ids=["camera_sweeps", "keyframe_images_only"])
def test_streamed_dataroot_gives_the_node_cameras_in_every_frame(roots, tiny_random_checkpoint, tmp_path,
                                                                 with_sweeps):
    from perception.config import load_config
    from perception.replay.options import ReplayOptions
    from perception.replay.run import replay
    from perception.replay.sources import open_source
    from perception.runtime import Predictor

    root = roots[0] if with_sweeps else roots[1]
    predictor = Predictor(load_config(Path(__file__).parents[1] / "configs" / "tiny.py"), tiny_random_checkpoint)
    result = replay(open_source(root), predictor, tmp_path / "out.mcap", ReplayOptions(), progress=False,
                    log=lambda line: None, score=False)
    summary = result["summary"]
    assert summary["frames_processed"] == 4 and summary["frames_skipped"] == {}
    if with_sweeps:
        assert summary["frames_without_cameras"] == 0 and summary["camera_missing_frames"] == {}
    else:  # the two LiDAR sweeps have no image within max_camera_lidar_delay: they ran LiDAR-only
        assert summary["frames_without_cameras"] == 2
        assert summary["camera_missing_frames"] == dict.fromkeys(sorted(CAMERA_NAMES), 2)
