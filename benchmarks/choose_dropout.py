"""Apply the rule that chooses the modality dropout rates (docs/benchmarks.md, "Choosing the modality dropout
rates on val") to the val scores of ``learn_synthetic.py --choose`` runs, one per candidate.

Per condition S = mean(mAP, BEV mIoU, Occ3D mIoU) on val. Among the candidates whose all-sensor S is at least
``--keep`` (0.95) of the best all-sensor S, the one with the highest mean S over the degraded conditions wins.

    python benchmarks/choose_dropout.py outputs/choose_v2/0 outputs/choose_v2/A outputs/choose_v2/B
"""

import argparse
import json
import sys
from pathlib import Path

from learn_synthetic import DEGRADED as SCORED_CONDITIONS

FULL = "fusion"
# the rows of learn_synthetic.py that withhold a sensor (its "fusion, front region" row is the full model)
DEGRADED = tuple(name for name, (withhold, _) in SCORED_CONDITIONS.items() if withhold)


def score(record):
    """S of one scored condition: the mean of mAP, BEV mIoU and Occ3D mIoU (a missing task counts 0)."""
    return sum(record.get(k) or 0.0 for k in ("mAP", "bev_miou", "occ_miou")) / 3


def candidate_scores(run_dir, seed=0):
    """``{condition: S}`` of the run in ``run_dir`` (its summary.json must be scored on val)."""
    summary = json.loads((Path(run_dir) / "summary.json").read_text())
    if summary.get("scored_on") != "val":
        raise SystemExit(f"{run_dir}/summary.json is scored on {summary.get('scored_on')!r}: choose on val only")
    runs = summary["runs"]
    out = {}
    for cond in (FULL, *DEGRADED):
        rows = [r for r in runs.get(cond, []) if r.get("seed") == seed]
        if not rows:
            raise SystemExit(f"{run_dir}/summary.json has no row {cond!r} for seed {seed}")
        out[cond] = score(rows[0])
    return out


def degraded_mean(s):
    """The mean S over the conditions with a sensor withheld, from ``{condition: S}``."""
    return sum(s[c] for c in DEGRADED) / len(DEGRADED)


def choose(scores, keep=0.95):
    """The chosen candidate's name, from ``{name: {condition: S}}``."""
    best_full = max(s[FULL] for s in scores.values())
    eligible = {n: s for n, s in scores.items() if s[FULL] >= keep * best_full}
    return max(eligible, key=lambda n: degraded_mean(eligible[n]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="one learn_synthetic.py --choose output folder per candidate")
    p.add_argument("--keep", type=float, default=0.95, help="all-sensor S kept, as a fraction of the best")
    p.add_argument("--seed", type=int, default=0, help="the training seed whose val rows are compared")
    args = p.parse_args(argv)
    scores = {Path(r).name: candidate_scores(r, args.seed) for r in args.runs}
    print("| candidate | S all sensors | " + " | ".join(f"S {c}" for c in DEGRADED) + " | mean S degraded |")
    print("|---" * (len(DEGRADED) + 3) + "|")
    for name, s in scores.items():
        print(f"| {name} | {s[FULL]:.3f} | " + " | ".join(f"{s[c]:.3f}" for c in DEGRADED)
              + f" | {degraded_mean(s):.3f} |")
    print(f"\nchosen (all-sensor S >= {args.keep} x best, then the best mean degraded S): {choose(scores, args.keep)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
