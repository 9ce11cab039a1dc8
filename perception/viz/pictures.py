"""The picture files that ``perception show`` and ``perception demo`` write: a dataset sample (BEV and
cameras), the model's predictions on a validation sample, and a SurroundOcc own-data frame."""

import os
from dataclasses import replace

import numpy as np

from perception.data.lookup import find_sample
from perception.data.nuscenes_index import VERSION_SPLITS
from perception.data.surroundocc import load_surroundocc_frame
from perception.runtime import Predictor
from perception.viz import colors
from perception.viz.bev import BevLayers, layers_from_sample, render_bev
from perception.viz.cameras import render_cameras

# Boxes drawn from this score up: the predictor keeps boxes down to model.score_threshold (tiny: 0.01, for
# the AP's recall tail), far too many to read in a picture, and the refiner's rescoring (first ** 0.3 *
# quality ** 0.7 in tiny) lifts low scores (counts per threshold: docs/benchmarks.md, SHOW_MIN_SCORE).
SHOW_MIN_SCORE = 0.4


def render_sample(sample, out_dir):
    """``[out_dir/<token>_bev.png, out_dir/<token>_cameras.png]``: points, GT boxes, BEV map and occupancy
    GT from above, and the six cameras with the projected points and boxes."""
    os.makedirs(out_dir, exist_ok=True)
    points = sample.points  # loaded once, drawn in both pictures
    stem = os.path.join(out_dir, sample.token)
    return [render_bev(layers_from_sample(sample, points=points), f"{stem}_bev.png"),
            render_cameras(sample, f"{stem}_cameras.png", points=points)]


def shown_boxes(pred, min_score=SHOW_MIN_SCORE):
    """``(boxes, labels)`` of a :class:`perception.runtime.Prediction` scoring ``>= min_score`` (LiDAR frame)."""
    keep = pred.scores >= min_score
    return pred.boxes[keep], pred.labels[keep]


def render_prediction(config, checkpoint, dataroot, version, out_dir, sample=0, device="cpu", min_score=SHOW_MIN_SCORE):
    """Render the model's predictions on one validation sample; returns the PNG paths.

    ``sample``: token or position in the version's validation split (``VERSION_SPLITS``; default its first
    sample). Inference runs through :class:`perception.runtime.Predictor`. Writes into ``out_dir``:

    - ``<token>_pred_map.png``: BEV with the points, GT boxes (solid, class colours), predicted boxes (dashed)
      and the predicted BEV map (probability > 0.5);
    - ``<token>_pred_occ.png``: the same points and boxes over the predicted occupancy (top voxel per
      column; Occ3D grid only: other occupancy grids are not drawn);
    - ``<token>_pred_cameras.png``: the six cameras with projected points, GT and predicted boxes.

    Predicted boxes are drawn when they score ``>= min_score``.
    """
    # the devkit and perception.eval at call time: the ROS node imports perception.viz (its colours)
    from nuscenes.nuscenes import NuScenes

    from perception.eval.runner import load_split_samples, occupancy_protocol, split_sample_tokens

    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    split = VERSION_SPLITS[version][-1]
    tokens = split_sample_tokens(nusc, split)
    samples = load_split_samples(nusc, split, tokens, os.path.join(out_dir, "index"))
    s = find_sample(samples, sample)
    predictor = Predictor(config, checkpoint, device=device)
    pred = predictor.predict_sample(s)
    points = s.points
    gt = layers_from_sample(s, points=points)
    shown, shown_labels = shown_boxes(pred, min_score)
    boxes = dict(pred_boxes=shown, pred_labels=shown_labels)
    counts = f"{len(shown)} predicted boxes scoring >= {min_score:g} (dashed), {len(s.boxes)} GT boxes (solid)"
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, s.token)
    out = [render_bev(replace(gt, bev_map=pred.bev_probs, occ_semantics=None), f"{stem}_pred_map.png",
                      title=f"sample {s.token}\npredicted BEV map, {counts}", **boxes)]
    if pred.occ_labels is not None and occupancy_protocol(predictor.cfg) == "occ3d":
        out.append(render_bev(replace(gt, bev_map=None, occ_semantics=pred.occ_labels), f"{stem}_pred_occ.png",
                              title=f"sample {s.token}\npredicted occupancy (top voxel), {counts}", **boxes))
    out.append(render_cameras(s, f"{stem}_pred_cameras.png", points=points, **boxes))
    return out


def render_surroundocc_frame(folder, frame, out_dir):
    """Render SurroundOcc ``frame`` of ``folder`` to ``out_dir/surroundocc_<frame>_bev.png`` (points coloured
    by their semantic label, boxes in detection colours); returns the path."""
    points, semantic, boxes, labels = load_surroundocc_frame(folder, frame)
    layers = BevLayers(
        points=points,
        point_colors=np.asarray(colors.OCC3D_COLORS)[np.clip(semantic, 0, len(colors.OCC3D_COLORS) - 1)],
        boxes=boxes,
        labels=labels,
        title=f"SurroundOcc frame {frame}: points coloured by semantic label",
    )
    os.makedirs(out_dir, exist_ok=True)
    return render_bev(layers, os.path.join(out_dir, f"surroundocc_{int(frame)}_bev.png"))
