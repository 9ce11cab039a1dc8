"""The v2 learning targets are judged by code (benchmarks/learn_targets.py): its rules, on made-up rows."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import learn_targets as lt  # noqa: E402


def rows(**per_key):
    """Three seeds' records; each keyword gives the three values of one metric."""
    n = len(next(iter(per_key.values())))
    return [{"seed": i, **{k: v[i] for k, v in per_key.items()}} for i in range(n)]


def runs(fusion_map=(0.10, 0.10, 0.10)):
    keys = ("mAP", "car_ap", "bev_miou", "occ_miou")
    same = {k: (0.2, 0.2, 0.2) for k in keys}
    return {
        lt.PRIOR: [{"seed": None, "bev_miou": 0.15, "occ_miou": 0.06}],
        lt.FUSION: rows(**{**same, "mAP": fusion_map, "bev_miou": (0.31, 0.31, 0.31)}),
        # LiDAR-only mAP: mean 0.09, sample std 0.01
        lt.LIDAR: rows(**{**same, "mAP": (0.08, 0.09, 0.10), "car_ap": (0.1, 0.1, 0.1), "occ_miou": (0.1,) * 3}),
        lt.CAMERA: rows(**{**same, "bev_miou": (0.25, 0.25, 0.25), "occ_miou": (0.1, 0.1, 0.1)}),
        lt.NO_LIDAR: rows(**{**same, "bev_miou": (0.2,) * 3, "occ_miou": (0.07,) * 3}),
        lt.FRONT: rows(**same),
        lt.FRONT3: rows(**{k: (0.17, 0.17, 0.17) for k in keys}),
    }


def status(judged, start):
    return next(met for target, _, met in judged if target.startswith(start))


def test_fusion_must_beat_lidar_only_by_more_than_its_seed_std():
    # 0.095 is above LiDAR-only's mean (0.09) but not above mean + std (0.10)
    assert not status(lt.judge(runs(fusion_map=(0.095,) * 3)), "fusion mAP")
    assert status(lt.judge(runs(fusion_map=(0.105,) * 3)), "fusion mAP")


def test_ratio_and_prior_targets():
    judged = lt.judge(runs())
    assert status(judged, "fusion BEV mIoU >= prior")          # 0.31 >= 0.15 + 0.15
    assert status(judged, "fusion Occ3D mIoU >= prior")        # 0.2 >= 0.06 + 0.10
    assert status(judged, "camera-only BEV")                   # 0.25 - 0 >= 0.20
    assert not status(judged, "fusion without LiDAR")          # BEV 80 % but Occ3D 70 % of camera-only
    assert not status(judged, "three front cameras")           # 85 % of the full model's front region


def test_a_val_summary_is_refused(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"scored_on": "val", "runs": runs()}))
    with pytest.raises(SystemExit, match="val"):
        lt.load_runs(str(path))


def test_the_calibrated_prior_is_judged_on_the_bev_targets_only(capsys, tmp_path):
    data = runs()
    data[lt.CALIBRATED_PRIOR] = [{"seed": None, "bev_miou": 0.21}]  # its raster calibrated on val: a higher bar
    against = [lt.over_prior(data, "bev_miou", lt.CALIBRATED_PRIOR), lt.camera_over_prior(data, lt.CALIBRATED_PRIOR)]
    assert not status(against, "fusion BEV mIoU >= prior + 0.15 = 0.360")  # 0.31 < 0.21 + 0.15
    assert not status(against, "camera-only BEV")                          # 0.25 < 0.21 + 0.05
    assert status(lt.judge(data), "fusion BEV mIoU >= prior + 0.15 = 0.300")  # the main table: the plain prior
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"scored_on": "test", "runs": data}))
    lt.main([str(path)])
    printed = capsys.readouterr().out
    assert f"Against the {lt.CALIBRATED_PRIOR}" in printed and "= 0.360 |" in printed and "= 0.260 |" in printed
    second = printed.split(f"Against the {lt.CALIBRATED_PRIOR}")[1]
    assert "Occ3D mIoU >= prior" not in second  # the Occ3D target stays judged against the plain prior only
    assert "fusion Occ3D mIoU >= prior + 0.10 = 0.160 | 0.200 ± 0.000 (prior +0.140) | met" in printed
