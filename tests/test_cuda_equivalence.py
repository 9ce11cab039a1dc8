"""The Predictor on CUDA gives what it gives on the CPU (runs on a machine with a GPU; skipped elsewhere).

The CPU inference takes its own fast paths (numba trilinear sampling, chunked channels-last occupancy MLPs,
kept ray bins); CUDA runs the reference ops (``grid_sample``, ``Conv1d``). Both are compared on one frame with
the same weights (random ones, or a trained checkpoint named by ``M3_TEST_CHECKPOINT``: random weights label every
voxel alike, so only a trained model tests the occupancy argmax): fp32 closely (TF32 off), fp16 autocast (the
CUDA default) within what its rounding moves. A frame or device bug moves these by far more."""

import os

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.constants import OCC3D_FREE
from perception.models import build_model
from perception.runtime import CameraFrame, Frame, Predictor
from perception.training.checkpoint import save_checkpoint
from test_predictor import CONFIG, L2C, K

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (device machine)")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    cfg = load_config(CONFIG, ["model.score_threshold=0.0", "model.map_memory_s=0"])
    torch.manual_seed(0)
    path = os.environ.get("M3_TEST_CHECKPOINT")
    if not path:
        path = tmp_path_factory.mktemp("ckpt") / "model.pth"
        save_checkpoint(path, {"model": build_model(cfg.model).state_dict()})
    rng = np.random.default_rng(0)
    # LiDAR frame, metres: a ground plane with two blocks on it (x forward, y left, z up), intensity 0-255
    ground = np.c_[rng.uniform(-50, 50, (30000, 2)), rng.normal(-1.8, 0.05, 30000)]
    blocks = np.r_[rng.uniform([8, -2, -1.8], [12, 0, 0.0], (3000, 3)),
                   rng.uniform([-3, 10, -1.8], [-1, 11, 0.2], (1500, 3))]
    xyz = np.r_[ground, blocks].astype(np.float32)
    points = np.c_[xyz, rng.uniform(0, 255, len(xyz))].astype(np.float32)
    image = rng.integers(0, 255, (900, 1600, 3), dtype=np.uint8)
    lidar2ego = np.eye(4)
    lidar2ego[:3, 3] = [0.94, 0.0, 1.84]  # nuScenes' LiDAR mount: the ground lies at ego z ~ 0, inside Occ3D
    frame = Frame(points=points, cameras={"CAM_BACK_LEFT": CameraFrame(image, K, L2C)}, lidar2ego=lidar2ego,
                  timestamp=1)
    return cfg, path, frame


def _compare(a, b, bev_atol, occ_agree, box_tol):
    assert np.abs(a.bev_probs - b.bev_probs).max() < bev_atol
    occupied = (a.occ_labels != OCC3D_FREE) | (b.occ_labels != OCC3D_FREE)  # most voxels are free in both
    assert (a.occ_labels == b.occ_labels).mean() > occ_agree
    assert occupied.sum() > 1000 or not os.environ.get("M3_TEST_CHECKPOINT")  # a trained model sees the ground
    assert (a.occ_labels[occupied] == b.occ_labels[occupied]).mean() > occ_agree - 0.02
    top_a, top_b = a.boxes[np.argsort(-a.scores)[:10]], b.boxes
    # each of the CPU's ten best boxes has a CUDA box at the same place (the order of near-equal scores may differ)
    dist = np.linalg.norm(top_a[:, None, :3] - top_b[None, :, :3], axis=-1).min(1)
    assert (dist < box_tol).all(), dist


def test_cuda_fp32_equals_cpu(setup, monkeypatch):
    cfg, path, frame = setup
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # cuDNN's default would convolve in TF32
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cpu = Predictor(cfg, path, device="cpu").predict(frame)
    cuda = Predictor(cfg, path, device="cuda", fp16=False).predict(frame)
    assert cuda.occ_labels.shape == cpu.occ_labels.shape and len(cuda.boxes) == len(cpu.boxes)
    _compare(cpu, cuda, bev_atol=5e-3, occ_agree=0.999, box_tol=0.05)


def test_cuda_fp16_stays_close_to_cpu(setup):
    cfg, path, frame = setup
    cpu = Predictor(cfg, path, device="cpu").predict(frame)
    predictor = Predictor(cfg, path, device="cuda")
    assert predictor.precision == "fp16"  # autocast on by default on CUDA
    fp16 = predictor.predict(frame)
    _compare(cpu, fp16, bev_atol=5e-2, occ_agree=0.99, box_tol=0.2)
