"""The demo reuses a cached checkpoint only when it fits the model the config builds now."""

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
