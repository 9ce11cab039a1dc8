"""perception bench: the stage timing hook, the JSON it writes, the single-task comparison and the baseline
guard (a warning, never a failure)."""

import json

import pytest
import torch

from perception.bench import baseline as bl
from perception.bench.runner import run_bench
from perception.bench.single_task import single_task_configs
from perception.config import load_config
from perception.models import build_model, timing


def test_timing_hook_is_a_shared_noop_when_off_and_sums_when_on():
    assert timing.active() is None and timing.stage("x") is timing.stage("y")
    with timing.StageTimer("cpu") as t:
        for _ in range(2):
            with timing.stage("a"):
                with timing.stage("b"):
                    sum(range(1000))
        out = t.collect()
        assert set(out) == {"a", "b"} and out["a"] >= out["b"] > 0
        assert t.collect() == {}
    assert timing.active() is None
    with timing.StageTimer("cpu"), pytest.raises(RuntimeError):
        with timing.StageTimer("cpu"):
            pass


def test_bench_cli_writes_the_numbers(tmp_path):
    from perception.cli.main import main

    out = tmp_path / "bench.json"
    base = tmp_path / "baseline.json"
    argv = ["bench", "configs/tiny.py", "--frames", "2", "--warmup", "1", "--json", str(out),
            "--baseline-file", str(base)]
    assert main(argv + ["--update-baseline"]) == 0
    r = json.loads(out.read_text())
    assert {"fps", "latency_ms", "stages", "peak_mem_mb", "params", "flops_per_frame"} <= set(r)
    for stage in ("preprocess", "voxelization", "lidar_backbone", "image_backbone", "view_transform", "bev_pool",
                  "fusion", "decoder", "det_head", "map_head", "occ_head", "occ_cues", "decode", "refiner",
                  "postprocess"):
        assert r["stages"][stage]["p90_ms"] >= r["stages"][stage]["median_ms"] >= 0, stage
    assert r["fps"] > 0 and r["peak_mem_mb"] > 100 and r["params"] > 1e6
    assert r["flops_per_frame"]["total"] > 1e9
    # the stages add up to (most of) the end-to-end time, and no stage exceeds it
    assert max(s["median_ms"] for s in r["stages"].values()) <= r["latency_ms"]["p90_ms"] * 1.05
    # the baseline just recorded: the same run is not flagged (x 3 tolerance for the noisy shared machine)
    entry = json.loads(base.read_text())["entries"][0]
    assert entry["config"] == "tiny" and entry["latency_ms"] > 0
    fake = dict(r, latency_ms=dict(r["latency_ms"], median_ms=entry["latency_ms"] * 1.5))
    check = bl.check(fake, str(base))
    assert check["status"] == "slower" and "WARNING" in check["message"]
    same = dict(r, latency_ms=dict(r["latency_ms"], median_ms=entry["latency_ms"]))
    assert bl.check(same, str(base))["status"] == "ok"
    assert main(argv + ["--check-baseline"]) == 0  # a warning at most, never a failure
    # precision is part of the key: a bf16 run is not compared with the fp32 entry; an entry recorded before
    # the bf16 key existed counts as fp32
    assert r["bf16"] is False and bl.check(dict(same, bf16=True), str(base))["status"] == "no_baseline"
    old = {"entries": [{k: v for k, v in entry.items() if k != "bf16"}]}
    base.write_text(json.dumps(old))
    assert bl.check(same, str(base))["status"] == "ok"


def test_single_task_configs_and_ratio(tmp_path):
    configs = single_task_configs("configs/tiny.py")
    assert {t: c[0] for t, c in configs.items()} == {"det": "configs/tiny_det.py", "map": "configs/tiny_map.py",
                                                      "occ": "configs/tiny_occ.py"}
    derived = single_task_configs("configs/nuscenes_full.py")
    assert derived["map"][1][0] == "model.tasks=('map',)" and derived["det"][1] == ["model.tasks=('det',)"]
    # tiny_mamba has no single-task files: its derived configs drop what needs another task (the camera map loss
    # needs 'map', the box refiner 'det'), and each builds
    mamba = single_task_configs("configs/tiny_mamba.py")
    assert "model.camera_map_weight=0" in mamba["det"][1] and "model.camera_map_weight=0" not in mamba["map"][1]
    for path, options in mamba.values():
        build_model(load_config(path, options).model)
    from perception.bench.single_task import compare_single_task

    torch.manual_seed(0)
    r = run_bench("configs/tiny.py", frames=1, warmup=0, flops=False)
    st = compare_single_task(r, "configs/tiny.py", None, "cpu", frames=1, warmup=0)
    assert set(st["single_task_ms"]) == {"det", "map", "occ"}
    assert st["multitask_ratio"] == pytest.approx(st["multitask_ms"] / st["single_task_sum_ms"])
