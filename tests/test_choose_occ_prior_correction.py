"""The choice of ``model.head.occ.prior_correction`` on val (benchmarks/choose_occ_prior_correction.py, candidate
Q), on made-up val scores: the best mean, near-ties to the tau nearest 1, and the bar for adoption."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import choose_occ_prior_correction as cq  # noqa: E402


def scores(**by_tau):
    """``{seed: {tau: {'occ_miou': v}}}`` from ``tau_1_25=(seed 0, seed 1, seed 2)`` style keywords."""
    out = {}
    for key, values in by_tau.items():
        tau = key.removeprefix("tau_").replace("_", ".")
        for s, v in enumerate(values):
            out.setdefault(str(s), {})[tau] = {"occ_miou": v}
    return out


def test_the_best_mean_is_chosen_and_adopted_when_every_seed_gains_enough():
    tau, adopted, gains = cq.choose(scores(tau_0_75=(0.20, 0.19, 0.18), tau_1=(0.21, 0.20, 0.19),
                                           tau_1_25=(0.215, 0.205, 0.196), tau_1_5=(0.22, 0.19, 0.19)))
    assert tau == 1.25 and adopted  # 1.5's mean (0.2000) is below 1.25's (0.2053)
    assert gains == pytest.approx({"0": 0.005, "1": 0.005, "2": 0.006})


def test_a_near_tie_goes_to_the_tau_nearest_1():
    tau, adopted, gains = cq.choose(scores(tau_1=(0.21, 0.20, 0.19), tau_1_25=(0.2125, 0.2015, 0.1905),
                                           tau_1_5=(0.213, 0.202, 0.192)))
    assert tau == 1.25 and not adopted  # 1.5 is 0.0008 better on the mean: within the tie; 1.25 gains too little
    assert gains == pytest.approx({"0": 0.0025, "1": 0.0015, "2": 0.0005})


def test_a_seed_that_loses_blocks_adoption_and_the_reference_can_win():
    tau, adopted, _ = cq.choose(scores(tau_1=(0.21, 0.20, 0.19), tau_1_5=(0.23, 0.21, 0.189)))
    assert tau == 1.5 and not adopted  # +0.0097 on the mean, but seed 2 loses
    tau, adopted, gains = cq.choose(scores(tau_0_75=(0.20, 0.19, 0.18), tau_1=(0.21, 0.20, 0.19)))
    assert tau == 1.0 and not adopted and gains == {"0": 0.0, "1": 0.0, "2": 0.0}


def test_missing_scores_and_a_non_val_file_are_refused(tmp_path):
    bad = scores(tau_1=(0.21, 0.20), tau_1_25=(0.22, 0.21))
    del bad["1"]["1.25"]
    with pytest.raises(ValueError, match="seed 1: taus"):
        cq.choose(bad)
    with pytest.raises(ValueError, match="reference tau 1.0 was not scored"):
        cq.choose(scores(tau_1_25=(0.22, 0.21)))
    f = tmp_path / "test.json"
    one = {"tiny": {"per_seed": scores(tau_1=(0.2,))}}
    f.write_text(json.dumps({"scored_on": "test (data seed 3000)", "configs": one}))
    with pytest.raises(SystemExit, match="scored_on must say val"):
        cq.main([str(f), "--config", "tiny"])
    f.write_text(json.dumps({"scored_on": "val", "configs": one}))
    with pytest.raises(SystemExit, match="no config 'tiny_lidar'"):
        cq.main([str(f), "--config", "tiny_lidar"])


def test_the_command_reads_one_config_of_the_file(tmp_path, capsys):
    f = tmp_path / "val.json"
    f.write_text(json.dumps({"scored_on": "val (data seed 2000)", "configs": {
        "tiny": {"per_seed": scores(tau_1=(0.21, 0.20), tau_1_25=(0.216, 0.205))},
        "tiny_lidar": {"per_seed": scores(tau_1=(0.21, 0.20), tau_1_25=(0.19, 0.18))}}}))
    cq.main([str(f), "--config", "tiny"])
    assert "tiny: model.head.occ.prior_correction=1.25: adopted" in capsys.readouterr().out
    cq.main([str(f), "--config", "tiny_lidar"])
    assert "tiny_lidar: model.head.occ.prior_correction=1: not adopted" in capsys.readouterr().out
