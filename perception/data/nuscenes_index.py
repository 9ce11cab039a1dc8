"""Build the project index from a nuScenes dataroot through nuscenes-devkit (``perception index``).

Output: ONE pickle in the v2 info schema (see :mod:`perception.data.info_file`) holding every keyframe of
``version``, each with a ``split`` field (the official split of its scene from
``nuscenes.utils.splits.create_splits_scenes``: ``train``/``val`` for v1.0-trainval, ``test``,
``mini_train``/``mini_val`` for v1.0-mini; ``None`` for a scene in no official split). Select a split with
``load_info_file(path, split='val')``.

Per sample: LiDAR keyframe and up to ``num_sweeps`` earlier sweeps with their own ``lidar2ego`` and
``ego2global``; every camera with ``cam2img``, ``cam2ego``, ``ego2global`` AT THE CAMERA TIMESTAMP and the full
``lidar2cam`` chain; boxes converted from the annotations (global centre, w l h, quaternion) into the LiDAR
frame ('mmdet3d' convention) with velocities from ``nusc.box_velocity`` rotated into the LiDAR frame (NaN
where the devkit has none). Boxes without any LiDAR or radar point are KEPT with ``bbox_3d_isvalid`` False
and their ``num_lidar_pts`` (training filters). Annotations whose category is not a detection class are
not boxes here (counted in the report). Paths are relative to the dataroot; timestamps in seconds.

Bad input is never dropped silently; the report counts it by reason and names each case (sample, file):

- keyframe LiDAR file missing or truncated (byte size not a whole number of points): the SAMPLE is skipped
  (without its LiDAR frame it has no LiDAR frame of reference for its boxes);
- sweep file missing or truncated: that SWEEP is dropped, the sample kept;
- camera image missing: that CAMERA is left out of the sample's ``images`` (training masks it), the
  sample kept; images are not decoded here (too slow on a full dataset), the loader names unreadable ones;
- a table record that references a token no table holds: ``ValueError`` naming the table file, the record
  and the missing token (instead of the devkit's bare ``KeyError``), nothing written.
"""

import json
import os
from collections import Counter

import numpy as np
from tqdm import tqdm

from perception.constants import CAMERA_NAMES, DETECTION_CLASSES
from perception.data.boxes import convert_boxes
from perception.data.info_file import write_info_file
from perception.data.io import lidar_file_problem
from perception.geometry import invert, make_transform

VERSION_SPLITS = {
    "v1.0-trainval": ("train", "val"),
    "v1.0-test": ("test",),
    "v1.0-mini": ("mini_train", "mini_val"),
}


# Foreign keys of the nuScenes v1.0 tables: (table, field, table the token must be in). Empty tokens ("" for
# the ends of prev/next chains) reference nothing; list fields hold several tokens.
TABLE_REFERENCES = (
    ("sample_data", "sample_token", "sample"),
    ("sample_data", "ego_pose_token", "ego_pose"),
    ("sample_data", "calibrated_sensor_token", "calibrated_sensor"),
    ("sample_data", "prev", "sample_data"),
    ("sample_data", "next", "sample_data"),
    ("calibrated_sensor", "sensor_token", "sensor"),
    ("sample", "scene_token", "scene"),
    ("sample", "prev", "sample"),
    ("sample", "next", "sample"),
    ("sample_annotation", "sample_token", "sample"),
    ("sample_annotation", "instance_token", "instance"),
    ("sample_annotation", "visibility_token", "visibility"),
    ("sample_annotation", "attribute_tokens", "attribute"),
    ("sample_annotation", "prev", "sample_annotation"),
    ("sample_annotation", "next", "sample_annotation"),
    ("instance", "category_token", "category"),
    ("instance", "first_annotation_token", "sample_annotation"),
    ("instance", "last_annotation_token", "sample_annotation"),
    ("scene", "log_token", "log"),
    ("scene", "first_sample_token", "sample"),
    ("scene", "last_sample_token", "sample"),
    ("map", "log_tokens", "log"),
)


class _Report:
    """Counts by reason plus one line per case naming the sample and file (``perception index`` prints both)."""

    def __init__(self):
        self.counts = Counter()
        self.details = []

    def add(self, reason, detail=None):
        self.counts[reason] += 1
        if detail is not None:
            self.details.append(f"{reason}: {detail}")


def dangling_references(dataroot, version, limit=10):
    """Up to ``limit`` lines ``"<table>.json record <token>[ (sample <s>)]: <field> '<tok>' not found in
    <other>.json"`` for the tokens the tables of ``<dataroot>/<version>`` reference but do not hold (reads the
    JSON files itself: used to explain a devkit ``KeyError``)."""
    folder = os.path.join(str(dataroot), version)
    tables = {}
    for name in {t for ref in TABLE_REFERENCES for t in (ref[0], ref[2])}:
        with open(os.path.join(folder, f"{name}.json")) as f:
            tables[name] = json.load(f)
    tokens = {name: {r["token"] for r in records} for name, records in tables.items()}
    found = []
    for table, field, target in TABLE_REFERENCES:
        for record in tables[table]:
            value = record.get(field, "")
            for tok in value if isinstance(value, list) else [value]:
                if tok and tok not in tokens[target]:
                    sample = f" (sample {record['sample_token']})" if "sample_token" in record else ""
                    found.append(f"{table}.json record {record['token']}{sample}: {field} {tok!r} not found in "
                                 f"{target}.json")
                    if len(found) >= limit:
                        return found
    mapped = {tok for record in tables["map"] for tok in record.get("log_tokens", [])}
    found += [f"log.json record {r['token']}: listed in no map.json 'log_tokens'" for r in tables["log"]
              if r["token"] not in mapped]
    return found[:limit]


def _scene_splits(version):
    """scene name -> official split name for ``version``."""
    from nuscenes.utils.splits import create_splits_scenes  # heavy: kept off the runtime's import path

    all_splits = create_splits_scenes()
    names = VERSION_SPLITS.get(version, tuple(all_splits))
    return {scene: split for split in names for scene in all_splits[split]}


def _pose(nusc, sd):
    """(sensor2ego, ego2global) 4x4 of a ``sample_data`` record, at its own timestamp."""
    cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", sd["ego_pose_token"])
    return make_transform(cs["rotation"], cs["translation"]), make_transform(pose["rotation"], pose["translation"])


def _lidar_file_ok(dataroot, sd, report, reason, where):
    """True when the ``.pcd.bin`` of ``sd`` is readable; else reports ``reason`` (``{}`` = missing / truncated)
    naming ``where`` (the sample) and the file."""
    path = os.path.join(dataroot, sd["filename"])
    problem = lidar_file_problem(path)
    if problem is not None:
        kind, _, why = problem.partition(": ")
        report.add(reason.format(kind), f"{where}: {path}" + (f" ({why})" if why else ""))
    return problem is None


def _sweeps(nusc, dataroot, lidar_sd, num_sweeps, report):
    out = []
    sd = lidar_sd
    while len(out) < num_sweeps and sd["prev"]:
        sd = nusc.get("sample_data", sd["prev"])
        if not _lidar_file_ok(dataroot, sd, report, "sweeps dropped: {} sweep file",
                              f"sample {lidar_sd['sample_token']}"):
            continue
        lidar2ego, ego2global = _pose(nusc, sd)
        out.append({
            "lidar_points": {"lidar_path": sd["filename"], "lidar2ego": lidar2ego.tolist()},
            "ego2global": ego2global.tolist(),
            "timestamp": sd["timestamp"] / 1e6,
            "sample_data_token": sd["token"],
        })
    return out


def _images(nusc, dataroot, sample, lidar2global, report):
    images = {}
    for name in CAMERA_NAMES:
        if name not in sample["data"]:
            continue
        sd = nusc.get("sample_data", sample["data"][name])
        path = os.path.join(dataroot, sd["filename"])
        if not os.path.isfile(path):
            report.add("cameras left out: missing image file", f"sample {sample['token']} {name}: {path}")
            continue
        cs = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
        cam2ego, ego2global = _pose(nusc, sd)
        # LiDAR (t_lidar) -> global -> ego (t_cam) -> camera: includes the ego motion between the stamps.
        lidar2cam = invert(cam2ego) @ invert(ego2global) @ lidar2global
        images[name] = {
            "img_path": sd["filename"],
            "cam2img": np.asarray(cs["camera_intrinsic"], dtype=np.float64).tolist(),
            "cam2ego": cam2ego.tolist(),
            "ego2global": ego2global.tolist(),
            "lidar2cam": lidar2cam.tolist(),
            "timestamp": sd["timestamp"] / 1e6,
            "sample_data_token": sd["token"],
        }
    return images


def _instances(nusc, sample, lidar2global, report):
    from nuscenes.eval.detection.utils import category_to_detection_name  # heavy: kept off the runtime's import path

    rows, meta = [], []
    for token in sample["anns"]:
        ann = nusc.get("sample_annotation", token)
        name = category_to_detection_name(ann["category_name"])
        if name is None:
            report.add("annotations not in the detection classes")
            continue
        velocity = nusc.box_velocity(token)  # global frame m/s, NaN when it cannot be estimated
        rows.append(list(ann["translation"]) + list(ann["size"]) + list(ann["rotation"]) + list(velocity))
        meta.append((name, ann))
    boxes = convert_boxes(np.asarray(rows).reshape(-1, 13), "nuscenes_global", "lidar", lidar2global=lidar2global)
    instances = []
    for box, (name, ann) in zip(boxes, meta, strict=True):
        num_points = ann["num_lidar_pts"] + ann["num_radar_pts"]
        if num_points == 0:
            report.add("boxes kept without LiDAR/radar points")
        instances.append(
            {
                "bbox_3d": box[:7].tolist(),
                "bbox_label_3d": DETECTION_CLASSES.index(name),
                "velocity": box[7:9].tolist(),
                "num_lidar_pts": int(ann["num_lidar_pts"]),
                "num_radar_pts": int(ann["num_radar_pts"]),
                "bbox_3d_isvalid": bool(num_points > 0),
                "instance_token": ann["instance_token"],
            }
        )
    return instances


def _sample_entry(nusc, dataroot, sample, scene_splits, num_sweeps, report):
    """The index entry of one keyframe, or ``None`` (reported) when its LiDAR file is missing or truncated."""
    lidar_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    scene = nusc.get("scene", sample["scene_token"])
    if not _lidar_file_ok(dataroot, lidar_sd, report, "samples skipped: {} LiDAR file",
                          f"sample {sample['token']} (scene {scene['name']})"):
        return None
    lidar2ego, ego2global = _pose(nusc, lidar_sd)
    lidar2global = ego2global @ lidar2ego
    occ_rel = os.path.join("gts", scene["name"], sample["token"], "labels.npz")
    return {
        "token": sample["token"],
        "timestamp": lidar_sd["timestamp"] / 1e6,
        "scene_name": scene["name"],
        "scene_token": scene["token"],
        "split": scene_splits.get(scene["name"]),
        "map_location": nusc.get("log", scene["log_token"])["location"],
        "occ_path": occ_rel if os.path.isfile(os.path.join(dataroot, occ_rel)) else None,
        "ego2global": ego2global.tolist(),
        "lidar_points": {
            "lidar_path": lidar_sd["filename"],
            "lidar2ego": lidar2ego.tolist(),
            "num_pts_feats": 5,
            "sample_data_token": lidar_sd["token"],
        },
        "lidar_sweeps": _sweeps(nusc, dataroot, lidar_sd, num_sweeps, report),
        "images": _images(nusc, dataroot, sample, lidar2global, report),
        "instances": _instances(nusc, sample, lidar2global, report),
    }


def default_index_path(dataroot, version):
    """Where training and evaluation keep (and look for) the index of a dataroot: one file per version."""
    return os.path.join(str(dataroot), f"m3_index_{version}.pkl")


def build_index(dataroot, version, out_path, num_sweeps=10, progress=True, verbose=False):
    """Index every keyframe of ``version`` under ``dataroot`` into ``out_path`` (one pickle, see module doc).

    Returns a report dict: ``samples`` (written), ``splits`` (samples per split), ``counts`` (skipped
    samples, dropped sweeps and cameras, kept point-less boxes, ... by reason), ``details`` (one line per
    skipped sample / dropped sweep / left-out camera, naming the sample and the file). A table that references
    a missing token raises ``ValueError`` naming the table file, the record and the token (see module doc).
    """
    from nuscenes.nuscenes import NuScenes  # heavy: kept off the runtime's import path

    dataroot = os.path.abspath(str(dataroot))
    if not os.path.isdir(os.path.join(dataroot, version)):
        raise FileNotFoundError(f"nuScenes tables not found: {os.path.join(dataroot, version)}")
    scene_splits = _scene_splits(version)
    report = _Report()
    data_list = []
    try:
        nusc = NuScenes(version=version, dataroot=dataroot, verbose=verbose)
        for sample in tqdm(nusc.sample, desc=f"index {version}", disable=not progress):
            entry = _sample_entry(nusc, dataroot, sample, scene_splits, num_sweeps, report)
            if entry is not None:
                data_list.append(entry)
    except KeyError as e:  # the devkit's lookup of a token that no table holds
        lines = dangling_references(dataroot, version) or [f"token {e} (found by the devkit, not by the check)"]
        raise ValueError(f"nuScenes tables under {os.path.join(dataroot, version)} reference missing tokens:\n  "
                         + "\n  ".join(lines)) from e
    if any(e["split"] is None for e in data_list):
        report.counts["samples in no official split"] = sum(e["split"] is None for e in data_list)
    data_list.sort(key=lambda e: (e["scene_name"], e["timestamp"]))
    metainfo = {
        "dataset": "nuscenes",
        "version": version,
        "categories": {name: i for i, name in enumerate(DETECTION_CLASSES)},
        "box_convention": "mmdet3d",
        "data_root": dataroot,
        "num_sweeps": num_sweeps,
    }
    write_info_file(out_path, data_list, metainfo)
    return {
        "samples": len(data_list),
        "splits": dict(Counter(str(e["split"]) for e in data_list)),
        "counts": dict(report.counts),
        "details": report.details,
    }
