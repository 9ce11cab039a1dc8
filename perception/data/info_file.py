"""Read info/index files into :class:`Sample` objects (no mmdet3d import), and write the project index.

Accepted files (plain ``pickle``):

1. mmdet3d >= 1.1 "v2" info files ``{'metainfo', 'data_list'}`` (info_version 1.1). Per sample: ``token``,
   ``timestamp`` (SECONDS), ``ego2global`` (4x4), ``lidar_points`` {``lidar_path``, ``lidar2ego``},
   ``lidar_sweeps`` [{``lidar_points`` {``lidar_path``, ``lidar2ego``}, ``ego2global``, ``timestamp`` (s),
   ``sample_data_token``}], ``images`` {CAM_*: {``img_path``, ``cam2img``, ``cam2ego``, ``lidar2cam``,
   ``timestamp`` (s), ``sample_data_token``}}, ``instances`` [{``bbox_3d`` (7), ``bbox_label_3d``,
   ``velocity`` (2, LiDAR frame m/s), ``num_lidar_pts``, ``bbox_3d_isvalid``}]. Class indices map to names
   through ``metainfo['categories']`` (name -> index) or ``metainfo['CLASSES']`` (sequence); label -1 is
   mmdet3d's "not a detection class" marker and such instances are skipped.
2. The project index (``perception index``, written by :func:`write_info_file`): the same schema plus
   ``scene_name``, ``scene_token``, ``split``, ``map_location``, ``occ_path``, ``lidar_points.sample_data_token``
   (the LIDAR_TOP token), per-instance ``instance_token`` and
   ``num_radar_pts``, per-camera ``ego2global`` AT THE CAMERA TIMESTAMP, and ``metainfo['box_convention']``
   and ``metainfo['data_root']``. Sensor paths are relative to the dataroot (``samples/LIDAR_TOP/...``).
3. Legacy mmdet3d < 1.0 info files ``{'infos', 'metadata'}`` (raw quaternion calibration, per-camera ego
   pose at the camera timestamp, timestamps in microseconds); their boxes default to ``'mmdet3d_legacy'``.
   They are first converted to the v2 layout (:mod:`perception.data.info_legacy`).

Scene and LiDAR tokens (:attr:`Sample.scene_token`, :attr:`Sample.lidar_token`, which name the
nuScenes-Occupancy label file): ``scene_token`` and ``lidar_points.sample_data_token``, else the top-level
``lidar_token`` (OpenOccupancy / BEVDet-style info files, v2 or legacy); ``""`` when absent (project indexes
written before ``scene_token`` was stored still load; training on OpenOccupancy labels then asks for a rebuild).

Box conventions: ``box_convention`` argument, else ``metainfo['box_convention']``, else ``'mmdet3d'`` for v2
files and ``'mmdet3d_legacy'`` for legacy files (see :mod:`perception.data.boxes`).

``lidar2cam``: when the camera entry carries its own ``ego2global`` (project index, legacy files) it is the
full chain ``inv(cam2ego) @ inv(ego2global_cam) @ ego2global_lidar @ lidar2ego``; otherwise the file's
``lidar2cam`` is used (mmdet3d computes it from ``sensor2lidar``, which includes the same ego motion).

Paths: a relative sensor path resolves against ``data_root`` (argument, else ``metainfo['data_root']`` when
that folder exists, else the info file's folder), trying in order: the path as written, the bare file name,
``samples/<channel>/<name>``, ``sweeps/<channel>/<name>``. A file found nowhere keeps the first candidate:
the error comes only when the data are read, naming the file and the sample token.
"""

import os
import pickle

import numpy as np

from perception.constants import CAMERA_NAMES, DETECTION_CLASSES
from perception.data.bev_map import make_bev_map_fn
from perception.data.boxes import BOX_CONVENTIONS, convert_boxes
from perception.data.info_legacy import legacy_to_v2
from perception.data.sample import CameraView, Sample, SweepInfo
from perception.geometry import invert

INFO_VERSION = "1.1"


def write_info_file(path, data_list, metainfo):
    """Write ``{'metainfo', 'data_list'}`` as a pickle (plain lists/floats/str only, loads without numpy)."""
    meta = dict(metainfo)
    meta.setdefault("info_version", INFO_VERSION)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"metainfo": meta, "data_list": data_list}, f, protocol=4)


def _read_pickle(path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"info file not found: {path}")
    with open(path, "rb") as f:
        data = pickle.load(f)
    if isinstance(data, dict) and "data_list" in data:
        return data.get("metainfo", {}), data["data_list"], False
    if isinstance(data, dict) and "infos" in data:
        return data.get("metadata", {}), [legacy_to_v2(info) for info in data["infos"]], True
    raise ValueError(f"info file {path}: expected a dict with 'data_list' (v2) or 'infos' (legacy)")


def _class_names(metainfo, path):
    """Index -> class name from ``metainfo['categories']`` (dict or list) or ``metainfo['CLASSES']``."""
    cats = metainfo.get("categories", metainfo.get("classes", metainfo.get("CLASSES")))
    if cats is None:
        return list(DETECTION_CLASSES)
    if isinstance(cats, dict):
        names = [None] * (max(cats.values()) + 1)
        for name, idx in cats.items():
            names[idx] = name
        return names
    if isinstance(cats, (list, tuple)) and all(isinstance(c, str) for c in cats):
        return list(cats)
    raise ValueError(f"info file {path}: metainfo 'categories'/'CLASSES' has an unsupported layout: {cats!r}")


def _candidates(path, data_root):
    """Where a sensor path may live (see the module docstring), most specific first."""
    if os.path.isabs(path):
        return [path]
    name = os.path.basename(path)
    channel = name.split("__")[1] if name.count("__") >= 2 else None
    out = [os.path.join(data_root, path), os.path.join(data_root, name)]
    if channel:
        out += [os.path.join(data_root, "samples", channel, name), os.path.join(data_root, "sweeps", channel, name)]
    return out


def resolve_path(path, data_root):
    """First existing candidate of ``path`` under ``data_root``; the first candidate when none exists."""
    candidates = _candidates(path, data_root)
    return next((c for c in candidates if os.path.exists(c)), candidates[0])


def _matrix(entry, key, where):
    if key not in entry or entry[key] is None:
        raise ValueError(f"{where}: missing field {key!r}")
    m = np.asarray(entry[key], dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"{where}: field {key!r} must be 4x4, got {m.shape}")
    return m


def _seconds_to_us(t):
    return int(round(float(t) * 1e6))


def _cameras(info, lidar2global, data_root, where):
    cameras = {}
    for name, cam in info.get("images", {}).items():
        if name not in CAMERA_NAMES:
            raise ValueError(f"{where}: unknown camera {name!r} in 'images' (expected {CAMERA_NAMES})")
        cw = f"{where} images[{name}]"
        if not cam.get("img_path"):
            continue  # mmdet3d writes an empty entry for cameras without an image in this sample
        intrinsics = np.asarray(cam.get("cam2img"), dtype=np.float64)
        if intrinsics.shape not in ((3, 3), (4, 4), (3, 4)):
            raise ValueError(f"{cw}: field 'cam2img' must be 3x3, got {intrinsics.shape}")
        cam2ego = _matrix(cam, "cam2ego", cw) if cam.get("cam2ego") is not None else None
        cam_ego2global = _matrix(cam, "ego2global", cw) if cam.get("ego2global") is not None else None
        if cam2ego is not None and cam_ego2global is not None:
            lidar2cam = invert(cam2ego) @ invert(cam_ego2global) @ lidar2global
        else:
            lidar2cam = _matrix(cam, "lidar2cam", cw)
            cam_ego2global = None
        cameras[name] = CameraView(
            name=name,
            path=resolve_path(cam["img_path"], data_root),
            intrinsics=intrinsics[:3, :3],
            lidar2cam=lidar2cam,
            timestamp=_seconds_to_us(cam.get("timestamp", info["timestamp"])),
            cam2ego=cam2ego,
            ego2global=cam_ego2global,
            sample_data_token=cam.get("sample_data_token", ""),
            sample_token=info["token"],
        )
    return cameras


def _sweeps(info, lidar2ego, ego2global, data_root, where):
    global2lidar = invert(ego2global @ lidar2ego)
    out = []
    for i, sw in enumerate(info.get("lidar_sweeps") or []):
        sw_where = f"{where} lidar_sweeps[{i}]"
        points = sw.get("lidar_points", {})
        if not points.get("lidar_path"):
            raise ValueError(f"{sw_where}: missing field 'lidar_points.lidar_path'")
        # Older converters omit the sweep's lidar2ego: the LiDAR calibration does not change within a scene.
        sw_lidar2ego = _matrix(points, "lidar2ego", sw_where) if points.get("lidar2ego") else lidar2ego
        sweep2lidar = global2lidar @ _matrix(sw, "ego2global", sw_where) @ sw_lidar2ego
        out.append(
            SweepInfo(
                path=resolve_path(points["lidar_path"], data_root),
                timestamp=_seconds_to_us(sw["timestamp"]),
                sweep2lidar=sweep2lidar,
                # from integer microseconds: seconds since 1970 as float64 keep only ~0.2 us
                time_lag=(_seconds_to_us(info["timestamp"]) - _seconds_to_us(sw["timestamp"])) / 1e6,
            )
        )
    out.sort(key=lambda s: -s.timestamp)  # newest first
    return out


def _boxes(info, class_names, convention, where):
    rows, labels, npts, tokens = [], [], [], []
    for i, inst in enumerate(info.get("instances", [])):
        if "bbox_label_name" in inst:
            name = inst["bbox_label_name"]
        else:
            idx = int(inst.get("bbox_label_3d", inst.get("bbox_label", -1)))
            if idx == -1:
                continue  # mmdet3d's marker for a category outside its class list
            if not 0 <= idx < len(class_names) or class_names[idx] is None:
                raise ValueError(f"{where} instances[{i}]: label {idx} not in the file's class list")
            name = class_names[idx]
        if name not in DETECTION_CLASSES:
            if "bbox_label_name" in inst:
                continue  # legacy files list every category name; non-detection ones are not GT here
            raise ValueError(f"{where} instances[{i}]: class {name!r} is not one of {DETECTION_CLASSES}")
        box = np.asarray(inst["bbox_3d"], dtype=np.float64)
        if box.shape != (7,):
            raise ValueError(f"{where} instances[{i}]: field 'bbox_3d' must have 7 values, got {box.shape}")
        vel = np.asarray(inst.get("velocity", [np.nan, np.nan]), dtype=np.float64).reshape(-1)[:2]
        rows.append(np.concatenate([box, vel]))
        labels.append(DETECTION_CLASSES.index(name))
        npts.append(int(inst.get("num_lidar_pts", -1)))
        tokens.append(inst.get("instance_token", ""))
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
    boxes = convert_boxes(rows, convention, "lidar").astype(np.float32)
    return boxes, np.asarray(labels, np.int64), np.asarray(npts, np.int64), tokens


def _split_scenes(split):
    from nuscenes.utils.splits import create_splits_scenes  # heavy: kept off the runtime's import path

    scenes = create_splits_scenes()
    if split not in scenes:
        raise ValueError(f"unknown split {split!r}; official names: {sorted(scenes)}")
    return set(scenes[split])


def load_info_file(path, data_root=None, num_sweeps=10, box_convention=None, split=None):
    """Load an info/index file (see the module docstring) into a list of :class:`Sample`.

    Args:
        path: the pickle.
        data_root: folder that relative sensor paths resolve against (default: see module docstring).
        num_sweeps: sweeps merged by :attr:`Sample.points` (0 = keyframe only).
        box_convention: override of the file's box convention (e.g. ``'mmdet3d_legacy'`` for the mmdet3d
            test fixture that kept legacy boxes under v2 keys).
        split: official nuScenes split name (``nuscenes.utils.splits.create_splits_scenes``, e.g.
            ``'train'``, ``'val'``, ``'mini_val'``): keep only samples of its scenes (needs ``scene_name``).
    """
    path = str(path)
    metainfo, data_list, legacy = _read_pickle(path)
    if data_root is None:
        meta_root = metainfo.get("data_root")
        data_root = meta_root if meta_root and os.path.isdir(meta_root) else os.path.dirname(os.path.abspath(path))
    data_root = str(data_root)
    convention = box_convention or metainfo.get("box_convention") or ("mmdet3d_legacy" if legacy else "mmdet3d")
    if convention not in BOX_CONVENTIONS:
        source = "argument box_convention" if box_convention else "metainfo['box_convention']"
        raise ValueError(f"info file {path}: unknown box convention {convention!r} ({source}); "
                         f"allowed: {', '.join(BOX_CONVENTIONS)}")
    class_names = _class_names(metainfo, path)
    scenes = _split_scenes(split) if split is not None else None

    samples = []
    for k, info in enumerate(data_list):
        where = f"info file {path} data_list[{k}] (sample {info.get('token', '?')})"
        if scenes is not None:
            if "scene_name" not in info:
                raise ValueError(f"{where}: split={split!r} needs the field 'scene_name'")
            if info["scene_name"] not in scenes:
                continue
        lidar = info.get("lidar_points") or {}
        if not lidar.get("lidar_path"):
            raise ValueError(f"{where}: missing field 'lidar_points.lidar_path'")
        lidar2ego = _matrix(lidar, "lidar2ego", where)
        ego2global = _matrix(info, "ego2global", where)
        boxes, labels, npts, tokens = _boxes(info, class_names, convention, where)
        occ_path = info.get("occ_path")
        map_location = info.get("map_location")
        samples.append(
            Sample(
                token=info["token"],
                lidar_path=resolve_path(lidar["lidar_path"], data_root),
                lidar2ego=lidar2ego,
                ego2global=ego2global,
                timestamp=_seconds_to_us(info["timestamp"]),
                scene_name=info.get("scene_name", ""),
                scene_token=info.get("scene_token") or "",
                lidar_token=lidar.get("sample_data_token") or info.get("lidar_token") or "",
                sweeps=_sweeps(info, lidar2ego, ego2global, data_root, where),
                cameras=_cameras(info, ego2global @ lidar2ego, data_root, where),
                boxes=boxes,
                labels=labels,
                num_lidar_pts=npts,
                instance_tokens=tokens,
                map_location=map_location,
                dataroot=data_root,
                occ_path=None if occ_path is None else os.path.join(data_root, occ_path),
                num_sweeps=num_sweeps,
                _bev_map_fn=make_bev_map_fn(data_root, map_location),
            )
        )
    return samples
