"""Experiment configs: mmengine-style Python files with ``_base_`` inheritance, checked against a schema.

A config file assigns ``model``, ``data``, ``train`` dicts; ``mmengine.config.Config`` only merges its ``_base_``.

Schema rules (:data:`SCHEMA`, in :mod:`perception.config_schema` with every default): every key a config sets
must be known, and every key without a default (:data:`REQUIRED`) must be set; either mistake raises
``ValueError`` naming the dotted key and the file.
``model.lidar``, ``.camera``, ``.fusion``, ``.head`` and ``.refiner`` are keyword arguments of the encoder / neck /
head / refiner constructors, checked against their signatures when the model is built
(``perception.models.m3net``). ``model.head`` holds the shared head settings and one sub-section per task,
``.det`` / ``.map`` / ``.occ`` (``DetTask`` / ``MapTask`` / ``OccTask``, checked the same way); the flat keys of
before the head split are errors naming their new place (:data:`MOVED_HEAD_KEYS`). ``None`` disables an encoder.
Rules across keys live here too (:func:`_check_model_rules`): what needs LiDAR, modality dropout only with both
encoders, the occupancy grid name (:func:`occupancy_grid_name`) and that ``data.occ_format`` names the same grid.
Units: metres for ranges and cells, pixels ``(H, W)`` for image sizes, seconds for the ``*_s`` keys.
"""

import ast
import copy
import math
from pathlib import Path

from mmengine.config import Config as MMConfig

from perception.config_schema import (
    KWARGS,
    MOVED_HEAD_KEYS,
    OCC_FORMATS,
    REQUIRED,
    SCHEDULES,
    SCHEMA,
)
from perception.constants import BEV_MAP_CLASSES, DEFAULT_OCC_GRID, OCC_GRIDS, TASKS


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
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _wrap(value, filename):
    if isinstance(value, dict):
        out = Config({k: _wrap(v, filename) for k, v in value.items()})
        out.filename = filename
        return out
    return [_wrap(v, filename) for v in value] if isinstance(value, list) else value


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
    if unknown := sorted(set(cfg) - set(schema)):
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


def check_head_section(head: dict, filename):
    """``model.head``: no flat key of the old layout (a ``ValueError`` naming its new key and the file); task
    sub-sections are dicts. Also called by ``build_model``, for configs stored before the split (ONNX metadata)."""
    for key in head:
        if key in MOVED_HEAD_KEYS:
            raise ValueError(f"model.head.{key} moved to model.head.{MOVED_HEAD_KEYS[key]} (file {filename})")
    for task in TASKS:
        if head.get(task) is not None and not isinstance(head[task], dict):
            raise ValueError(f"config key model.head.{task} must be a dict of {task} task settings (file {filename})")


def head_task_section(model_cfg: dict, task) -> dict:
    """``model.head.<task>`` of the ``model`` section (``{}`` when not set: the task module's defaults)."""
    return model_cfg["head"].get(task) or {}


def occupancy_grid_name(model_cfg: dict, filename=None) -> str:
    """The occupancy grid of the ``model`` section: ``model.head.occ.grid``, a name from
    ``perception.constants.OCC_GRIDS`` (``DEFAULT_OCC_GRID`` when not set); it also names the evaluation
    protocol and the occupancy labels (``data.occ_format``). Any other value is a ``ValueError`` naming the key."""
    name = head_task_section(model_cfg, "occ").get("grid", DEFAULT_OCC_GRID)
    if not isinstance(name, str) or name not in OCC_GRIDS:
        where = filename or getattr(model_cfg, "filename", None) or "<model config>"
        raise ValueError(f"config key model.head.occ.grid in {where}: {name!r} is not one of {sorted(OCC_GRIDS)}")
    return name


def _check_values(cfg: dict, filename):
    tasks = cfg["model"]["tasks"]
    if not tasks or any(t not in TASKS for t in tasks):
        raise ValueError(f"model.tasks must be a non-empty subset of {TASKS}, got {tasks!r} (file {filename})")
    if len(cfg["model"]["point_cloud_range"]) != 6:
        raise ValueError(f"model.point_cloud_range must have 6 numbers [x0, y0, z0, x1, y1, z1] (file {filename})")
    for section, key, allowed in (("train", "schedule", SCHEDULES), ("data", "occ_format", OCC_FORMATS),
                                  ("data", "modality_dropout_per", ("sample", "batch")),
                                  ("model", "occ_prior_fill", (None, "ground", "all"))):
        if cfg[section][key] not in allowed:
            raise ValueError(f"{section}.{key} must be one of {allowed}, got {cfg[section][key]!r} (file {filename})")
    for key, low in (("checkpoint_interval", 0), ("keep_checkpoints", -1)):
        value = cfg["train"][key]
        if not isinstance(value, int) or value < low:
            raise ValueError(f"train.{key} must be an integer >= {low}, got {value!r} (file {filename})")
    if cfg["model"]["lidar"] is None and cfg["model"]["camera"] is None:
        raise ValueError(f"model.lidar and model.camera are both None: enable at least one (file {filename})")
    for key in ("fusion", "head"):
        if cfg["model"][key] is None:
            raise ValueError(f"missing required config key model.{key} in {filename}")
    _check_model_rules(cfg, filename)
    camera = cfg["model"]["camera"]
    if camera is not None and "image_size" in camera:
        if tuple(camera["image_size"]) != tuple(cfg["data"]["image_size"]):
            raise ValueError(f"model.camera.image_size {camera['image_size']} != data.image_size "
                             f"{cfg['data']['image_size']} (file {filename})")


def _check_model_rules(cfg: dict, filename):
    """The rules across keys: old flat head keys, what reads LiDAR points, dropout, the occupancy grid and labels."""
    model = cfg["model"]
    check_head_section(model["head"], filename)
    if model["refiner"] is not None and model["lidar"] is None:
        raise ValueError(f"config key model.refiner in {filename}: the box refiner reads LiDAR points; "
                         "set model.refiner=None when model.lidar is None")
    if model["refiner"] is not None and "det" not in model["tasks"]:
        raise ValueError(f"config key model.refiner in {filename}: the box refiner refines the detected boxes; "
                         "set model.refiner=None when model.tasks has no 'det'")
    for task in (t for t in ("occ", "map") if head_task_section(model, t).get("lidar_cues") and model["lidar"] is None):
        raise ValueError(f"config key model.head.{task}.lidar_cues in {filename}: the {task} cues read LiDAR "
                         "points; set it False when model.lidar is None")
    dropout = {k: v for k, v in cfg["data"]["modality_dropout"].items() if v}
    if dropout and (model["lidar"] is None or model["camera"] is None):  # the sample would keep no input it reads
        raise ValueError(f"config key data.modality_dropout in {filename}: {dropout} drops a modality of a model "
                         "with one encoder; set every rate to 0 when model.lidar or model.camera is None")
    grid = occupancy_grid_name(model, filename)
    if "occ" in model["tasks"] and cfg["data"]["occ_format"] != grid:
        raise ValueError(
            f"data.occ_format={cfg['data']['occ_format']!r} does not match model.head.occ.grid={grid!r} (file "
            f"{filename}): the occupancy labels must be on the grid the head predicts; set both to 'occ3d' or both "
            f"to 'openocc' (configs/tiny_openocc.py shows the OpenOccupancy head settings)"
        )
    for key in ("occ_prior_fill", "occ_ground_from_map"):  # both change a fusion model's Occ3D labels without LiDAR
        if model[key] is not None and (model["lidar"] is None or model["camera"] is None
                                       or ("occ" in model["tasks"] and grid != "occ3d")):
            raise ValueError(f"config key model.{key} in {filename}: it changes a fusion model's Occ3D occupancy on "
                             "frames without LiDAR; set it None without model.lidar or model.camera, or on another "
                             "grid")
    threshold = model["occ_ground_from_map"]
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise ValueError(f"config key model.occ_ground_from_map in {filename}: a map probability in (0, 1] or None, "
                         f"got {threshold!r}")
    offsets = model["map_logit_offsets"]  # runtime/map_offsets.py
    if offsets is not None and ("map" not in model["tasks"] or not isinstance(offsets, (list, tuple))
                                or len(offsets) != len(BEV_MAP_CLASSES)
                                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in offsets)):
        raise ValueError(f"config key model.map_logit_offsets in {filename}: one finite logit per map class "
                         f"{list(BEV_MAP_CLASSES)} (needs the 'map' task) or None, got {offsets!r}")


def load_config(path, overrides=None) -> Config:
    """Load a config file (``_base_`` merged), apply ``overrides`` (``['a.b=c', ...]``) and validate.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the key and the file for an
    unknown key, a missing required key or an invalid value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    raw, filename = MMConfig.fromfile(str(path)).to_dict(), str(path)
    apply_overrides(raw, overrides, filename)
    if unknown := sorted(set(raw) - set(SCHEMA)):
        raise ValueError(f"unknown top-level config key(s) {unknown} in {filename}; allowed: {sorted(SCHEMA)}")
    cfg = {}
    for section, schema in SCHEMA.items():
        if section not in raw:
            raise ValueError(f"missing required config section {section!r} in {filename}")
        cfg[section] = _validate(raw[section], schema, section, filename)
    _check_values(cfg, filename)
    return _wrap(cfg, filename)
