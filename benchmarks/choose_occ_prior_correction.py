"""Choose the occupancy's prior correction ``model.head.occ.prior_correction`` (tau) on VAL from scored runs
(candidate Q, docs/benchmarks.md).

Input: a JSON whose ``configs[name]['per_seed'][seed][tau]['occ_miou']`` holds the val Occ3D mIoU of config
``name``'s models scored with that tau (all sensors, as shipped), e.g.
``benchmarks/results/choose_occ_prior_correction_val.json``. The rule, written before the runs:

- the tau with the best mean over the seeds; a tau within ``--tie`` (0.002) of the best goes to the one nearest
  the reference (1: Bayes' rule for the sampler's changed class prior);
- adopted only when it beats the reference on every seed and by at least ``--bar`` (0.003) on the mean.

    python benchmarks/choose_occ_prior_correction.py benchmarks/results/choose_occ_prior_correction_val.json \
        --config tiny
"""

import argparse

from choose_map_aux_blend import load_val_scores  # benchmarks/ is on sys.path when run as a script


def choose(per_seed, reference=1.0, tie=0.002, bar=0.003):
    """``per_seed {seed: {tau: {'occ_miou': float}}}`` -> (tau, adopted, {seed: gain over the reference}).
    Taus are the keys' floats; every seed must hold every tau, the reference among them."""
    seeds = sorted(per_seed)
    taus = sorted({float(t) for t in per_seed[seeds[0]]})
    for s in seeds:
        if sorted(float(t) for t in per_seed[s]) != taus:
            raise ValueError(f"seed {s}: taus {sorted(per_seed[s])}, seed {seeds[0]} has {taus}")
    if reference not in taus:
        raise ValueError(f"the reference tau {reference} was not scored (taus {taus})")
    score = {s: {float(t): v["occ_miou"] for t, v in per_seed[s].items()} for s in seeds}  # {seed: {tau: mIoU}}
    mean = {t: sum(score[s][t] for s in seeds) / len(seeds) for t in taus}
    best = max(mean.values())
    tau = min((t for t in taus if mean[t] >= best - tie), key=lambda t: (abs(t - reference), t))
    gains = {s: score[s][tau] - score[s][reference] for s in seeds}
    adopted = tau != reference and all(g > 0 for g in gains.values()) and sum(gains.values()) / len(seeds) >= bar
    return tau, adopted, gains


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scores", help="JSON with configs[name]['per_seed'][seed][tau]['occ_miou'] (val)")
    ap.add_argument("--config", required=True, help="which config's models (a key of the file's configs)")
    ap.add_argument("--tie", type=float, default=0.002, help="mIoU within which the tau nearest 1 wins")
    ap.add_argument("--bar", type=float, default=0.003, help="mean gain over tau = 1 needed to adopt")
    args = ap.parse_args(argv)
    data = load_val_scores(args.scores)
    if args.config not in data.get("configs", {}):
        raise SystemExit(f"{args.scores}: no config {args.config!r} (has {sorted(data.get('configs', {}))})")
    tau, adopted, gains = choose(data["configs"][args.config]["per_seed"], tie=args.tie, bar=args.bar)
    print(f"{args.config}: model.head.occ.prior_correction={tau:g}: {'adopted' if adopted else 'not adopted'}")
    for s, g in gains.items():
        print(f"seed {s}: val Occ3D mIoU {g:+.4f} over tau = 1")
    print(f"mean gain {sum(gains.values()) / len(gains):+.4f}")


if __name__ == "__main__":
    main()
