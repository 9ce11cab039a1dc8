"""Training on OpenOccupancy (nuScenes-Occupancy) labels: ``data.occ_format='openocc'`` + ``data.openocc_root``
(configs/tiny_openocc.py) on the synthetic dataroot (conftest ``synth_root``) with hand-written sparse label files.

The label files are placed by the nuScenes tables themselves (``sample.json`` scene token, ``sample_data.json``
LIDAR_TOP keyframe token), so the test also checks that the index carries the right tokens into each Sample.
"""

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from perception.constants import OPENOCC_GRID

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "tiny_openocc.py"
TINY = REPO / "configs" / "tiny.py"
# Rows [z, y, x, label]: an asymmetric car voxel (x=200, y=100, z=3), vegetation at the centre, a noise voxel
# (label 0 -> ignore 255) and a corner voxel; each sample adds one more voxel at x = 10 + its index.
SPARSE = np.array([[3, 100, 200, 4], [10, 256, 256, 16], [5, 7, 9, 0], [39, 511, 0, 1]], np.int64)
# CPU budget (like tests/test_overfit.py): 2 cameras at 64 x 192, 1 sweep, 512 occupancy voxels per step.
SMALL = [
    "data.num_sweeps=1", "data.cameras=('CAM_FRONT', 'CAM_BACK')", "data.image_size=(64, 192)",
    "model.camera.image_size=(64, 192)", "model.head.occ.train_voxels=512",
    "data.augment.resize_lim=(0.3, 0.3)", "data.augment.test_resize=0.3",
]


def _sparse(i):
    return np.concatenate([SPARSE, [[0, 0, 10 + i, 2]]]).astype(np.int64)


def _expected_dense(i):
    dense = np.zeros(OPENOCC_GRID.shape, np.int64)  # [ix, iy, iz]
    dense[200, 100, 3], dense[256, 256, 10], dense[9, 7, 5], dense[0, 511, 39], dense[10 + i, 0, 0] = 4, 16, 255, 1, 2
    return dense


def _lidar_tokens(dataroot):
    """``{sample token: (scene token, LIDAR_TOP keyframe sample_data token)}`` straight from the JSON tables."""
    tables = Path(dataroot) / "v1.0-trainval"
    scene_of = {s["token"]: s["scene_token"] for s in json.loads((tables / "sample.json").read_text())}
    out = {}
    for sd in json.loads((tables / "sample_data.json").read_text()):
        if sd["is_key_frame"] and sd["filename"].startswith("samples/LIDAR_TOP/"):
            out[sd["sample_token"]] = (scene_of[sd["sample_token"]], sd["token"])
    return out


@pytest.fixture(scope="module")
def labelled(synth_root, tmp_path_factory):
    """``(samples, root, paths)``: the synthetic train split and an OpenOccupancy label tree for it, where
    sample 0 and 2 have good files, sample 1 a malformed one ((N, 3) columns) and the last sample none."""
    from perception.config import load_config
    from perception.data.openocc_labels import openocc_label_path
    from perception.training.data import load_split

    cfg = load_config(CONFIG, [f"data.dataroot={str(synth_root)!r}"])
    samples = load_split(cfg.data, "train")
    assert len(samples) >= 4
    tokens = _lidar_tokens(synth_root)
    root = tmp_path_factory.mktemp("openocc")
    paths = []
    for i, s in enumerate(samples):
        assert (s.scene_token, s.lidar_token) == tokens[s.token]  # the index carries the tables' tokens
        path = Path(openocc_label_path(str(root), *tokens[s.token]))
        paths.append(path)
        if i == len(samples) - 1:
            continue  # no label file
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, _sparse(i)[:, :3] if i == 1 else _sparse(i))
    return samples, root, paths


def _cfg(synth_root, root, *extra, config=CONFIG):
    from perception.config import load_config

    return load_config(config, [f"data.dataroot={str(synth_root)!r}", f"data.openocc_root={str(root)!r}", *extra])


def test_dataset_reads_openocc_labels_and_counts_bad_files(labelled, synth_root, caplog):
    from perception.data.collate import collate
    from perception.training.data import make_dataset

    samples, root, paths = labelled
    dataset = make_dataset(_cfg(synth_root, root, *SMALL), samples, training=True)
    with caplog.at_level("WARNING"):
        items = [dataset[i] for i in range(len(samples))]
    for i in (0, 2):  # exact voxels: [z, y, x, label] -> [ix, iy, iz], noise -> 255, the rest 0
        occ = items[i]["gt_occ"]
        assert occ.shape == (512, 512, 40) and occ.dtype == np.int64 and items[i]["gt_occ_valid"]
        assert np.array_equal(occ, _expected_dense(i))
        assert occ[200, 100, 3] == 4 and occ[100, 200, 3] == 0  # x first, not the file's z, y, x order
        assert items[i]["gt_occ_mask"].shape == (512, 512, 40) and items[i]["gt_occ_mask"].all()
    bad, missing = items[1], items[-1]
    assert not bad["gt_occ_valid"] and not missing["gt_occ_valid"]
    assert not bad["gt_occ_mask"].any() and not missing["gt_occ_mask"].any()
    assert dataset.stats["occ_unreadable"] == 1 and dataset.stats["occ_missing"] == 1
    assert str(paths[1]) in caplog.text and str(paths[-1]) in caplog.text
    batch = collate(items[:2])
    assert batch["gt_occ"].shape == (2, 512, 512, 40) and batch["gt_occ_valid"].tolist() == [True, False]


def test_bad_occupancy_settings_raise_naming_the_keys(labelled, synth_root, tmp_path):
    from dataclasses import replace

    from perception.config import load_config
    from perception.data.dataset import M3Dataset
    from perception.training.data import make_dataset
    from perception.training.from_config import train_from_config

    samples, root, _ = labelled
    with pytest.raises(ValueError, match=r"data\.occ_format"):
        _cfg(synth_root, root, "data.occ_format='surroundocc'")
    no_root = load_config(CONFIG, [f"data.dataroot={str(synth_root)!r}"])
    with pytest.raises(ValueError, match=r"data\.openocc_root"):
        make_dataset(no_root, samples, training=True)
    make_dataset(no_root, [], training=False, load_gt=False)  # inference (Predictor) needs no labels
    # the data's labels and the model's grid must agree, both ways
    for config, fmt in ((TINY, "openocc"), (CONFIG, "occ3d")):  # checked with the config
        with pytest.raises(ValueError, match=r"data\.occ_format.*model\.head\.occ\.grid"):
            _cfg(synth_root, root, f"data.occ_format={fmt!r}", config=config)
    with pytest.raises(ValueError, match=r"data\.occ_format.*model\.head\.occ\.grid"):  # before any index build
        train_from_config(str(TINY), work_dir=tmp_path / "w", dataroot=tmp_path / "nowhere",
                          cfg_options=["data.occ_format='openocc'", "data.openocc_root='x'"], progress=False)
    # the dataset itself
    with pytest.raises(ValueError, match=r"data\.occ_format"):
        M3Dataset(samples, occ_format="semantickitti")
    with pytest.raises(ValueError, match=r"data\.openocc_root"):
        M3Dataset(samples, occ_format="openocc")
    with pytest.raises(FileNotFoundError, match=r"data\.openocc_root"):
        M3Dataset(samples, occ_format="openocc", openocc_root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no nuScenes-Occupancy label file"):  # wrong (empty) root
        M3Dataset(samples, occ_format="openocc", openocc_root=tmp_path)
    with pytest.raises(ValueError, match="rebuild the index"):  # an index without scene tokens
        M3Dataset([replace(s, scene_token="") for s in samples], occ_format="openocc", openocc_root=root)
    M3Dataset(samples, occ_format="openocc", openocc_root=None, load_occ=False)  # no occupancy GT: no checks


def test_old_index_without_scene_tokens_still_loads(labelled, synth_root, tmp_path):
    from perception.data.info_file import load_info_file
    from perception.data.nuscenes_index import default_index_path

    samples, _, _ = labelled
    with open(default_index_path(synth_root, "v1.0-trainval"), "rb") as f:
        index = pickle.load(f)
    for e in index["data_list"]:
        del e["scene_token"]
    e0 = index["data_list"][0]  # OpenOccupancy-style info: the LiDAR token at the top level
    e0["lidar_token"] = e0["lidar_points"].pop("sample_data_token")
    path = tmp_path / "old_index.pkl"
    path.write_bytes(pickle.dumps(index))
    loaded = load_info_file(path, data_root=synth_root)
    assert len(loaded) == len(index["data_list"]) and all(s.scene_token == "" for s in loaded)
    assert loaded[0].lidar_token == e0["lidar_token"] and all(s.lidar_token for s in loaded)


def test_one_training_step_on_openocc_labels_has_occupancy_gradients(labelled, synth_root):
    from perception.data.collate import collate
    from perception.models import build_model
    from perception.training.data import make_dataset

    samples, root, _ = labelled
    cfg = _cfg(synth_root, root, *SMALL)
    assert cfg.model.head.occ.grid == "openocc" and cfg.data.occ_format == "openocc"
    torch.manual_seed(0)
    model = build_model(cfg.model)
    assert model.head.occ.grid == OPENOCC_GRID and model.head.occ.free_index == 0
    batch = collate([make_dataset(cfg, samples[:1], training=True)[0]])
    assert batch["gt_occ_valid"].all()
    model.train()
    seen = []  # the voxels the occupancy loss is computed on (occ.train_voxels sampled from gt_occ)
    model.head.register_forward_hook(lambda mod, args, out: seen.append(out["occ"]))
    losses = model(batch)
    sampled = seen[0]["labels"][seen[0]["mask"]]
    # every written occupied voxel is drawn (occupied first), the noise voxel (255) never counts
    assert set(sampled.unique().tolist()) == {0, 1, 2, 4, 16}
    occ_keys = ("loss_occ_ce", "loss_occ_lovasz", "loss_occ_affinity", "loss_occ_refine")  # + the cue refiner's
    assert all(torch.isfinite(losses[k]) for k in occ_keys) and float(losses["loss_occ_ce"].detach()) > 0
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses[k] for k in occ_keys).backward()
    grads = [p.grad for p in model.head.occ.head.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_eval_defaults_openocc_root_to_the_config(tmp_path, monkeypatch):
    from perception.cli import evaluate
    from perception.eval import runner

    seen = []
    monkeypatch.setattr(runner, "evaluate_checkpoint", lambda *a, **kw: seen.append(kw["openocc_root"]))
    config = tmp_path / "openocc_with_root.py"
    config.write_text(f"_base_ = [{str(CONFIG)!r}]\ndata = dict(openocc_root='/labels/openocc')\n")

    def run(config, openocc_root=None):
        evaluate.run(argparse.Namespace(
            config=str(config), checkpoint="unused.pth", dataroot="unused", version="v1.0-trainval", split="val",
            out=str(tmp_path / "out"), results=None, bev_results=None, occ_results=None, allow_partial=False,
            no_rayiou=False, openocc_root=openocc_root, cfg_options=[], device="cpu", withhold=[],
            region="all", bf16=False, no_lidar_model=None, no_camera_model=None))
        return seen[-1]

    assert run(config) == "/labels/openocc"
    assert run(config, "/explicit") == "/explicit"
    assert run(CONFIG) is None  # not set: evaluate_checkpoint then asks for --openocc-root
    assert run(TINY) is None  # Occ3D config
