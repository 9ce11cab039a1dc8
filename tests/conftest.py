"""Shared test fixtures.

Real nuScenes fixtures are read from ``../shared/data/real`` (beside the repository, as CI has it); no copy
is committed. A missing shared folder is an error, not a skip: CI always has it.
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("M3_SHARED_DIR", REPO.parent / "shared"))
REAL = SHARED / "data" / "real"

# Keep torch to one thread per test process: deterministic and fair on 2-core machines.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def real_dir() -> Path:
    assert REAL.is_dir(), f"real nuScenes fixtures not found at {REAL} (set M3_SHARED_DIR)"
    return REAL


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A freshly synthesized 2-scene nuScenes-format dataroot (v1.0-trainval names), built once per run.

    World v1 (one look per class): the data-layer tests check its known palette and placements; world v2 has
    its own tests (test_synth_v2.py) and is what the other generated dataroots of the suite use."""
    from perception.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, scenes=2, samples_per_scene=4, seed=0, world="v1")
    return out


@pytest.fixture
def all_cores():
    """For the few long single-process tests (full config, overfit): use every core, then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)



@pytest.fixture(scope="session")
def tiny_random_checkpoint(tmp_path_factory) -> Path:
    """``configs/tiny.py`` with seeded random weights, saved as a checkpoint (node, replay and DDS tests)."""
    import torch

    from perception.config import load_config
    from perception.models import build_model
    from perception.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_ckpt") / "tiny_random.pth"
    save_checkpoint(path, {"model": build_model(load_config(REPO / "configs" / "tiny.py").model).state_dict()})
    return path
