"""Experiment configs: mmengine-style Python files with ``_base_`` inheritance, checked against a schema.

A config file assigns three dicts, ``model``, ``data`` and ``train`` (usually by inheriting files from
``configs/_base_/`` and overriding a few keys). ``mmengine.config.Config`` only parses the files and merges
``_base_``; everything after that is plain Python dicts.

Schema rules (:data:`SCHEMA`): every key a config sets must be known, and every key without a default
(:data:`REQUIRED`) must be set. Either mistake raises ``ValueError`` naming the dotted key and the file.
The four model sub-sections ``model.lidar``, ``model.camera``, ``model.fusion`` and ``model.head`` are
keyword arguments of the encoder / neck / head constructors: they are checked against those constructors'
signatures when the model is built (``perception.models.m3net``), where the same kind of error is raised.
``model.lidar = None`` (or ``model.camera = None``) disables that encoder.

Units: metres for ranges and cells, pixels ``(H, W)`` for image sizes, seconds nowhere.
"""

import ast
import copy
from pathlib import Path


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()
# Marks a sub-section whose keys are constructor keyword arguments (validated when the model is built).
KWARGS = "kwargs-section"

SCHEMA = {
    "model": {
        "tasks": REQUIRED,  # subset of ('det', 'map', 'occ')
        "point_cloud_range": REQUIRED,  # [x0, y0, z0, x1, y1, z1] metres, LiDAR frame
        "bev_cell": REQUIRED,  # metres per BEV cell of the shared BEV grid
        "lidar": KWARGS,  # LidarEncoder kwargs or None
        "camera": KWARGS,  # CameraEncoder kwargs or None
        "fusion": KWARGS,  # FusedBEVNeck kwargs
        "head": KWARGS,  # MultiTaskHead kwargs
        "refiner": KWARGS,  # PointBoxRefiner kwargs (second-stage box refinement from LiDAR points) or None
        "score_threshold": 0.05,  # detection decoding in predict
        "max_boxes": 500,  # per sample (nuScenes submission limit)
        "depth_loss_weight": 1.0,  # camera LiDAR-supervised depth loss
    },
    "data": {
        "dataroot": REQUIRED,  # nuScenes-format dataroot
        "version": "v1.0-trainval",
        "train_split": "train",  # official split names (nuscenes.utils.splits)
        "val_split": "val",
        "train_info": None,  # info/index pickle; None -> <dataroot>/m3_index_<version>.pkl, built if missing
        "val_info": None,
        "cameras": ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"),
        "image_size": REQUIRED,  # (H, W) network input in pixels
        "num_sweeps": 10,
        "occ_format": "occ3d",  # occupancy GT read for training: 'occ3d' | 'openocc' (must match model.head.occ_grid)
        "openocc_root": None,  # nuScenes-Occupancy labels (scene_<scene>/occupancy/<lidar token>.npy), for 'openocc'
        "augment": {  # perception.data.augment.ImageAugParams / BevAugParams
            "resize_lim": (0.38, 0.55),  # image scale range (train)
            "test_resize": 0.48,  # None: smallest scale covering image_size
            "bottom_crop_lim": (0.0, 0.0),  # fraction of the resized height cut from the bottom
            "rot_lim": (-5.4, 5.4),  # image rotation, degrees
            "image_flip_prob": 0.5,
            "bev_rot_lim": (-0.785, 0.785),  # radians
            "bev_scale_lim": (0.9, 1.1),
            "bev_flip_x_prob": 0.5,
            "bev_flip_y_prob": 0.5,
            "bev_translate_std": 0.5,  # metres
        },
        "modality_dropout": {  # perception.data.collate.modality_dropout, per training sample
            "lidar": 0.0,  # probability the LiDAR is dropped
            "all_cameras": 0.0,  # probability all cameras are dropped
            "some_cameras": 0.0,  # probability a random proper subset of the cameras is dropped
        },
    },
    "train": {
        "epochs": REQUIRED,
        "batch_size": 1,  # per process
        "lr": REQUIRED,
        "weight_decay": 0.01,
        "schedule": "onecycle",  # 'onecycle' | 'cosine'
        "pct_start": 0.4,  # one-cycle warm-up fraction
        "grad_clip": 10.0,  # max gradient L2 norm; None disables
        "amp": False,  # fp16 autocast + GradScaler (CUDA only; ignored on CPU)
        "ema": False,
        "ema_decay": 0.999,
        "seed": 0,
        "workers": 0,  # DataLoader workers per process
        "log_interval": 10,  # steps between log lines
        "checkpoint_interval": 1,  # epochs between W/epoch_N.pth files; 0 = only W/latest.pth, at the end
        "keep_checkpoints": 3,  # newest epoch_N.pth files kept (older ones deleted); -1 keeps all
        "max_steps": None,  # stop after this many optimizer steps (debug / tests)
    },
}

SCHEDULES = ("onecycle", "cosine")
TASKS = ("det", "map", "occ")
OCC_FORMATS = ("occ3d", "openocc")  # data.occ_format (see perception.data.dataset.M3Dataset)


class Config(dict):
    """A nested plain ``dict`` with attribute access (``cfg.model.tasks``) and the ``filename`` it came from."""

    filename = None

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r} (file {self.filename})") from None

    def to_dict(self):
        """Plain nested dicts/lists (no Config objects): for checkpoints and logs."""
        return _plain(self)


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _wrap(value, filename):
    if isinstance(value, dict):
        out = Config({k: _wrap(v, filename) for k, v in value.items()})
        out.filename = filename
        return out
    if isinstance(value, list):
        return [_wrap(v, filename) for v in value]
    return value


def parse_override(text):
    """``'a.b=c'`` -> (``['a', 'b']``, value); the value is a Python literal when it parses as one, else a str."""
    if "=" not in text:
        raise ValueError(f"--cfg-options entry {text!r} is not of the form key.path=value")
    key, raw = text.split("=", 1)
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip().split("."), value


def apply_overrides(cfg: dict, overrides, filename):
    """Set each ``a.b=c`` of ``overrides`` in ``cfg`` (in place). Unknown paths are reported by validation."""
    for text in overrides or []:
        path, value = parse_override(text)
        node = cfg
        for part in path[:-1]:
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise ValueError(f"--cfg-options {text!r}: {part!r} is not a section in {filename}")
            node = node[part]
        node[path[-1]] = value


def _validate(cfg: dict, schema: dict, prefix, filename):
    """Fill defaults and check keys against ``schema`` (recursively). Returns a new dict."""
    if not isinstance(cfg, dict):
        raise ValueError(f"config key {prefix!r} must be a dict, got {type(cfg).__name__} (file {filename})")
    unknown = sorted(set(cfg) - set(schema))
    if unknown:
        names = ", ".join(f"{prefix}.{k}" for k in unknown)
        raise ValueError(f"unknown config key(s) {names} in {filename}; allowed: {sorted(schema)}")
    out = {}
    for key, default in schema.items():
        name = f"{prefix}.{key}"
        if key not in cfg:
            if default is REQUIRED:
                raise ValueError(f"missing required config key {name} in {filename}")
            out[key] = None if default == KWARGS else copy.deepcopy(default)
        elif isinstance(default, dict):
            out[key] = _validate(cfg[key], default, name, filename)
        elif default == KWARGS:
            if cfg[key] is not None and not isinstance(cfg[key], dict):
                raise ValueError(f"config key {name} must be a dict or None (file {filename})")
            out[key] = copy.deepcopy(cfg[key])
        else:
            out[key] = copy.deepcopy(cfg[key])
    return out


def _check_values(cfg: dict, filename):
    tasks = cfg["model"]["tasks"]
    if not tasks or any(t not in TASKS for t in tasks):
        raise ValueError(f"model.tasks must be a non-empty subset of {TASKS}, got {tasks!r} (file {filename})")
    if len(cfg["model"]["point_cloud_range"]) != 6:
        raise ValueError(f"model.point_cloud_range must have 6 numbers [x0, y0, z0, x1, y1, z1] (file {filename})")
    if cfg["train"]["schedule"] not in SCHEDULES:
        raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {cfg['train']['schedule']!r} (file {filename})")
    for key, low in (("checkpoint_interval", 0), ("keep_checkpoints", -1)):
        value = cfg["train"][key]
        if not isinstance(value, int) or value < low:
            raise ValueError(f"train.{key} must be an integer >= {low}, got {value!r} (file {filename})")
    if cfg["data"]["occ_format"] not in OCC_FORMATS:
        raise ValueError(f"data.occ_format must be one of {OCC_FORMATS}, got {cfg['data']['occ_format']!r} (file {filename})")
    if cfg["model"]["lidar"] is None and cfg["model"]["camera"] is None:
        raise ValueError(f"model.lidar and model.camera are both None: enable at least one (file {filename})")
    for key in ("fusion", "head"):
        if cfg["model"][key] is None:
            raise ValueError(f"missing required config key model.{key} in {filename}")
    camera = cfg["model"]["camera"]
    if camera is not None and "image_size" in camera:
        if tuple(camera["image_size"]) != tuple(cfg["data"]["image_size"]):
            raise ValueError(
                f"model.camera.image_size {camera['image_size']} != data.image_size {cfg['data']['image_size']}"
                f" (file {filename})"
            )


def load_config(path, overrides=None) -> Config:
    """Load a config file (``_base_`` merged), apply ``overrides`` (``['a.b=c', ...]``) and validate.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the key and the file for an
    unknown key, a missing required key or an invalid value.
    """
    from mmengine.config import Config as MMConfig

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    raw = MMConfig.fromfile(str(path)).to_dict()
    filename = str(path)
    apply_overrides(raw, overrides, filename)
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        raise ValueError(f"unknown top-level config key(s) {unknown} in {filename}; allowed: {sorted(SCHEMA)}")
    cfg = {}
    for section, schema in SCHEMA.items():
        if section not in raw:
            raise ValueError(f"missing required config section {section!r} in {filename}")
        cfg[section] = _validate(raw[section], schema, section, filename)
    _check_values(cfg, filename)
    return _wrap(cfg, filename)
