"""Synthetic world versions and the knobs of world v2.

``v1`` is the original world (:mod:`perception.synth.scene`: one arc-shaped street, flat ground, one LiDAR
intensity and one flat camera colour per class); it is kept byte-for-byte. ``v2``
(:mod:`perception.synth.scene_v2`) has per-instance materials that overlap across classes, LiDAR range noise
and dropout, camera noise and shading, a non-flat terrain with raised walkways, varied road layouts (curves,
T and cross junctions, lane counts and widths) and every class at random plausible places.

:class:`WorldParams` is the one home of every v2 knob (default and help string); the CLI arguments
(:func:`add_world_arguments`) and the ``synth_world.json`` record written beside the tables are derived from it.
Units: metres, seconds, metres per second, LiDAR intensity 0-255, camera RGB 0-255.
"""

import dataclasses
import json
import math
from dataclasses import dataclass, field

WORLD_VERSIONS = ("v1", "v2")
RECORD_FILE = "synth_world.json"  # written at the top of the dataroot


def _knob(default, help_text):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class WorldParams:
    """Every knob of world v2 (defaults give the standard v2 world)."""

    # LiDAR (HDL-32E-like) measurement model.
    lidar_range_noise: float = _knob(0.02, "LiDAR range noise: std (m) of the Gaussian error along each ray")
    lidar_dropout: float = _knob(0.02, "LiDAR base dropout: probability (0-1) that a return is lost")
    lidar_dropout_grazing: float = _knob(
        0.1, "extra LiDAR dropout at grazing incidence: added probability times (1 - |cos incidence|)^2")
    lidar_dropout_dark: float = _knob(
        0.1, "extra LiDAR dropout on dark surfaces: added probability times max(0, 1 - intensity / 12)")
    intensity_noise: float = _knob(0.15, "relative std of the per-point LiDAR intensity noise")
    box_margin: float = _knob(
        0.05, "gap (m) between an object's visible surfaces and its annotated box, so noisy returns stay inside")
    # Camera.
    camera_noise: float = _knob(3.0, "std of the per-pixel camera noise (RGB 0-255 units)")
    # Terrain.
    terrain_grade: float = _knob(0.015, "largest overall ground slope of a scene (rise over run)")
    terrain_amplitude: float = _knob(0.35, "amplitude (m) of the ground undulation on top of the slope")
    terrain_wavelength: float = _knob(90.0, "shortest wavelength (m) of the ground undulation")
    kerb_height: float = _knob(0.15, "height (m) of walkways and verges above the road surface")
    # Road layout.
    max_lanes: int = _knob(3, "most lanes per driving direction on a road (1 to this)")
    lane_width_min: float = _knob(2.9, "narrowest lane (m)")
    lane_width_max: float = _knob(3.8, "widest lane (m)")
    max_curvature: float = _knob(0.014, "sharpest road curve (1/m; 0.014 = 71 m radius)")
    junction_prob: float = _knob(0.8, "probability that a scene has a junction (T or cross) near the ego's path")
    # Actors.
    ego_speed_min: float = _knob(3.0, "slowest ego speed (m/s)")
    ego_speed_max: float = _knob(11.0, "fastest ego speed (m/s)")
    traffic_density: float = _knob(1.0, "multiplier on moving vehicles per metre of lane")
    parked_density: float = _knob(1.0, "multiplier on parked vehicles per metre of kerb")
    pedestrian_density: float = _knob(1.0, "multiplier on pedestrians per metre of walkway")
    raster_resolution: float = _knob(0.1, "cell size (m) of the ground class / paint rasters")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
                raise ValueError(f"world parameter {f.name} must be a number >= 0, got {v!r}")
        for name in ("lidar_dropout", "lidar_dropout_grazing", "lidar_dropout_dark", "junction_prob"):
            if getattr(self, name) > 1:
                raise ValueError(f"world parameter {name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.max_lanes < 1 or int(self.max_lanes) != self.max_lanes:
            raise ValueError(f"world parameter max_lanes must be an integer >= 1, got {self.max_lanes!r}")
        if not 2.0 <= self.lane_width_min <= self.lane_width_max:
            raise ValueError("world parameters need 2 <= lane_width_min <= lane_width_max, got "
                             f"{self.lane_width_min!r}, {self.lane_width_max!r}")
        if not 0 < self.ego_speed_min <= self.ego_speed_max:
            raise ValueError("world parameters need 0 < ego_speed_min <= ego_speed_max, got "
                             f"{self.ego_speed_min!r}, {self.ego_speed_max!r}")
        if self.max_curvature > 0.05:
            raise ValueError(f"world parameter max_curvature must be <= 0.05 (1/m), got {self.max_curvature!r}")
        if not 0.02 <= self.raster_resolution <= 0.5:
            raise ValueError("world parameter raster_resolution must be in [0.02, 0.5] m, "
                             f"got {self.raster_resolution!r}")
        if self.terrain_wavelength < 20:
            raise ValueError(f"world parameter terrain_wavelength must be >= 20 m, got {self.terrain_wavelength!r}")
        if self.terrain_grade > 0.05 or self.terrain_amplitude > 2.0 or self.kerb_height > 0.4:
            raise ValueError("world parameters need terrain_grade <= 0.05, terrain_amplitude <= 2 m, "
                             "kerb_height <= 0.4 m")


def normalize_world(world):
    """``"v1"``, ``"v2"``, a :class:`WorldParams` (v2 with those knobs) or ``None`` (v1) -> ``(version, params)``
    with ``params`` ``None`` for v1."""
    if world is None or world == "v1":
        return "v1", None
    if world == "v2":
        return "v2", WorldParams()
    if isinstance(world, WorldParams):
        return "v2", world
    raise ValueError(f"world must be one of {WORLD_VERSIONS} or a WorldParams, got {world!r}")


def world_record(world):
    """The JSON-able record of a world (written as ``synth_world.json``): version and, for v2, every knob."""
    version, params = normalize_world(world)
    rec = {"world": version}
    if params is not None:
        rec["params"] = dataclasses.asdict(params)
    return rec


def write_world_record(dataroot, world):
    """Write :func:`world_record` to ``<dataroot>/synth_world.json`` (sorted keys, deterministic)."""
    import os

    with open(os.path.join(dataroot, RECORD_FILE), "w") as f:
        json.dump(world_record(world), f, indent=1, sort_keys=True)


def read_world_record(dataroot):
    """``(version, WorldParams or None)`` from a dataroot's ``synth_world.json``."""
    import os

    with open(os.path.join(dataroot, RECORD_FILE)) as f:
        rec = json.load(f)
    return normalize_world(WorldParams(**rec["params"]) if rec["world"] == "v2" else rec["world"])


def add_world_arguments(parser):
    """Add ``--world {v1,v2}`` (default v2) and one ``--<knob>`` per :class:`WorldParams` field to ``parser``."""
    group = parser.add_argument_group("synthetic world", "world version and the knobs of world v2 (ignored for v1)")
    group.add_argument("--world", choices=WORLD_VERSIONS, default="v2",
                       help="synthetic world version: v1 (original, flat-colour classes) or v2 (default: %(default)s)")
    for f in dataclasses.fields(WorldParams):
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(f.default), default=f.default,
                           metavar=type(f.default).__name__.upper(),
                           help=f"{f.metadata['help']} (default: %(default)s)")
    return group


def world_from_args(args):
    """``"v1"`` or the :class:`WorldParams` from parsed :func:`add_world_arguments` arguments (a ``ValueError``
    names a bad knob)."""
    if getattr(args, "world", "v2") == "v1":
        return "v1"
    kwargs = {f.name: getattr(args, f.name) for f in dataclasses.fields(WorldParams) if hasattr(args, f.name)}
    return WorldParams(**kwargs)
