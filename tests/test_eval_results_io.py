"""Validation of saved predictions (before any scoring) and the 2-process gloo gather path."""

import copy
import os

import numpy as np
import pytest
import torch.multiprocessing as mp

from perception.constants import OCC3D_FREE
from perception.data.sample import Sample
from perception.eval import distributed
from perception.eval.dense import DenseScores
from perception.eval.detection import lidar_boxes_to_submission, make_submission
from perception.eval.results_io import (
    load_bev,
    load_occ,
    save_bev,
    save_occ,
    validate_dense_folder,
    validate_submission,
)

TOKENS = ["tok_a", "tok_b"]


def _submission():
    boxes = np.array([[5.0, 2.0, 0.5, 4.0, 2.0, 1.5, 0.3, 1.0, 0.0]])
    return make_submission({t: lidar_boxes_to_submission(t, boxes, [0.9], [0], np.eye(4)) for t in TOKENS})


@pytest.mark.parametrize("edit, match", [
    (lambda s: s["results"].pop("tok_b"), "sample tok_b"),
    (lambda s: s["results"].__setitem__("tok_x", []), "tok_x"),
    (lambda s: s["results"]["tok_a"][0].__setitem__("detection_name", "cat"), "sample tok_a.*'detection_name'"),
    (lambda s: s["results"]["tok_b"][0]["translation"].__setitem__(0, float("nan")), "sample tok_b.*'translation'"),
    (lambda s: s["results"]["tok_a"].extend(copy.deepcopy(s["results"]["tok_a"]) * 500), "sample tok_a.*500"),
    (lambda s: s["results"]["tok_a"][0].__setitem__("size", [1.0, 2.0]), "sample tok_a.*'size'"),
    (lambda s: s.pop("meta"), "'meta'"),
])
def test_submission_errors_name_sample_and_field(edit, match):
    sub = _submission()
    assert validate_submission(sub, TOKENS) == TOKENS
    edit(sub)
    with pytest.raises(ValueError, match=match):
        validate_submission(sub, TOKENS)


def test_partial_submission_needs_allow_partial():
    sub = _submission()
    del sub["results"]["tok_a"]
    assert validate_submission(sub, TOKENS, allow_partial=True) == ["tok_b"]


def test_conversion_attributes_and_nan_refused():
    boxes = np.zeros((3, 9))
    boxes[:, 3:6] = 1
    boxes[0, 7] = 1.0  # moving car
    out = lidar_boxes_to_submission("t", boxes, [0.5] * 3, [0, 8, 7], np.eye(4))
    assert [b["attribute_name"] for b in out] == ["vehicle.moving", "pedestrian.standing", "cycle.without_rider"]
    boxes[1, 0] = np.nan
    with pytest.raises(ValueError, match="sample t"):
        lidar_boxes_to_submission("t", boxes, [0.5] * 3, [0, 8, 7], np.eye(4))


def test_dense_round_trip_and_errors(tmp_path):
    bev = np.random.default_rng(0).random((6, 200, 200)).astype(np.float32)
    occ = np.full((200, 200, 16), OCC3D_FREE, np.uint8)
    for t in TOKENS:
        save_bev(tmp_path / "bev", t, bev)
        save_occ(tmp_path / "occ", t, occ)
    assert np.abs(load_bev(tmp_path / "bev", "tok_a") - bev).max() < 1e-3  # float16 storage
    assert np.array_equal(load_occ(tmp_path / "occ", "tok_b"), occ)
    assert validate_dense_folder(tmp_path / "occ", TOKENS, "occ") == TOKENS
    np.savez_compressed(tmp_path / "occ" / "tok_b.npz", occ_labels=occ[:, :, :8])
    with pytest.raises(ValueError, match="sample tok_b field 'occ_labels'.*shape"):
        validate_dense_folder(tmp_path / "occ", TOKENS, "occ")
    os.remove(tmp_path / "bev" / "tok_a.npz")
    with pytest.raises(ValueError, match="tok_a.*--allow-partial"):
        validate_dense_folder(tmp_path / "bev", TOKENS, "bev")
    assert validate_dense_folder(tmp_path / "bev", TOKENS, "bev", allow_partial=True) == ["tok_b"]


def _fake_split(n=6):
    """Samples with BEV/occupancy GT hooks and precomputed (noisy) predictions, no model needed."""
    rng = np.random.default_rng(1)
    samples, preds = [], {}
    for i in range(n):
        gt_bev = (rng.random((6, 200, 200)) > 0.7).astype(np.uint8)
        s = Sample(token=f"t{i}", lidar_path="", lidar2ego=np.eye(4), ego2global=np.eye(4), scene_name="s")
        s._bev_map_fn = lambda _s, g=gt_bev: g
        samples.append(s)
        probs = np.clip(gt_bev * 0.3 + rng.random((6, 200, 200)) * 0.7, 0, 1)  # overlapping: imperfect
        det = lidar_boxes_to_submission(s.token, rng.random((2, 9)) + 1, [0.5, 0.4], [0, 3], np.eye(4))
        preds[s.token] = (det, probs)
    return samples, preds


def _score(samples, preds):
    dense = DenseScores(with_rays=False)
    det = {}
    for s in samples:
        det[s.token], probs = preds[s.token]
        dense.add(s, probs, None)
    return det, dense


def _worker(rank, world_size, port, queue):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    samples, preds = _fake_split()
    parts = distributed.gather_to_rank0(_score(distributed.shard(samples, rank, world_size), preds))
    if rank == 0:
        det, dense = distributed.merge_parts(parts)
        queue.put((det, dense.compute()))
    dist.destroy_process_group()


def test_two_process_gather_equals_single_process():
    samples, preds = _fake_split()
    det1, dense1 = _score(samples, preds)
    single = dense1.compute()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    det2, multi = queue.get(timeout=60)
    for p in procs:
        p.join(timeout=30)
    assert all(p.exitcode == 0 for p in procs)
    assert det2 == det1 and list(det2) == list(det1)
    assert multi == single and multi["bev_map"]["num_samples"] == 6
    assert 0 < single["bev_map"]["mIoU"] < 1


def test_global_lidar_round_trip_keeps_centre_size_yaw_velocity():
    from perception.eval.detection import global_boxes_to_lidar
    from perception.geometry import make_transform, quat_yaw, yaw_to_quat

    l2g = make_transform([0.9, 0.02, -0.01, 0.43], [600.0, 1600.0, 1.8])  # slight roll/pitch, like real poses
    t, size, yaw, vel = [610.0, 1590.0, 1.0], [2.0, 4.5, 1.6], 0.7, [3.0, -1.0]
    lidar = global_boxes_to_lidar([t], [size], [yaw_to_quat(yaw)], [vel], l2g)
    assert lidar[0, 3:6].tolist() == [4.5, 2.0, 1.6]  # l, w, h
    back = lidar_boxes_to_submission("s", lidar, [1.0], [0], l2g)[0]
    assert np.allclose(back["translation"], t) and back["size"] == size
    assert abs(quat_yaw(back["rotation"]) - yaw) < 2e-3  # tilt of the LiDAR only
    assert np.allclose(back["velocity"], vel, atol=0.05)
    assert back["attribute_name"] == "vehicle.moving"


def test_shard_by_scene_never_cuts_a_scene():
    scenes = ["a"] * 3 + ["b"] * 5 + ["c"] * 2 + ["d"] * 6  # 16 samples
    for world_size in (1, 2, 3, 4, 7):
        parts = [distributed.shard(scenes, r, world_size, group=str) for r in range(world_size)]
        assert sum(parts, []) == scenes  # contiguous, in order, every sample once
        for part in parts:  # each scene whole on one rank
            for name in set(part):
                assert part.count(name) == scenes.count(name)
    # cuts fall on the scene boundary nearest the even split: 16 / 2 = 8 is the a|b|c boundary after "b"
    assert distributed.shard(scenes, 0, 2, group=str) == ["a"] * 3 + ["b"] * 5
    assert distributed.shard(list(range(5)), 1, 2) == [2, 3, 4]  # without groups: sizes differ by at most one
