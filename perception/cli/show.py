"""``perception show``: render one sample as a BEV picture and a six-camera sheet.

    perception show SAMPLE_OR_INDEX --out DIR (--info FILE | --dataroot D --version V) [--num-sweeps N]
    perception show --surroundocc DIR FRAME --out DIR

SAMPLE_OR_INDEX is a sample token or an integer position in the info/index file. Writes
``DIR/<token>_bev.png`` and ``DIR/<token>_cameras.png`` and prints their paths. With ``--surroundocc`` (the
``tools/generate_occupancy_with_own_data`` folder of SurroundOcc: LiDAR, per-point semantics and boxes, no
cameras) only ``DIR/surroundocc_<FRAME>_bev.png`` is written, points coloured by their semantic label.
"""

import os
from dataclasses import replace


def add_parser(subparsers):
    p = subparsers.add_parser("show", help="render a sample (BEV + cameras) to PNG files", description=__doc__)
    p.add_argument("sample", metavar="SAMPLE_OR_INDEX", help="sample token, integer position, or FRAME with --surroundocc")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--info", help="info/index pickle (perception index or mmdet3d info file)")
    p.add_argument("--dataroot", help="nuScenes dataroot (sensor paths resolve against it)")
    p.add_argument("--version", help="nuScenes version (with --dataroot and no --info), e.g. v1.0-mini")
    p.add_argument("--num-sweeps", type=int, default=10, help="LiDAR sweeps merged into the picture (default 10)")
    p.add_argument("--surroundocc", metavar="DIR", help="SurroundOcc own-data folder; SAMPLE_OR_INDEX is the frame number")
    p.set_defaults(func=run)


def run(args):
    os.makedirs(args.out, exist_ok=True)
    if args.surroundocc:
        print(render_surroundocc_frame(args.surroundocc, args.sample, args.out))
        return 0
    sample = _find_sample(_load_samples(args), args.sample)
    from perception.viz import layers_from_sample, render_bev, render_cameras

    points = sample.points  # loaded once, drawn in both pictures
    bev = render_bev(layers_from_sample(sample, points=points), os.path.join(args.out, f"{sample.token}_bev.png"))
    cams = render_cameras(sample, os.path.join(args.out, f"{sample.token}_cameras.png"), points=points)
    print(bev)
    print(cams)
    return 0


def _load_samples(args):
    """Samples of ``--info`` or of an index built on the fly from ``--dataroot --version``."""
    from perception.data.info_file import load_info_file

    if args.info:
        return load_info_file(args.info, data_root=args.dataroot, num_sweeps=args.num_sweeps)
    if not (args.dataroot and args.version):
        raise ValueError("perception show: give --info FILE, or --dataroot D and --version V")
    import tempfile

    from perception.data.nuscenes_index import build_index

    with tempfile.TemporaryDirectory() as tmp:
        index = os.path.join(tmp, "index.pkl")
        build_index(args.dataroot, args.version, index, num_sweeps=args.num_sweeps, progress=False)
        return load_info_file(index, data_root=args.dataroot, num_sweeps=args.num_sweeps)


def _find_sample(samples, key):
    """The sample whose token is ``key``, else position ``int(key)``; ValueError naming the key otherwise."""
    for s in samples:
        if s.token == key:
            return s
    if key.lstrip("-").isdigit() and -len(samples) <= int(key) < len(samples):
        return samples[int(key)]
    raise ValueError(f"perception show: no sample with token or position {key!r} among {len(samples)} samples")


# Boxes drawn from this score up: the predictor keeps boxes down to model.score_threshold (tiny: 0.01, for
# the AP's recall tail), far too many to read in a picture. The refiner's rescoring (first ** 0.3 *
# quality ** 0.7 in tiny) lifts low scores: on a val sample with 39 GT boxes run11's model has 85 boxes
# >= 0.2, 68 >= 0.3, 37 >= 0.4.
SHOW_MIN_SCORE = 0.4


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
    from nuscenes.nuscenes import NuScenes

    from perception.data.nuscenes_index import VERSION_SPLITS
    from perception.eval.runner import load_split_samples, occupancy_protocol, split_sample_tokens
    from perception.runtime import Predictor
    from perception.viz import layers_from_sample, render_bev, render_cameras

    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    split = VERSION_SPLITS[version][-1]
    tokens = split_sample_tokens(nusc, split)
    samples = load_split_samples(nusc, split, tokens, os.path.join(out_dir, "index"))
    s = _find_sample(samples, str(sample))
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


def load_surroundocc_frame(folder, frame):
    """One SurroundOcc own-data frame as project arrays (LiDAR frame).

    Returns ``points (N, 4)`` x, y, z, intensity; ``semantic (N,)`` int labels 0..16 (Occ3D class ids);
    ``boxes (M, 7)`` project convention (converted from SurroundOcc's bottom-centre ``dx, dy`` boxes by
    ``convert_boxes``); ``labels (M,)`` index into ``DETECTION_CLASSES`` (-1 for non-detection classes).
    """
    import numpy as np

    from perception.constants import DETECTION_CLASSES, OCC3D_CLASSES
    from perception.data.boxes import convert_boxes

    def need(path):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"SurroundOcc frame {frame}: file not found: {path}")
        return np.load(path)

    frame = int(frame)
    points = need(os.path.join(folder, "pc", f"pc{frame}.npy")).astype(np.float32)
    seman = need(os.path.join(folder, "pc_seman", f"pc_seman_{frame}.npy"))
    if len(seman) != len(points):
        raise ValueError(f"SurroundOcc frame {frame}: pc has {len(points)} points but pc_seman {len(seman)}")
    boxes = convert_boxes(need(os.path.join(folder, "bbox", f"bbox{frame}.npy")), "surroundocc", "lidar")
    category = need(os.path.join(folder, "bbox", f"object_category{frame}.npy"))
    # Occ3D class id -> detection class index by name ("others" and stuff classes -> -1).
    to_det = np.array([DETECTION_CLASSES.index(n) if n in DETECTION_CLASSES else -1 for n in OCC3D_CLASSES])
    return points, seman[:, 3].astype(np.int64), boxes.astype(np.float32), to_det[category]


def render_surroundocc_frame(folder, frame, out_dir):
    """Render SurroundOcc ``frame`` of ``folder`` to ``out_dir/surroundocc_<frame>_bev.png``; returns the path."""
    import numpy as np

    from perception.viz import colors
    from perception.viz.bev import BevLayers, render_bev

    points, semantic, boxes, labels = load_surroundocc_frame(folder, frame)
    layers = BevLayers(
        points=points,
        point_colors=np.asarray(colors.OCC3D_COLORS)[np.clip(semantic, 0, len(colors.OCC3D_COLORS) - 1)],
        boxes=boxes,
        labels=labels,
        title=f"SurroundOcc frame {frame}: points coloured by semantic label",
    )
    return render_bev(layers, os.path.join(out_dir, f"surroundocc_{int(frame)}_bev.png"))
