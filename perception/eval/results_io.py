"""Saved prediction formats and their validation (all checks run BEFORE any scoring).

Detections: the official nuScenes submission JSON (global frame)::

    {"meta": {"use_camera": bool, "use_lidar": bool, "use_radar": bool, "use_map": bool, "use_external": bool},
     "results": {sample_token: [{"sample_token", "translation" [x, y, z] m, "size" [w, l, h] m,
                                 "rotation" [w, x, y, z], "velocity" [vx, vy] m/s, "detection_name",
                                 "detection_score", "attribute_name"}, ...]}}

at most 500 boxes per sample, every sample of the split present (an empty list for no detections).

Dense predictions: one compressed ``.npz`` per sample token in a folder (``<folder>/<sample_token>.npz``,
written with ``np.savez_compressed``):

- BEV map: key ``bev_probs``, float16 ``(6, 200, 200)``, probabilities in [0, 1], ``BEV_MAP_CLASSES`` on
  ``BEV_MAP_GRID`` (LiDAR frame, indexed ``[class, ix, iy]``).
- Occupancy: key ``occ_labels``, uint8 ``(200, 200, 16)``, Occ3D labels 0-17 (17 free) on ``OCC3D_GRID``
  (ego frame, ``[ix, iy, iz]``); scored with ``--openocc-root``: uint8 ``(512, 512, 40)``, OpenOccupancy
  labels 0-16 (0 empty) on ``OPENOCC_GRID`` (LiDAR frame, ``[ix, iy, iz]``).
"""

import json
import math
import os

import numpy as np

from perception.constants import DETECTION_CLASSES, OPENOCC_CLASSES, OPENOCC_GRID
from perception.eval.bev_iou import check_bev
from perception.eval.detection import MAX_BOXES_PER_SAMPLE
from perception.eval.occ_miou import check_volume

META_KEYS = ("use_camera", "use_lidar", "use_radar", "use_map", "use_external")
ATTRIBUTES = ("pedestrian.moving", "pedestrian.sitting_lying_down", "pedestrian.standing", "cycle.with_rider",
              "cycle.without_rider", "vehicle.moving", "vehicle.parked", "vehicle.stopped", "")
BOX_VECTORS = {"translation": 3, "size": 3, "rotation": 4, "velocity": 2}
BEV_KEY, OCC_KEY = "bev_probs", "occ_labels"


def check_coverage(found, split_tokens, what, allow_partial):
    """Tokens to score: ``found`` ∩ split. Unknown tokens always raise; missing ones unless ``allow_partial``."""
    split = set(split_tokens)
    unknown = sorted(set(found) - split)
    if unknown:
        raise ValueError(f"{what}: {len(unknown)} sample token(s) not in the split, e.g. {unknown[0]}")
    missing = [t for t in split_tokens if t not in set(found)]
    if missing and not allow_partial:
        raise ValueError(f"{what}: {len(missing)} of {len(split)} split sample(s) missing, e.g. sample "
                         f"{missing[0]} (pass --allow-partial to score only the present ones)")
    return [t for t in split_tokens if t in set(found)]


def _check_box(token, i, box):
    where = f"sample {token} box {i}"
    if not isinstance(box, dict):
        raise ValueError(f"{where}: expected an object, got {type(box).__name__}")
    if box.get("sample_token") != token:
        raise ValueError(f"{where}: field 'sample_token' is {box.get('sample_token')!r}, expected {token!r}")
    for key, n in BOX_VECTORS.items():
        v = box.get(key)
        if not isinstance(v, (list, tuple)) or len(v) != n:
            raise ValueError(f"{where}: field '{key}' must be a list of {n} numbers, got {v!r}")
        if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
            raise ValueError(f"{where}: field '{key}' has a NaN/inf or non-number value: {v!r}")
    if min(box["size"]) <= 0:
        raise ValueError(f"{where}: field 'size' must be positive, got {box['size']}")
    if sum(x * x for x in box["rotation"]) < 1e-12:
        raise ValueError(f"{where}: field 'rotation' is a zero quaternion")
    if box.get("detection_name") not in DETECTION_CLASSES:
        raise ValueError(f"{where}: field 'detection_name' {box.get('detection_name')!r} is not one of "
                         f"{DETECTION_CLASSES}")
    score = box.get("detection_score")
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        raise ValueError(f"{where}: field 'detection_score' must be a finite number, got {score!r}")
    if box.get("attribute_name") not in ATTRIBUTES:
        raise ValueError(f"{where}: field 'attribute_name' {box.get('attribute_name')!r} is not a nuScenes "
                         f"attribute")


def validate_submission(submission, split_tokens, allow_partial=False):
    """Check a submission dict (see module doc) against the split; returns the sample tokens to score."""
    if not isinstance(submission, dict) or not isinstance(submission.get("results"), dict):
        raise ValueError("detection results: field 'results' (an object keyed by sample token) is missing")
    meta = submission.get("meta")
    if not isinstance(meta, dict) or any(not isinstance(meta.get(k), bool) for k in META_KEYS):
        raise ValueError(f"detection results: field 'meta' must hold booleans {META_KEYS}, got {meta!r}")
    tokens = check_coverage(submission["results"].keys(), split_tokens, "detection results", allow_partial)
    for token, boxes in submission["results"].items():
        if not isinstance(boxes, list):
            raise ValueError(f"sample {token}: results entry must be a list of boxes")
        if len(boxes) > MAX_BOXES_PER_SAMPLE:
            raise ValueError(f"sample {token}: {len(boxes)} boxes, at most {MAX_BOXES_PER_SAMPLE} allowed")
        for i, box in enumerate(boxes):
            _check_box(token, i, box)
    return tokens


def load_submission(path):
    """Read a submission JSON file (``FileNotFoundError``/``ValueError`` naming the file)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"detection results file not found: {path}")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def save_bev(folder, token, bev_probs):
    """Write ``<folder>/<token>.npz`` with ``bev_probs`` float16 (6, 200, 200) in [0, 1]."""
    probs = check_bev(bev_probs, f"sample {token} field '{BEV_KEY}'")
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(os.path.join(folder, f"{token}.npz"), **{BEV_KEY: probs.astype(np.float16)})


def save_occ(folder, token, occ_labels):
    """Write ``<folder>/<token>.npz`` with ``occ_labels`` uint8 (200, 200, 16) labels 0-17."""
    labels = check_volume(occ_labels, f"sample {token} field '{OCC_KEY}'")
    os.makedirs(folder, exist_ok=True)
    np.savez_compressed(os.path.join(folder, f"{token}.npz"), **{OCC_KEY: labels.astype(np.uint8)})


def load_bev(folder, token):
    """``bev_probs`` of one sample as float32 (6, 200, 200), validated."""
    return check_bev(_load_key(folder, token, BEV_KEY, np.floating), f"sample {token} field '{BEV_KEY}'")


def load_occ(folder, token):
    """``occ_labels`` of one sample as uint8 (200, 200, 16), validated."""
    return check_volume(_load_key(folder, token, OCC_KEY, np.integer), f"sample {token} field '{OCC_KEY}'")


def load_openocc(folder, token):
    """``occ_labels`` of one sample on the OpenOccupancy grid as uint8 (512, 512, 40), labels 0-16, validated."""
    return check_volume(_load_key(folder, token, OCC_KEY, np.integer), f"sample {token} field '{OCC_KEY}'",
                        OPENOCC_GRID.shape, len(OPENOCC_CLASSES) - 1)


def _load_key(folder, token, key, kind):
    path = os.path.join(folder, f"{token}.npz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"sample {token}: prediction file not found: {path}")
    with np.load(path) as data:
        if key not in data:
            raise ValueError(f"sample {token}: {path} has no field '{key}' (fields: {list(data.keys())})")
        array = data[key]
    if not np.issubdtype(array.dtype, kind):
        raise ValueError(f"sample {token}: field '{key}' in {path} has dtype {array.dtype}")
    return array


def validate_dense_folder(folder, split_tokens, kind, allow_partial=False):
    """Check every ``.npz`` in ``folder`` (``kind`` 'bev', 'occ' or 'openocc'); returns the split tokens present."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{kind} results folder not found: {folder}")
    found = [f[:-4] for f in os.listdir(folder) if f.endswith(".npz")]
    tokens = check_coverage(found, split_tokens, f"{kind} results in {folder}", allow_partial)
    loader = {"bev": load_bev, "occ": load_occ, "openocc": load_openocc}[kind]
    for token in tokens:
        loader(folder, token)
    return tokens
