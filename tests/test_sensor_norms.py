"""BatchNorm statistics per sensor condition (perception.models.sensor_norms, perception calibrate-norms):
the estimate is the average of each frame's batch statistics, only the layers after the withheld sensor
change, the Predictor normalizes each frame with its condition's statistics and a full frame exactly as
before, and a checkpoint whose statistics do not fit is refused by name."""

import warnings

import numpy as np
import pytest
import torch

from perception.config import load_config
from perception.data.io import load_image, load_points
from perception.data.sample import CameraView, Sample
from perception.models import build_model
from perception.models.sensor_norms import (
    SENSOR_NORMS_KEY,
    batch_norms,
    check_sensor_norms,
    condition_layers,
    estimate_condition_stats,
)
from perception.runtime import CameraFrame, Frame, Predictor
from perception.runtime.sensor_calibration import calibrate_sensor_norms
from perception.training.checkpoint import save_checkpoint
from test_predictor import CONFIG, IMAGE, L2C, LIDAR, K  # the same real frame and camera rig


@pytest.fixture(scope="module")
def predictor():
    cfg = load_config(CONFIG, ["model.score_threshold=0.0", "model.map_memory_s=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    # trained-looking statistics (not the 0 / 1 of a fresh layer), so that a swap is visible
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return Predictor(cfg, {"model": model.state_dict()})


@pytest.fixture(scope="module")
def samples(real_dir, tmp_path_factory):
    """Two real frames: the fixture sweep with one real camera, and every other point of it (another cloud)."""
    half = tmp_path_factory.mktemp("norms") / "half.pcd.bin"
    points = np.fromfile(real_dir / LIDAR, dtype=np.float32).reshape(-1, 5)
    points[::2].tofile(half)
    cam = CameraView(name="CAM_BACK_LEFT", path=str(real_dir / IMAGE), intrinsics=K, lidar2cam=L2C)
    return [Sample(token=f"s{i}", lidar_path=str(path), lidar2ego=np.eye(4), ego2global=np.eye(4),
                   cameras={"CAM_BACK_LEFT": cam}, num_sweeps=1)
            for i, path in enumerate((real_dir / LIDAR, half))]


def frame(points, image=None):
    cams = {} if image is None else {"CAM_BACK_LEFT": CameraFrame(image, K, L2C)}
    return Frame(points=points, cameras=cams, lidar2ego=np.eye(4), timestamp=1)


def test_condition_layers_are_those_after_the_withheld_sensor(predictor):
    model = predictor.model
    no_lidar, no_cameras = condition_layers(model, "no_lidar"), condition_layers(model, "no_cameras")
    assert not any(n.startswith(("camera_encoder.backbone.", "camera_encoder.fpn.")) for n in no_lidar)
    # the depth encoder reads LiDAR depth; the fusion and the heads read both sensors
    assert any(n.startswith("camera_encoder.depth_encoder.") for n in no_lidar)
    assert any(n.startswith("neck.") for n in no_lidar) and any(n.startswith("head.") for n in no_lidar)
    assert not any(n.startswith(("lidar_encoder.", "camera_encoder.")) for n in no_cameras)
    assert any(n.startswith("neck.") for n in no_cameras)
    with pytest.raises(ValueError, match="unknown sensor condition 'no_radar'"):
        condition_layers(model, "no_radar")


def test_estimate_is_the_average_of_each_frames_batch_statistics(predictor, samples):
    """Independent arithmetic: each chosen layer's input is recorded per frame; the estimate must be the mean
    over frames of the per-channel mean and unbiased variance. The model comes back unchanged."""
    model = predictor.model
    layers = condition_layers(model, "no_lidar")
    pick = [next(n for n in layers if n.startswith(p)) for p in ("camera_encoder.depth_encoder.", "neck.", "head.")]
    seen = {n: [] for n in pick}
    hooks = [layers[n].register_forward_pre_hook(lambda m, inp, n=n: seen[n].append(inp[0].detach().double()))
             for n in pick]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batches = [predictor.withheld_batch(s, ["lidar"])[0] for s in samples]
    try:
        stats = estimate_condition_stats(model, "no_lidar", batches, model.predict)
    finally:
        for h in hooks:
            h.remove()
    for n in pick:
        assert len(seen[n]) == len(samples)
        flat = [x.transpose(0, 1).reshape(x.shape[1], -1) for x in seen[n]]  # (C, N*H*W) per frame
        mean = torch.stack([f.mean(1) for f in flat]).mean(0)
        var = torch.stack([f.var(1, unbiased=True) for f in flat]).mean(0)
        torch.testing.assert_close(stats[n]["running_mean"].double(), mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stats[n]["running_var"].double(), var, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(stats[n]["running_mean"], before[n + ".running_mean"])
    assert set(stats) <= set(layers)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training and all(m.momentum == 0.1 and not m.training for m in layers.values())


def test_predictor_normalizes_each_frame_with_its_conditions_statistics(predictor, samples, real_dir, tmp_path):
    """A full frame: exactly the uncalibrated prediction, also after a degraded one. A frame without LiDAR:
    exactly a model whose buffers hold the no-LiDAR statistics, and not the uncalibrated prediction."""
    entry = calibrate_sensor_norms(predictor, samples, num_samples=5)
    assert entry["samples"] == 2 and set(entry["conditions"]) == {"no_lidar", "no_cameras"}
    path = tmp_path / "calibrated.pth"
    save_checkpoint(path, {"model": predictor.model.state_dict(), SENSOR_NORMS_KEY: entry})
    assert SENSOR_NORMS_KEY in torch.load(path, weights_only=True)
    calibrated = Predictor(predictor.cfg, path)
    weights = predictor.model.state_dict()
    for name, values in entry["conditions"]["no_lidar"].items():
        weights.update({f"{name}.{s}": v for s, v in values.items()})
    by_hand = Predictor(predictor.cfg, {"model": weights})

    points = load_points(str(real_dir / LIDAR))[:, :4]
    image = load_image(str(real_dir / IMAGE))
    full, no_lidar, no_cams = frame(points, image), frame(np.zeros((0, 4), np.float32), image), frame(points)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = {k: predictor.predict(f) for k, f in (("full", full), ("no_lidar", no_lidar), ("no_cams", no_cams))}
        got_full = calibrated.predict(full)
        got_no_lidar = calibrated.predict(no_lidar)
        got_full_again = calibrated.predict(full)
        got_no_cams = calibrated.predict(no_cams)
        expected_no_lidar = by_hand.predict(no_lidar)
    for got in (got_full, got_full_again):
        np.testing.assert_array_equal(got.bev_probs, plain["full"].bev_probs)
        np.testing.assert_array_equal(got.boxes, plain["full"].boxes)
        assert (got.occ_labels == plain["full"].occ_labels).all()
        assert not any("BatchNorm" in w for w in got.warnings)
    np.testing.assert_array_equal(got_no_lidar.bev_probs, expected_no_lidar.bev_probs)
    assert (got_no_lidar.occ_labels == expected_no_lidar.occ_labels).all()
    assert not np.allclose(got_no_lidar.bev_probs, plain["no_lidar"].bev_probs)
    assert "BatchNorm statistics of the no lidar condition" in got_no_lidar.warnings
    assert not np.allclose(got_no_cams.bev_probs, plain["no_cams"].bev_probs)
    assert "BatchNorm statistics of the no cameras condition" in got_no_cams.warnings


def test_a_training_batch_without_lidar_leaves_the_full_frame_statistics_alone(samples):
    """Modality dropout in training: a batch without LiDAR changes no running statistic of a layer after the
    LiDAR (those stay the full frames' ones the Predictor normalizes a full frame with), while the image
    backbone's still learn from its images; a full batch, or one where a sample still has LiDAR, moves them."""
    from perception.data.collate import collate
    from perception.training.data import make_dataset

    cfg = load_config(CONFIG, ["model.map_memory_s=0"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    dataset = make_dataset(cfg, samples, training=False, load_gt=False)
    full = collate([dataset[0], dataset[1]])
    no_lidar = dict(full, lidar_mask=torch.zeros_like(full["lidar_mask"]), points=[p[:0] for p in full["points"]])
    mixed = dict(no_lidar, lidar_mask=torch.tensor([True, False]), points=[full["points"][0], no_lidar["points"][1]])
    norms, after_lidar = batch_norms(model), condition_layers(model, "no_lidar")
    momenta = {n: m.momentum for n, m in norms.items()}

    def moved(run_batch):
        before = {n: (m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked))
                  for n, m in norms.items()}
        model(run_batch)
        return {n for n, m in norms.items() if not torch.equal(m.running_mean, before[n][0])
                or not torch.equal(m.running_var, before[n][1]) or int(m.num_batches_tracked) != before[n][2]}

    changed = moved(no_lidar)
    assert not changed & set(after_lidar)
    assert any(n.startswith("camera_encoder.backbone.") for n in changed)
    assert {n: m.momentum for n, m in norms.items()} == momenta  # restored after the batch
    for run_batch in (full, mixed):
        assert len(moved(run_batch) & set(after_lidar)) > len(after_lidar) // 2


def test_statistics_that_do_not_fit_the_model_are_refused_by_name(predictor):
    model = predictor.model
    depth = next(n for n in condition_layers(model, "no_lidar") if n.startswith("camera_encoder.depth_encoder."))
    backbone = next(n for n, m in model.named_modules()
                    if n.startswith("camera_encoder.backbone.") and isinstance(m, torch.nn.BatchNorm2d))
    size = model.get_submodule(depth).num_features

    def entry(condition, name, n=size):
        return {"conditions": {condition: {name: {"running_mean": torch.zeros(n), "running_var": torch.ones(n)}}}}

    check_sensor_norms(entry("no_lidar", depth), model)  # fits
    cases = [(entry("no_lidar", "neck.nothing"), "no BatchNorm layer 'neck.nothing'"),
             (entry("no_lidar", backbone), f"layer '{backbone}' does not depend on the withheld sensor"),
             (entry("no_lidar", depth, size + 1), rf"{depth}\.running_mean must be \({size},\)"),
             (entry("no_sonar", depth), "unknown sensor condition 'no_sonar'"),
             ({"no_lidar": {}}, "'conditions' dict")]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            Predictor(predictor.cfg, {"model": model.state_dict(), SENSOR_NORMS_KEY: bad})


def test_calibrate_norms_command_writes_a_new_checkpoint(synth_root, tmp_path, capsys):
    from perception.cli.main import main

    torch.manual_seed(0)
    cfg = load_config(CONFIG)
    src = tmp_path / "model.pth"
    save_checkpoint(src, {"model": build_model(cfg.model).state_dict(), "step": 7})
    src_bytes = src.read_bytes()
    out = tmp_path / "calibrated.pth"
    base = ["calibrate-norms", str(CONFIG), str(src), "--dataroot", str(synth_root), "--split", "val"]
    assert main([*base, "--samples", "2", "--conditions", "no_lidar", "--out", str(out)]) == 0
    assert src.read_bytes() == src_bytes  # the input is not changed
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["step"] == 7 and set(ckpt[SENSOR_NORMS_KEY]["conditions"]) == {"no_lidar"}
    assert ckpt[SENSOR_NORMS_KEY]["samples"] == 2 and ckpt[SENSOR_NORMS_KEY]["split"] == "val"
    check_sensor_norms(ckpt[SENSOR_NORMS_KEY], build_model(cfg.model))
    capsys.readouterr()
    refusals = [([*base, "--out", str(out)], "exists (pass --overwrite"),
                ([*base, "--out", str(src)], "is the input checkpoint"),
                ([*base, "--samples", "0", "--out", str(tmp_path / "x.pth")], "--samples must be >= 1"),
                (["calibrate-norms", str(CONFIG.parent / "tiny_lidar.py"), str(src), "--dataroot", str(synth_root),
                  "--out", str(tmp_path / "y.pth")], "reads one sensor only")]
    for argv, message in refusals:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("perception calibrate-norms: error: ") and message in err, err


def test_statistics_fit_the_weights_they_were_estimated_with(synth_root, tmp_path, capsys):
    """A checkpoint with EMA weights: calibrate-norms --ema estimates with them (other statistics than the
    'model' weights give), and a Predictor that runs the other set refuses the entry by name."""
    from perception.cli.main import main

    torch.manual_seed(0)
    cfg = load_config(CONFIG)
    state = build_model(cfg.model).state_dict()
    shadow = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in state.items()}
    src = tmp_path / "trained.pth"
    save_checkpoint(src, {"model": state, "ema": {"updates": 3, "shadow": shadow}})
    base = ["calibrate-norms", str(CONFIG), str(src), "--dataroot", str(synth_root), "--split", "val", "--samples",
            "2", "--conditions", "no_lidar"]
    outs = {w: tmp_path / f"{w}.pth" for w in ("model", "ema")}
    assert main([*base, "--out", str(outs["model"])]) == 0
    assert main([*base, "--ema", "--out", str(outs["ema"])]) == 0
    entries = {w: torch.load(p, weights_only=True)[SENSOR_NORMS_KEY] for w, p in outs.items()}
    assert {w: e["weights"] for w, e in entries.items()} == {"model": "model", "ema": "ema"}
    ema, plain_stats = (entries[w]["conditions"]["no_lidar"] for w in ("ema", "model"))
    differ = [n for n in ema if not torch.equal(ema[n]["running_mean"], plain_stats[n]["running_mean"])]
    assert len(differ) > len(ema) // 2  # estimated through the EMA weights
    assert Predictor(cfg, outs["ema"], use_ema=True).sensor_norms is not None
    assert Predictor(cfg, outs["model"]).sensor_norms is not None
    for path, use_ema, fitted in ((outs["ema"], False, "ema"), (outs["model"], True, "model")):
        with pytest.raises(ValueError, match=f"estimated with its '{fitted}' weights"):
            Predictor(cfg, path, use_ema=use_ema)
    plain = tmp_path / "plain.pth"
    save_checkpoint(plain, {"model": state})
    capsys.readouterr()
    assert main([*base[:2], str(plain), *base[3:], "--ema", "--out", str(tmp_path / "z.pth")]) == 2
    assert "has no EMA weights" in capsys.readouterr().err
