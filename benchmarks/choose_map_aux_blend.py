"""Choose ``model.head.map.aux_blend`` per map class on VAL from scored runs (candidate O, docs/benchmarks.md).

Input: a JSON whose ``per_seed[seed][w]['bev_per_class']`` holds each map class's val IoU for the models scored
with ``model.head.map.aux_blend = w`` (one weight for every class), e.g.
``benchmarks/results/choose_map_aux_blend_val.json`` (candidate N's runs). A class's IoU depends on its own
weight only (the map memory and the BEVFusion thresholds act per class), so the per-class choice composes:

- per class, the weight with the best IoU averaged over the seeds; weights within ``--tie`` of the best go to
  the one closest to 0 (the query head alone, as shipped before): candidate J's rule, its own function
  (``choose_map_offsets.choose``);
- printed: the chosen vector (``BEV_MAP_CLASSES`` order), and per seed the mIoU it composes to against w = 0.

    python benchmarks/choose_map_aux_blend.py benchmarks/results/choose_map_aux_blend_val.json
"""

import argparse
import json

from choose_map_offsets import choose as closest_to_0_within  # benchmarks/ is on sys.path when run as a script

from perception.constants import BEV_MAP_CLASSES


def choose(per_seed, tie=0.001):
    """``per_seed {seed: {w: {'bev_per_class': {class: IoU}}}}`` -> (weights tuple, {seed: (mIoU at w=0, mIoU
    chosen)}). Weights are the keys' floats; every seed must hold every weight."""
    seeds = sorted(per_seed)
    weights = sorted({float(w) for w in per_seed[seeds[0]]})
    keys = {float(w): w for w in per_seed[seeds[0]]}
    for s in seeds:
        if sorted(float(w) for w in per_seed[s]) != weights:
            raise ValueError(f"seed {s}: weights {sorted(per_seed[s])}, seed {seeds[0]} has {weights}")
    curves = {s: {w: per_seed[s][keys[w]]["bev_per_class"] for w in weights} for s in seeds}  # {seed: {w: {c: IoU}}}
    chosen = closest_to_0_within(list(curves.values()), weights, tie)

    def miou(curve, per_class):
        return sum(curve[w][c] for w, c in zip(per_class, BEV_MAP_CLASSES, strict=True)) / len(BEV_MAP_CLASSES)

    per = {s: (miou(c, [0.0] * len(BEV_MAP_CLASSES)), miou(c, chosen)) for s, c in curves.items()}
    return tuple(chosen), per


def load_val_scores(path):
    """The JSON at ``path``; refused unless its ``scored_on`` says val (a choice is never made on test)."""
    with open(path) as f:
        data = json.load(f)
    if "val" not in str(data.get("scored_on", "")):
        raise SystemExit(f"{path}: scored_on must say val (choosing on another set is refused)")
    return data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scores", help="JSON with per_seed[seed][w]['bev_per_class'] (val)")
    ap.add_argument("--tie", type=float, default=0.001, help="IoU within which the weight closest to 0 wins")
    args = ap.parse_args(argv)
    chosen, per = choose(load_val_scores(args.scores)["per_seed"], args.tie)
    print("model.head.map.aux_blend=" + repr(chosen).replace(" ", ""))
    for s, (base, got) in per.items():
        print(f"seed {s}: BEV mIoU {base:.4f} -> {got:.4f} ({got - base:+.4f})")
    gain = sum(g - b for b, g in per.values()) / len(per)
    print(f"mean gain {gain:+.4f}")


if __name__ == "__main__":
    main()
