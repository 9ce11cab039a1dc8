"""Trainer: checkpoints load with weights_only, exact resume, CPU reproducibility, DDP (2 gloo ranks).

A tiny toy model keeps these fast; it uses dropout (torch RNG) and numpy noise in the dataset (numpy RNG)
so that resume has RNG state to restore.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.environment import read_environment
from perception.training import Trainer, load_checkpoint
from perception.training.distributed import DistContext, cleanup_distributed, init_distributed
from perception.training.logger import read_log

REPO = Path(__file__).resolve().parents[1]

TRAIN_CFG = dict(
    epochs=3, batch_size=2, lr=1e-2, weight_decay=0.01, schedule="onecycle", pct_start=0.4, grad_clip=1.0,
    amp=False, ema=True, ema_decay=0.9, seed=3, workers=0, log_interval=1, max_steps=None,
)


class ToyData(torch.utils.data.Dataset):
    """10 samples y = x @ w + noise; ``noise`` draws from the global numpy RNG (restored on resume)."""

    def __init__(self, noise=True):
        g = np.random.default_rng(0)
        self.x = g.normal(size=(10, 4)).astype(np.float32)
        self.y = (self.x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32))[:, None]
        self.noise = noise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i] + (np.random.normal(scale=0.01, size=4).astype(np.float32) if self.noise else 0)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(self.y[i])}


def collate(items):
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class ToyModel(torch.nn.Module):
    def __init__(self, dropout=0.2):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(dropout), torch.nn.Linear(8, 1))

    def forward(self, batch):
        pred = self.net(batch["x"])
        return {"mse": torch.nn.functional.mse_loss(pred, batch["y"]), "l1": 0.1 * (pred - batch["y"]).abs().mean()}


def make_trainer(work_dir, max_steps=None, noise=True, dropout=0.2, ctx=None, **overrides):
    torch.manual_seed(123)  # same initial weights for every run
    cfg = dict(TRAIN_CFG, **overrides)
    return Trainer(ToyModel(dropout), ToyData(noise), collate, cfg, work_dir, config_dict={"train": cfg},
                   ctx=ctx, max_steps=max_steps, progress=False)


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_checkpoints_load_weights_only_and_hold_the_run_state(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=7)  # 5 steps per epoch -> epoch_1 after step 5
    trainer.fit()
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_1.pth", "latest.pth"]
    ckpt = torch.load(tmp_path / "latest.pth", weights_only=True)  # raises if anything but tensors/plain types
    assert ckpt["step"] == 7 and ckpt["epoch"] == 1
    assert ckpt["config"]["train"]["lr"] == TRAIN_CFG["lr"]
    for k, v in params(trainer.model).items():
        assert torch.equal(ckpt["model"][k], v)
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "ema", "rng", "epoch", "step", "config"}
    assert ckpt["scheduler"]["last_epoch"] == 7
    # EMA weights differ from the raw weights after a few steps
    assert not torch.equal(ckpt["ema"]["shadow"]["net.0.weight"], ckpt["model"]["net.0.weight"])
    assert load_checkpoint(tmp_path / "epoch_1.pth")["step"] == 5
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_checkpoint(tmp_path / "nope.pth")


def test_checkpoint_interval_and_keep_bound_the_files_on_disk(tmp_path):
    # 5 steps per epoch, 5 epochs: epoch files after epochs 2 and 4, only the newest kept
    make_trainer(tmp_path / "a", epochs=5, checkpoint_interval=2, keep_checkpoints=1).fit()
    assert sorted(p.name for p in (tmp_path / "a").glob("*.pth")) == ["epoch_4.pth", "latest.pth"]
    assert load_checkpoint(tmp_path / "a" / "epoch_4.pth")["step"] == 20
    assert load_checkpoint(tmp_path / "a" / "latest.pth")["step"] == 25
    make_trainer(tmp_path / "b", epochs=2, checkpoint_interval=0).fit()  # only latest.pth, at the end
    assert [p.name for p in (tmp_path / "b").glob("*.pth")] == ["latest.pth"]
    with pytest.raises(ValueError, match=r"train.keep_checkpoints .*tiny.py"):
        load_config(REPO / "configs" / "tiny.py", ["train.keep_checkpoints=-2"])


# Runs in a child: a file-size limit makes the write fail for real (EFBIG), as a full disk would.
FULL_DISK = """
import resource, signal, sys, torch
from perception.training.checkpoint import save_checkpoint
path = sys.argv[1]
save_checkpoint(path, {"w": torch.zeros(10)})  # the good previous checkpoint
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
try:
    save_checkpoint(path, {"w": torch.zeros(1 << 16)})  # 256 KiB: over the limit
except OSError as err:
    print(err)
"""


def test_a_checkpoint_that_cannot_be_written_names_the_file_and_keeps_the_previous_one(tmp_path):
    path = tmp_path / "latest.pth"
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(path)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert f"could not write checkpoint {path}" in out.stdout and "MiB free" in out.stdout
    assert torch.equal(load_checkpoint(path)["w"], torch.zeros(10))
    assert not path.with_name("latest.pth.tmp").exists()


def test_cpu_runs_are_reproducible_and_loss_falls(tmp_path):
    make_trainer(tmp_path / "a").fit()
    make_trainer(tmp_path / "b").fit()
    log_a, log_b = read_log(tmp_path / "a" / "log.jsonl"), read_log(tmp_path / "b" / "log.jsonl")
    assert len(log_a) == 15 and [r["step"] for r in log_a] == list(range(1, 16))
    assert [(r["mse"], r["l1"], r["loss"]) for r in log_a] == [(r["mse"], r["l1"], r["loss"]) for r in log_b]
    assert np.mean([r["mse"] for r in log_a[-5:]]) < np.mean([r["mse"] for r in log_a[:5]])


class DtypeRecorder(ToyModel):
    """ToyModel that records the dtype of its first linear layer's output (what autocast gave it)."""

    def forward(self, batch):
        self.seen = self.net[0](batch["x"]).dtype
        return super().forward(batch)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_autocasts_the_forward_where_the_cpu_has_bf16_else_fp32_with_a_warning(
    tmp_path, monkeypatch, capsys, native
):
    monkeypatch.setattr("perception.models.precision.cpu_has_native_bf16", lambda: native)
    torch.manual_seed(123)
    cfg = dict(TRAIN_CFG, cpu_bf16=True, epochs=1)
    model = DtypeRecorder()
    trainer = Trainer(model, ToyData(), collate, cfg, tmp_path, config_dict={"train": cfg}, progress=False)
    last = trainer.fit()
    assert model.seen == (torch.bfloat16 if native else torch.float32)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
    assert np.isfinite(last["loss"])
    warned = "train.cpu_bf16: bf16 requested but this CPU has no native bf16" in capsys.readouterr().err
    assert warned == (not native)


def test_resume_is_exact(tmp_path):
    full = make_trainer(tmp_path / "full", max_steps=12)
    full.fit()
    part = make_trainer(tmp_path / "part", max_steps=8)  # stops mid-epoch 2 (5 steps per epoch)
    part.fit()
    resumed = make_trainer(tmp_path / "part", max_steps=12)
    assert resumed.resume() and resumed.step == 8
    resumed.fit()
    a, b = params(full.model), params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(full.ema.shadow["net.2.weight"], resumed.ema.shadow["net.2.weight"])
    # the resumed log continues the same file: steps 1..8 then 9..12, same losses as the full run
    part = [r["loss"] for r in read_log(tmp_path / "part" / "log.jsonl")]
    assert part == [r["loss"] for r in read_log(tmp_path / "full" / "log.jsonl")]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world_size, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    try:
        trainer = make_trainer(out_dir, max_steps=4, noise=False, dropout=0.0, ctx=ctx, batch_size=1, ema=False)
        trainer.fit()
        torch.save(params(trainer.model), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        cleanup_distributed()


def test_ddp_two_gloo_ranks_stay_identical_and_match_single_process(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    # 2 ranks x batch 1 with averaged gradients == 1 process x batch 2 over the same samples
    single = make_trainer(tmp_path / "single", max_steps=4, noise=False, dropout=0.0, batch_size=2, ema=False,
                          ctx=DistContext())
    # same total schedule length: the DDP run had 5 steps/epoch too (10 samples / 2 ranks / batch 1)
    assert single.total_steps == 15
    single.fit()
    s = params(single.model)
    assert all(torch.allclose(r0[k], s[k], atol=1e-6) for k in r0)
    assert (tmp_path / "latest.pth").is_file() and not (tmp_path / "rank1" / "log.jsonl").exists()


# ------------------------------------------------------------------------------------------ the real model
NUSC = "mmdetection3d/tests/data/nuscenes"


def test_build_model_rejects_unknown_constructor_key_naming_key_and_file():
    from perception.models import build_model

    cfg = load_config(REPO / "configs" / "tiny.py", ["model.lidar.voxel_sise=[1, 1, 1]"])
    with pytest.raises(ValueError, match=r"model\.lidar\.voxel_sise.*tiny\.py"):
        build_model(cfg.model)
    cfg = load_config(REPO / "configs" / "tiny.py", ["model.head.point_cloud_range=[0, 0, 0, 1, 1, 1]"])
    with pytest.raises(ValueError, match=r"model\.head\.point_cloud_range.*set by the model section"):
        build_model(cfg.model)


def test_perception_train_cli_on_a_real_info_file(tmp_path, real_dir, capsys):
    """`perception train` end to end (tiny config, 2 steps, modality dropout on) on the mmdet3d nuScenes fixture.

    The fixture has no map expansion and no Occ3D labels: training all three tasks is refused up front (the
    map and occupancy heads would train on a zero loss); detection alone trains."""
    from perception.cli.main import main

    root = real_dir / NUSC
    args = ["train", str(REPO / "configs" / "tiny.py"), "--work-dir", str(tmp_path), "--max-steps", "2",
            "--dataroot", str(root), "--device", "cpu",
            "--cfg-options", f"data.train_info={str(root / 'nus_info.pkl')!r}",
            "data.train_split=None", "train.batch_size=1", "data.modality_dropout.some_cameras=0.5"]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "task 'map': 0/2 samples have BEV map rasters" in error and "task 'occ': 0/2 samples" in error
    assert not (tmp_path / "latest.pth").exists()
    args += ["model.tasks=('det',)", "model.camera_map_weight=0",  # tiny's camera map loss needs the 'map' task
             "model.camera_map_blend=0"]  # and so does its no-LiDAR blend
    assert main(args) == 0
    ckpt = torch.load(tmp_path / "latest.pth", weights_only=True)
    assert ckpt["step"] == 2 and ckpt["config"]["data"]["train_split"] is None
    assert ckpt["config"]["model"]["tasks"] == ["det"]
    records = read_log(tmp_path / "log.jsonl")
    assert records[-1]["step"] == 2
    for key in ("loss_det_heatmap", "loss_det_box", "depth", "loss", "grad_norm"):
        assert np.isfinite(records[-1][key]), key
    assert "loss_map" not in records[-1] and "loss_occ_ce" not in records[-1]
    assert (tmp_path / "config.json").is_file()
    # --resume continues the same run from latest.pth (step 2) to step 3
    assert main(args[:5] + ["3"] + args[6:] + ["--resume"]) == 0
    assert torch.load(tmp_path / "latest.pth", weights_only=True)["step"] == 3
    assert [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [2, 3]
    # each start writes the machine it trains on (CPU kernels round by instruction set): step 0, then the resume
    environment = read_environment(tmp_path / "environment.jsonl")
    assert [e["start_step"] for e in environment] == [0, 2]
    assert environment[0]["packages"]["torch"] == torch.__version__.split("+")[0]


def _one_sample_batch(cfg, real_dir):
    """A training batch of one real nuScenes LiDAR sweep + one camera image, with one car box."""
    from perception.data.collate import collate
    from perception.data.sample import CameraView, Sample
    from perception.training.data import make_dataset

    root = real_dir / NUSC
    lidar = next((root / "samples" / "LIDAR_TOP").glob("*.pcd.bin"))
    image = next((root / "samples" / "CAM_BACK_LEFT").glob("*.jpg"))
    K = np.array([[1260.0, 0.0, 800.0], [0.0, 1260.0, 450.0], [0.0, 0.0, 1.0]])
    l2c = np.eye(4)
    l2c[:3, :3] = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]  # camera looking along LiDAR +y
    sample = Sample(token="s", lidar_path=str(lidar), lidar2ego=np.eye(4), ego2global=np.eye(4), num_sweeps=1,
                    cameras={"CAM_BACK_LEFT": CameraView("CAM_BACK_LEFT", str(image), K, l2c)},
                    boxes=np.array([[0, 10, 0, 4, 2, 1.5, 0.3, 0, 0]], np.float32), labels=np.array([0]),
                    num_lidar_pts=np.array([10]))
    return collate([make_dataset(cfg, [sample], training=True)[0]])


def test_full_config_builds_and_runs_forward_backward_at_batch_1(real_dir, all_cores):
    """The published configuration (180 x 180 BEV, 6 cameras at 256 x 704, 6 decoder layers) on CPU: slow
    (a couple of minutes) but it must build, run and give finite gradients."""
    from perception.models import build_model

    cfg = load_config(REPO / "configs" / "nuscenes_full.py")
    torch.manual_seed(0)
    model = build_model(cfg.model)
    losses = model(_one_sample_batch(cfg, real_dir))
    assert {"loss_det_heatmap", "loss_map", "loss_occ_ce", "depth"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert sum(g is not None and bool(torch.isfinite(g).all()) for g in grads) > 0.9 * len(grads)


def test_max_minutes_stops_on_wall_clock_and_schedule_spans_max_steps(tmp_path):
    # a budget of ~0 minutes: the first step crosses it, is logged and saved, and training stops there
    trainer = Trainer(ToyModel(), ToyData(), collate, dict(TRAIN_CFG), tmp_path, max_steps=12, progress=False,
                      max_minutes=1e-9)
    trainer.fit()
    assert trainer.step == 1 and [r["step"] for r in read_log(tmp_path / "log.jsonl")] == [1]
    assert torch.load(tmp_path / "latest.pth", weights_only=True)["step"] == 1
    # with a wall-clock budget the LR schedule spans max_steps (the run's planned length), else the epochs
    assert trainer.schedule_steps == 12
    assert make_trainer(tmp_path / "b", max_steps=12).schedule_steps == 15
