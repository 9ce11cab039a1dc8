"""Per-class logit offsets of the BEV map on frames with LiDAR: a calibration chosen on val.

Why. The map head is trained with focal + Dice losses and its map is then averaged over past frames (the map
memory): both can pull the probabilities towards the middle, so that a class scores its best IoU below the
thresholds the BEVFusion protocol tries (0.35 to 0.65) and a user thresholding the map at 0.5 gets too little of
it. ``model.map_logit_offsets`` = ``(b_1, ..., b_6)`` (logits, in ``BEV_MAP_CLASSES`` order) shifts each class:
``p' = sigmoid(logit(p) + b_k)``, monotone per class, so it moves the operating point and nothing else (a cell's
order among the cells of its class is kept). On the learning benchmark the fusion models' val gained nothing
from it, so ``tiny`` leaves it off; the no-input prior's raster gains much (docs/benchmarks.md, candidate J).

When. The last step of a frame that ran this model with LiDAR (after the map memory; the offsets are chosen on
the remembered map of full frames, ``benchmarks/choose_map_offsets.py``). A frame without LiDAR keeps its map as
it is: its map comes from other steps (the camera map blend) and was chosen without offsets; a fallback model's
map is that model's.
"""

import numpy as np

_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] before the logit (0 and 1 have none)


def offset_map(probs, offsets):
    """``probs (6, NX, NY)`` in [0, 1], ``offsets`` 6 logits -> ``(6, NX, NY)`` float32 ``sigmoid(logit(p) + b)``;
    a class with offset 0 is returned as it is (bit for bit)."""
    probs = np.asarray(probs, np.float32)
    offsets = np.asarray(offsets, np.float64)
    if offsets.shape != (probs.shape[0],):
        raise ValueError(f"map offsets: {probs.shape[0]} classes in the map, {offsets.shape} offsets")
    out = probs.copy()
    for k in np.flatnonzero(offsets):
        p = np.clip(probs[k].astype(np.float64), _EPS, 1.0 - _EPS)
        out[k] = 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p) + offsets[k])))
    return out
