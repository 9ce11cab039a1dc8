"""Config loading: `_base_` inheritance, --cfg-options overrides, schema errors naming key and file."""

from pathlib import Path

import pytest

from perception.config import load_config, parse_override

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def write(path, text):
    path.write_text(text)
    return path


def test_every_shipped_config_loads_with_its_variant():
    tiny, mamba = load_config(CONFIGS / "tiny.py"), load_config(CONFIGS / "tiny_mamba.py")
    assert tiny.model.head["decoder"] == "transformer" and mamba.model.head["decoder"] == "mamba"
    assert mamba.model.head["d_model"] == 64 and mamba.model.head["loss_weights"]["occ"] == 6.0
    assert mamba.model.head["loss_weights"]["map"] == 10.0  # merged with tiny's weights, not replaced
    full = load_config(CONFIGS / "nuscenes_full.py")
    assert full.data.image_size == (256, 704) and full.data.num_sweeps == 10
    assert full.model.lidar["voxel_size"] == (0.075, 0.075, 0.2) and full.model.bev_cell == 0.6
    assert round((full.model.point_cloud_range[3] - full.model.point_cloud_range[0]) / full.model.bev_cell) == 180
    h = full.model.head
    assert (h["det"]["num_queries"], h["num_layers"], h["d_model"], h["num_heads"], h["ffn_dim"]) == \
        (200, 6, 256, 8, 1024)
    train = full.train
    assert (train.lr, train.weight_decay, train.schedule, train.grad_clip) == (8e-4, 0.01, "onecycle", 10.0)
    assert load_config(CONFIGS / "nuscenes_full_mamba.py").model.head["decoder"] == "mamba"
    single = [load_config(CONFIGS / f"tiny_{t}.py").model.tasks for t in ("det", "map", "occ")]
    assert single == [("det",), ("map",), ("occ",)]
    assert load_config(CONFIGS / "tiny_lidar.py").model.camera is None
    assert load_config(CONFIGS / "tiny_camera.py").model.lidar is None


def test_base_inheritance_and_overrides(tmp_path):
    write(tmp_path / "base.py", 'train = dict(epochs=2, lr=0.1, seed=5)\n'
          'data = dict(dataroot="/d", image_size=(32, 64))\n'
          'model = dict(tasks=("det",), point_cloud_range=(-1, -1, -1, 1, 1, 1), bev_cell=0.5,\n'
          '             lidar=dict(out_channels=8), fusion=dict(out_channels=8), head=dict(d_model=8))\n')
    child = write(tmp_path / "child.py",
                  '_base_ = ["base.py"]\ntrain = dict(lr=0.2)\nmodel = dict(head=dict(num_layers=1))\n')
    cfg = load_config(child, ["train.epochs=7", "data.dataroot=/other/root", "model.head.d_model=16",
                              "data.augment.image_flip_prob=0.25"])
    assert (cfg.train.lr, cfg.train.seed, cfg.train.epochs) == (0.2, 5, 7)  # child, base, override
    assert cfg.train.schedule == "onecycle" and cfg.train.batch_size == 1  # schema defaults filled
    assert cfg.model.head == {"d_model": 16, "num_layers": 1}
    assert cfg.data.dataroot == "/other/root" and cfg.data.augment.image_flip_prob == 0.25
    assert cfg.model.camera is None
    assert cfg.to_dict()["model"]["tasks"] == ["det"] and type(cfg.to_dict()["train"]) is dict
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2]) and parse_override("x=abc") == (["x"], "abc")


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        ("train = dict(epochs=1, lr=0.1, lrr=3)", [], r"train\.lrr"),
        ("train = dict(epochs=1, lr=0.1)", ["data.augment.flipp=1"], r"data\.augment\.flipp"),
        ("train = dict(epochs=1)", [], r"missing required config key train\.lr"),
        ("train = dict(epochs=1, lr=0.1, schedule='step')", [], r"train\.schedule"),
        ("train = dict(epochs=1, lr=0.1)", ["data.modality_dropout_per='frame'"],
         r"data\.modality_dropout_per must be one of \('sample', 'batch'\)"),
        ("train = dict(epochs=1, lr=0.1)\nextra = 1", [], r"extra"),
    ],
)
def test_bad_keys_name_the_key_and_the_file(tmp_path, text, overrides, message):
    path = write(tmp_path / "bad_config.py", text + '\ndata = dict(dataroot="/d", image_size=(32, 64))\n'
                 'model = dict(tasks=("det",), point_cloud_range=(-1, -1, -1, 1, 1, 1), bev_cell=0.5,\n'
                 '             lidar=dict(), fusion=dict(), head=dict())\n')
    with pytest.raises(ValueError, match=message) as info:
        load_config(path, overrides)
    assert "bad_config.py" in str(info.value)


def test_missing_file_and_malformed_override(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.py"):
        load_config(tmp_path / "nothing.py")
    with pytest.raises(ValueError, match="key.path=value"):
        load_config(CONFIGS / "tiny.py", ["train.lr"])


def test_head_task_sections_merge_and_their_keys_are_checked_against_the_task_modules():
    """``model.head.det`` / ``.map`` / ``.occ`` merge through ``_base_`` and overrides like any section, and each key
    is checked against its task module's signature when the model is built (error naming model.head.<task>.<key>)."""
    from perception.models import build_model

    tiny = load_config(CONFIGS / "tiny.py")
    assert tiny.model.head["occ"] == {"grid": "occ3d", "frame": "ego", "num_classes": 18, "bev_height_bins": 20,
                                      "lidar_cues": True, "train_voxels": 8192, "sample_balance": 0.5}
    openocc = load_config(CONFIGS / "tiny_openocc.py", ["model.head.occ.train_voxels=512"])
    assert openocc.model.head["occ"]["grid"] == "openocc" and openocc.model.head["occ"]["train_voxels"] == 512
    assert openocc.model.head["det"]["num_queries"] == 100  # tiny's, kept
    for options, message in ((["model.head.occ.voxels=3"],
                              r"unknown config key model\.head\.occ\.voxels .*tiny\.py.*OccTask"),
                             (["model.head.det.d_model=8"],
                              r"model\.head\.det\.d_model .*tiny\.py.*set by MultiTaskHead"),
                             (["model.head.map.strips=3"], r"unknown config key model\.head\.map\.strips")):
        with pytest.raises(ValueError, match=message):
            build_model(load_config(CONFIGS / "tiny.py", options).model)
    with pytest.raises(ValueError, match=r"model\.head\.occ\.grid .*tiny\.py.*'surroundocc'"):
        load_config(CONFIGS / "tiny.py", ["model.head.occ.grid='surroundocc'"])
    with pytest.raises(ValueError, match=r"model\.head\.det must be a dict"):
        load_config(CONFIGS / "tiny.py", ["model.head.det=3"])


@pytest.mark.parametrize("options, message", [
    (["model.refiner={}"], r"model\.refiner in .*tiny_camera\.py.*model\.lidar is None"),
    (["model.head.occ.lidar_cues=True"], r"model\.head\.occ\.lidar_cues in .*tiny_camera\.py.*model\.lidar is None"),
])
def test_what_reads_lidar_points_needs_the_lidar(options, message):
    with pytest.raises(ValueError, match=message):
        load_config(CONFIGS / "tiny_camera.py", options)


@pytest.mark.parametrize("config, option", [("tiny_camera.py", "all_cameras=0.1"), ("tiny_camera.py", "lidar=0.1"),
                                            ("tiny_lidar.py", "lidar=0.1"), ("tiny_lidar.py", "some_cameras=0.1")])
def test_modality_dropout_needs_both_encoders(config, option):
    """A camera-only model trained with its cameras dropped would see a sample with no input it reads."""
    with pytest.raises(ValueError, match=rf"data\.modality_dropout in .*{config}.*one encoder"):
        load_config(CONFIGS / config, [f"data.modality_dropout.{option}"])
    load_config(CONFIGS / "tiny.py", [f"data.modality_dropout.{option}"])  # both encoders: allowed


def test_box_refiner_needs_detection_and_occupancy_labels_match_the_grid():
    with pytest.raises(ValueError, match=r"model\.refiner in .*tiny\.py.*no 'det'"):
        load_config(CONFIGS / "tiny.py", ["model.tasks=('map',)"])
    assert load_config(CONFIGS / "tiny.py", ["model.tasks=('map',)", "model.refiner=None"]).model.tasks == ("map",)
    with pytest.raises(ValueError, match=r"data\.occ_format='occ3d' does not match "
                                         r"model\.head\.occ\.grid='openocc' \(file .*tiny\.py"):
        load_config(CONFIGS / "tiny.py", ["model.head.occ.grid='openocc'"])
    # without the 'occ' task the labels are never read: no rule
    load_config(CONFIGS / "tiny_det.py", ["model.head.occ.grid='openocc'"])
