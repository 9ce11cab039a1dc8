"""3D detection: LiDAR-frame boxes -> official nuScenes submission JSON, scored by the devkit.

Model boxes (``docs/architecture.md``): ``(K, 9)`` rows ``x, y, z, l, w, h, yaw, vx, vy`` in the sample's
LiDAR frame (gravity centre, metres; yaw CCW about +z from LiDAR x; velocity m/s), ``scores (K,)``,
``labels (K,)`` indices into ``DETECTION_CLASSES``.

Submission boxes (nuScenes format, global frame): ``translation`` = box centre (m), ``size`` = [w, l, h],
``rotation`` = quaternion [w, x, y, z] of ``lidar2global_rotation @ Rz(yaw)``, ``velocity`` = [vx, vy] of
``lidar2global_rotation @ [vx, vy, 0]``, ``detection_name``, ``detection_score``, ``attribute_name`` by class and
speed (mmdet3d / BEVFusion convention, see :func:`default_attribute`).

The devkit's ``DetectionEval`` (``detection_cvpr_2019``) does all matching and metrics.
"""

import json
import os

import numpy as np
from nuscenes.eval.common.config import config_factory
from nuscenes.eval.common.data_classes import EvalBoxes
from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes, load_gt, load_prediction
from nuscenes.eval.detection.data_classes import DetectionBox
from nuscenes.eval.detection.evaluate import DetectionEval

from perception.constants import DETECTION_CLASSES
from perception.eval.region import keep_region_boxes
from perception.geometry import invert, quat_to_rotmat, rotmat_to_quat

MAX_BOXES_PER_SAMPLE = 500
MOVING_SPEED = 0.2  # m/s: above it a vehicle is "moving" / a cycle "with_rider" (mmdet3d convention)
VEHICLES = ("car", "construction_vehicle", "bus", "truck", "trailer")
# mmdet3d NuScenesDataset.DefaultAttribute
DEFAULT_ATTRIBUTE = {
    "car": "vehicle.parked",
    "pedestrian": "pedestrian.moving",
    "trailer": "vehicle.parked",
    "truck": "vehicle.parked",
    "bus": "vehicle.moving",
    "motorcycle": "cycle.without_rider",
    "construction_vehicle": "vehicle.parked",
    "bicycle": "cycle.without_rider",
    "barrier": "",
    "traffic_cone": "",
}


def default_attribute(name, speed):
    """Attribute for class ``name`` at ``speed`` (m/s), as mmdet3d's nuScenes result formatting."""
    if speed > MOVING_SPEED:
        if name in VEHICLES:
            return "vehicle.moving"
        if name in ("bicycle", "motorcycle"):
            return "cycle.with_rider"
        return DEFAULT_ATTRIBUTE[name]
    if name == "pedestrian":
        return "pedestrian.standing"
    if name == "bus":
        return "vehicle.stopped"
    return DEFAULT_ATTRIBUTE[name]


def _rotz(yaw):
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def lidar_boxes_to_submission(sample_token, boxes, scores, labels, lidar2global):
    """Convert one sample's model boxes to a list of submission box dicts (global frame).

    ``boxes`` (K, 9) LiDAR frame (see module doc), ``scores`` (K,), ``labels`` (K,) int;
    ``lidar2global`` 4x4 (= ego2global @ lidar2ego at the LiDAR timestamp).
    Raises ``ValueError`` naming the sample for non-finite values, bad labels or more than 500 boxes.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 9)
    scores = np.asarray(scores, np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(f"sample {sample_token}: boxes/scores/labels lengths differ "
                         f"({len(boxes)}, {len(scores)}, {len(labels)})")
    if len(boxes) > MAX_BOXES_PER_SAMPLE:
        raise ValueError(f"sample {sample_token}: {len(boxes)} boxes, at most {MAX_BOXES_PER_SAMPLE} allowed")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"sample {sample_token}: boxes or scores contain NaN/inf")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(DETECTION_CLASSES)):
        raise ValueError(f"sample {sample_token}: labels must lie in [0, {len(DETECTION_CLASSES)})")
    T = np.asarray(lidar2global, np.float64)
    R = T[:3, :3]
    centres = boxes[:, :3] @ R.T + T[:3, 3]
    out = []
    for box, centre, score, label in zip(boxes, centres, scores, labels, strict=True):
        name = DETECTION_CLASSES[int(label)]
        velocity = R @ np.array([box[7], box[8], 0.0])
        out.append({
            "sample_token": sample_token,
            "translation": [float(v) for v in centre],
            "size": [float(box[4]), float(box[3]), float(box[5])],  # nuScenes order: w, l, h
            "rotation": [float(v) for v in rotmat_to_quat(R @ _rotz(box[6]))],
            "velocity": [float(velocity[0]), float(velocity[1])],
            "detection_name": name,
            "detection_score": float(score),
            "attribute_name": default_attribute(name, float(np.hypot(box[7], box[8]))),
        })
    return out


def global_boxes_to_lidar(translations, sizes, rotations, velocities, lidar2global):
    """Inverse of :func:`lidar_boxes_to_submission` for the geometry: nuScenes global boxes -> (M, 9) LiDAR.

    ``translations`` (M, 3) m, ``sizes`` (M, 3) [w, l, h], ``rotations`` (M, 4) [w, x, y, z], ``velocities``
    (M, 2) global m/s (NaN allowed: stays NaN). Yaw is the heading of the box x axis in the LiDAR frame.
    """
    T = invert(np.asarray(lidar2global, np.float64))
    R = T[:3, :3]
    out = np.zeros((len(translations), 9), np.float64)
    for i, (t, s, q, v) in enumerate(zip(translations, sizes, rotations, velocities, strict=True)):
        out[i, :3] = R @ np.asarray(t, np.float64) + T[:3, 3]
        out[i, 3:6] = [s[1], s[0], s[2]]
        heading = R @ quat_to_rotmat(q)[:, 0]
        out[i, 6] = np.arctan2(heading[1], heading[0])
        out[i, 7:9] = (R @ np.array([v[0], v[1], 0.0]))[:2]
    return out


def make_submission(results, meta=None):
    """The submission dict: ``{'meta': ..., 'results': {sample_token: [box dicts]}}``.

    ``meta`` defaults to a camera + LiDAR entry (``use_camera``/``use_lidar`` True, others False).
    """
    meta = dict(meta or {"use_camera": True, "use_lidar": True, "use_radar": False, "use_map": False,
                         "use_external": False})
    return {"meta": meta, "results": results}


def write_submission(path, submission):
    """Write the submission JSON (creates the folder); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(submission, f)
    return path


def _custom_eval(nusc, config, result_path, eval_set, output_dir, partial):
    """A ``DetectionEval`` built step by step where the devkit's constructor cannot be used.

    Same steps as ``DetectionEval.__init__`` (devkit loaders, centre distances, range filters) except:
    with ``partial`` (``--allow-partial``) the GT is restricted to the samples present in the results (no
    equality assertion between split and results); a submission without any box is not range-filtered (the
    devkit's filter cannot tell its box type and raises), so every class scores AP 0 and TP errors 1 as the
    devkit's matching gives for no predictions. Matching/metrics stay the devkit's.
    """
    ev = DetectionEval.__new__(DetectionEval)
    ev.nusc, ev.result_path, ev.eval_set, ev.output_dir, ev.verbose, ev.cfg = (
        nusc, result_path, eval_set, output_dir, False, config)
    ev.plot_dir = os.path.join(output_dir, "plots")
    os.makedirs(ev.plot_dir, exist_ok=True)
    ev.pred_boxes, ev.meta = load_prediction(result_path, config.max_boxes_per_sample, DetectionBox)
    gt = load_gt(nusc, eval_set, DetectionBox)
    if partial:
        all_gt, gt = gt, EvalBoxes()
        for token in ev.pred_boxes.sample_tokens:
            gt.add_boxes(token, all_gt[token])
    elif set(gt.sample_tokens) != set(ev.pred_boxes.sample_tokens):
        raise ValueError(f"{result_path}: samples differ from split {eval_set!r} (pass partial=True)")
    ev.pred_boxes = add_center_dist(nusc, ev.pred_boxes)
    if any(ev.pred_boxes.boxes.values()):
        ev.pred_boxes = filter_eval_boxes(nusc, ev.pred_boxes, config.class_range)
    ev.gt_boxes = filter_eval_boxes(nusc, add_center_dist(nusc, gt), config.class_range)
    ev.sample_tokens = ev.gt_boxes.sample_tokens
    return ev


def evaluate_detection(nusc, result_path, eval_set, output_dir, partial=False, region="all"):
    """Score a submission JSON with the devkit's ``DetectionEval`` (``detection_cvpr_2019``); with ``region``
    other than 'all', on the GT and predicted boxes inside it only (:mod:`perception.eval.region`).

    Returns ``(summary, metric_data_list)``: ``summary`` has ``mAP``, ``NDS``, ``mATE``, ``mASE``, ``mAOE``,
    ``mAVE``, ``mAAE``, ``per_class`` {class: {AP, AP@0.5, AP@1.0, AP@2.0, AP@4.0, ATE, ASE, AOE, AVE,
    AAE}}; ``metric_data_list`` is the devkit's ``DetectionMetricDataList`` (PR curves). Also writes the
    devkit's ``metrics_summary.json`` and ``metrics_details.json`` into ``output_dir``.
    """
    config = config_factory("detection_cvpr_2019")
    with open(result_path) as f:
        empty = not any(json.load(f)["results"].values())
    if partial or empty or region != "all":
        ev = _custom_eval(nusc, config, result_path, eval_set, output_dir, partial)
        keep_region_boxes(nusc, ev.pred_boxes, region)
        keep_region_boxes(nusc, ev.gt_boxes, region)
    else:
        ev = DetectionEval(nusc, config, result_path, eval_set, output_dir, verbose=False)
    metrics, metric_data_list = ev.evaluate()
    s = metrics.serialize()
    # the devkit's own output files, as DetectionEval.main writes them
    with open(os.path.join(output_dir, "metrics_summary.json"), "w") as f:
        json.dump({**s, "meta": dict(ev.meta)}, f, indent=2)
    with open(os.path.join(output_dir, "metrics_details.json"), "w") as f:
        json.dump(metric_data_list.serialize(), f, indent=2)
    tp_names = {"trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE", "attr_err": "AAE"}
    per_class = {}
    for name in DETECTION_CLASSES:
        row = {"AP": float(s["mean_dist_aps"][name])}
        for th, ap in s["label_aps"][name].items():
            row[f"AP@{float(th)}"] = float(ap)
        for key, short in tp_names.items():
            row[short] = float(s["label_tp_errors"][name][key])
        per_class[name] = row
    summary = {"mAP": float(s["mean_ap"]), "NDS": float(s["nd_score"])}
    for key, short in tp_names.items():
        summary["m" + short] = float(s["tp_errors"][key])
    summary["per_class"] = per_class
    return summary, metric_data_list
