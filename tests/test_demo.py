"""The demo reuses a cached checkpoint only when it fits the model the config builds now, and says when the
checkpoint it scores was cut short by its time cap."""

import json
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_cached_checkpoint_reused_only_when_it_fits_the_current_model(tmp_path):
    from perception.config import load_config
    from perception.models import build_model
    from perception.training.checkpoint import checkpoint_fits, save_checkpoint

    config = REPO / "configs" / "tiny.py"
    torch.manual_seed(0)
    current = build_model(load_config(config).model)
    save_checkpoint(tmp_path / "fits.pth", {"model": current.state_dict()})
    assert checkpoint_fits(str(config), tmp_path / "fits.pth")
    # A checkpoint of an older model (no up-sampled detection heatmap, no BEV height lift) must be retrained.
    older = build_model(load_config(config, ["model.head.det.upsample=1", "model.head.occ.bev_height_bins=0"]).model)
    save_checkpoint(tmp_path / "old.pth", {"model": older.state_dict()})
    assert not checkpoint_fits(str(config), tmp_path / "old.pth")
    save_checkpoint(tmp_path / "nomodel.pth", {"epoch": 3})
    assert not checkpoint_fits(str(config), tmp_path / "nomodel.pth")


def test_a_checkpoint_cut_by_the_time_cap_is_reported(tmp_path):
    from perception.cli.demo import trained_steps, undertrained_note

    assert trained_steps(tmp_path) is None  # no log: nothing to say
    records = [{"step": 5, "loss": 3.0}, {"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.0, "time_s": 373.1}]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert trained_steps(tmp_path) == 20
    note = undertrained_note(trained_steps(tmp_path), planned=120, minutes=6.0)
    assert "20 of 120 steps" in note and "--retrain" in note
    assert undertrained_note(120, planned=120, minutes=6.0) is None


def test_demo_runs_the_checkpoint_with_per_condition_statistics(synth_root, tiny_random_checkpoint, tmp_path, capsys):
    """The fusion checkpoint the demo scores, replays and hands to the node carries its no-LiDAR / no-camera
    statistics (estimated on the training frames); it is estimated again once the checkpoint is newer, and a
    single-sensor model runs its checkpoint as it is."""
    import os
    import shutil

    from perception.cli.demo import calibrated_checkpoint
    from perception.models.sensor_norms import SENSOR_NORMS_KEY

    config = REPO / "configs" / "tiny.py"
    ckpt = tmp_path / "latest.pth"
    shutil.copy(tiny_random_checkpoint, ckpt)
    out = calibrated_checkpoint(str(config), ckpt, synth_root, "v1.0-trainval")
    assert out == tmp_path / "calibrated.pth"
    entry = torch.load(out, weights_only=True)[SENSOR_NORMS_KEY]
    assert set(entry["conditions"]) == {"no_lidar", "no_cameras"} and entry["split"] == "train"
    assert entry["samples"] > 0
    written = out.stat().st_mtime_ns
    assert calibrated_checkpoint(str(config), ckpt, synth_root, "v1.0-trainval") == out
    assert out.stat().st_mtime_ns == written and "reusing" in capsys.readouterr().out
    later = written / 1e9 + 10
    os.utime(ckpt, (later, later))  # retrained: the statistics of the old weights no longer fit
    calibrated_checkpoint(str(config), ckpt, synth_root, "v1.0-trainval")
    assert out.stat().st_mtime_ns != written
    assert calibrated_checkpoint(str(REPO / "configs" / "tiny_lidar.py"), ckpt, synth_root, "v1.0-trainval") == ckpt
