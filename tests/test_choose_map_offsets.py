"""benchmarks/choose_map_offsets.py: its rule (per class, the offset closest to 0 within the tolerance of the best
mean IoU over the models) on made-up curves, and that it refuses the benchmark's test set."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import choose_map_offsets as cmo  # noqa: E402
from decode_sweep import TEST_MARKER  # noqa: E402

from perception.constants import BEV_MAP_CLASSES  # noqa: E402

OFFSETS = [-1.0, -0.5, 0.0, 0.5, 1.0]


def curve(per_offset):
    """``{b: {class: IoU}}``: the first class follows ``per_offset``, the others are flat (best at every b)."""
    first = dict(zip(OFFSETS, per_offset, strict=True))
    return {b: {n: (first[b] if i == 0 else 0.3) for i, n in enumerate(BEV_MAP_CLASSES)} for b in OFFSETS}


def test_the_closest_offset_to_zero_within_the_tolerance_of_the_best_mean():
    # model A peaks at +1, model B at +0.5: the mean peaks at +1 (0.25), +0.5 is within 0.001 of it (0.2495)
    a, b = curve([0.1, 0.15, 0.2, 0.249, 0.26]), curve([0.1, 0.15, 0.2, 0.25, 0.24])
    chosen = cmo.choose([a, b], OFFSETS, tolerance=0.001)
    assert chosen[0] == 0.5 and chosen[1:] == [0.0] * (len(BEV_MAP_CLASSES) - 1)  # flat classes: no offset
    assert cmo.choose([a, b], OFFSETS, tolerance=0.0)[0] == 1.0
    assert cmo.choose([curve([0.3, 0.2, 0.1, 0.1, 0.1])], OFFSETS, tolerance=0.001)[0] == -1.0


def test_the_test_set_is_refused(tmp_path):
    (tmp_path / TEST_MARKER).write_text("")
    with pytest.raises(SystemExit, match="test set"):
        cmo.main(["configs/tiny.py", "x.pth", "--dataroot", str(tmp_path), "--out", str(tmp_path / "out")])
