"""Judge the v2 learning targets (docs/benchmarks.md, "v2 targets"; issue 17) on a ``learn_synthetic.py``
summary scored on the test set, so that the "met / not met" column is computed, not written by hand.

Every number is a mean over the training seeds of a row; "its seed std" is the sample std over the same seeds.
The prior's row may come from another summary of the same test set (``--prior``: the prior needs no training,
so a retraining run skips it with ``--no-prior``).

    python benchmarks/learn_targets.py outputs/learn_v2_bf16/summary.json --prior outputs/learn_v2_final/summary.json
"""

import argparse
import json
import sys
from pathlib import Path

from learn_synthetic import mean_std

PRIOR, FUSION, LIDAR, CAMERA = "no-input prior", "fusion", "LiDAR only", "camera only"
CALIBRATED_PRIOR = "no-input prior, calibrated on val"  # its BEV raster with per-class offsets (candidate J)
NO_LIDAR, FRONT, FRONT3 = "fusion, no LiDAR", "fusion, front region", "fusion, front 3 cameras, front region"


def stats(runs, row, key):
    """(mean, sample std) of ``key`` over the seeds of ``row``."""
    m, s = mean_std([r.get(key) for r in runs.get(row, [])])
    if m is None:
        raise SystemExit(f"summary has no {key!r} for row {row!r}")
    return m, s


PRIOR_MARGINS = {"bev_miou": ("BEV mIoU", 0.15), "occ_miou": ("Occ3D mIoU", 0.10)}  # fusion over the prior


def over_prior(runs, key, prior_row=PRIOR):
    """(target, measured, met): fusion's ``key`` at least :data:`PRIOR_MARGINS` above the no-input ``prior_row``."""
    label, margin = PRIOR_MARGINS[key]
    prior = stats(runs, prior_row, key)[0]
    m, s = stats(runs, FUSION, key)
    return (f"fusion {label} >= prior + {margin:.2f} = {prior + margin:.3f}",
            f"{m:.3f} ± {s:.3f} (prior {m - prior:+.3f})", m >= prior + margin)


def camera_over_prior(runs, prior_row=PRIOR):
    """(target, measured, met): camera-only BEV mIoU minus its seed std at least 0.05 above ``prior_row``'s."""
    prior = stats(runs, prior_row, "bev_miou")[0]
    cm, cs = stats(runs, CAMERA, "bev_miou")
    return (f"camera-only BEV mIoU minus its std >= prior + 0.05 = {prior + 0.05:.3f}",
            f"{cm:.3f} - {cs:.3f} = {cm - cs:.3f}", cm - cs >= prior + 0.05)


def judge(runs):
    """[(target, measured, met)] for the eight v2 targets, from ``{row: [per-seed record]}``."""
    def mean(row, key):
        return stats(runs, row, key)[0]

    out = [over_prior(runs, "bev_miou"), over_prior(runs, "occ_miou")]
    for key, label in (("mAP", "mAP"), ("car_ap", "car AP"), ("occ_miou", "Occ3D mIoU")):
        lm, ls = stats(runs, LIDAR, key)
        fm, fs = stats(runs, FUSION, key)
        out.append((f"fusion {label} > LiDAR-only mean + its seed std = {lm + ls:.3f}",
                    f"{fm:.3f} ± {fs:.3f} against {lm:.3f} ± {ls:.3f} (margin {fm - lm:+.3f})", fm > lm + ls))
    out.append(camera_over_prior(runs))
    ratios = {k: mean(NO_LIDAR, k) / mean(CAMERA, k) for k in ("bev_miou", "occ_miou")}
    out.append(("fusion without LiDAR >= 80 % of camera-only (BEV, Occ3D)",
                f"BEV {mean(NO_LIDAR, 'bev_miou'):.3f} against {mean(CAMERA, 'bev_miou'):.3f} "
                f"({100 * ratios['bev_miou']:.0f} %); Occ3D {mean(NO_LIDAR, 'occ_miou'):.3f} against "
                f"{mean(CAMERA, 'occ_miou'):.3f} ({100 * ratios['occ_miou']:.0f} %)", min(ratios.values()) >= 0.8))
    front = {k: mean(FRONT3, k) / mean(FRONT, k) for k in ("mAP", "bev_miou", "occ_miou")}
    out.append(("three front cameras >= 90 % of full fusion, front region",
                "mAP {:.0f} %, BEV {:.0f} %, Occ3D {:.0f} %".format(*(100 * v for v in front.values())),
                min(front.values()) >= 0.9))
    return out


def print_table(judged):
    print("| target | measured (mean over seeds) | status |\n|---|---|---|")
    for target, measured, met in judged:
        print(f"| {target} | {measured} | {'met' if met else '**not met**'} |")


def load_runs(path, prior_path=None):
    """The runs of the summary at ``path`` (it must be scored on test), with the prior's row from ``prior_path``."""
    summaries = [(p, json.loads(Path(p).read_text())) for p in (path, prior_path) if p]
    for p, s in summaries:
        if s.get("scored_on") != "test":
            raise SystemExit(f"{p} is scored on {s.get('scored_on')!r}: the targets are judged on the test set")
    runs = dict(summaries[0][1]["runs"])
    if prior_path:
        for row in (PRIOR, CALIBRATED_PRIOR):
            runs[row] = summaries[1][1]["runs"].get(row, [])
    return runs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summary", help="learn_synthetic.py OUT/summary.json, scored on test")
    p.add_argument("--prior", help="another summary.json of the same test set holding the no-input prior's row")
    args = p.parse_args(argv)
    runs = load_runs(args.summary, args.prior)
    seeds = {row: sorted(r["seed"] for r in runs.get(row, [])) for row in (FUSION, LIDAR, CAMERA)}
    print_table(judge(runs))
    if runs.get(CALIBRATED_PRIOR):  # the BEV targets once more, against the stronger, calibrated prior (candidate J)
        print(f"\nAgainst the {CALIBRATED_PRIOR} (BEV only; the Occ3D prior is unchanged):")
        print_table([over_prior(runs, "bev_miou", CALIBRATED_PRIOR), camera_over_prior(runs, CALIBRATED_PRIOR)])
    print(f"\nseeds per model: {seeds}")
    if min(len(v) for v in seeds.values()) < 3:
        print("fewer than 3 training seeds in a model's row: a pilot, not a result (the protocol asks >= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
