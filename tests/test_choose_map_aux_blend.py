"""The per-class choice of ``model.head.map.aux_blend`` on val (benchmarks/choose_map_aux_blend.py), on made-up
per-class IoUs: the best weight per class by the mean over seeds, near-ties to the weight closest to 0, and the
mIoU the chosen vector composes to."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import choose_map_aux_blend as cb  # noqa: E402

from perception.constants import BEV_MAP_CLASSES  # noqa: E402

# per weight, each class's IoU on seed 0; seed 1 adds `shift` to every value of weight 1
BASE = {"0": (0.70, 0.10, 0.40, 0.05, 0.30, 0.28), "0.5": (0.72, 0.15, 0.4005, 0.05, 0.25, 0.29),
        "1": (0.69, 0.20, 0.39, 0.04, 0.20, 0.2905)}


def per_seed(shift=0.0):
    out = {}
    for s in ("0", "1"):
        out[s] = {w: {"bev_per_class": {c: v + (shift if (s == "1" and w == "1") else 0.0)
                                        for c, v in zip(BEV_MAP_CLASSES, vals, strict=True)}}
                  for w, vals in BASE.items()}
    return out


def test_best_per_class_and_near_ties_to_the_weight_closest_to_0():
    chosen, per = cb.choose(per_seed())
    # drivable 0.5 (best); crossing 1; walkway 0 (0.5 is only 0.0005 better); stop line 0 (tie);
    # car park 0; divider 0.5 (1 is only 0.0005 better)
    assert chosen == (0.5, 1.0, 0.0, 0.0, 0.0, 0.5)
    base, got = per["0"]
    assert base == pytest.approx(sum(BASE["0"]) / 6)
    assert got == pytest.approx((0.72 + 0.20 + 0.40 + 0.05 + 0.30 + 0.29) / 6)


def test_the_mean_over_seeds_decides():
    chosen, _ = cb.choose(per_seed(shift=-0.2))  # weight 1 bad on seed 1: crossing's mean at 1 is 0.10 < 0.15
    assert chosen[1] == 0.5


def test_a_seed_missing_a_weight_and_a_non_val_file_are_refused(tmp_path):
    scores = per_seed()
    del scores["1"]["0.5"]
    with pytest.raises(ValueError, match="seed 1: weights"):
        cb.choose(scores)
    f = tmp_path / "test.json"
    f.write_text(json.dumps({"scored_on": "test (data seed 3000)", "per_seed": per_seed()}))
    with pytest.raises(SystemExit, match="scored_on must say val"):
        cb.main([str(f)])
