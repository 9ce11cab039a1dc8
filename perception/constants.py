"""Class lists and grids shared by the data layer, the model and the evaluation.

Frames (see ``shared/docs/reference.md``):
- LiDAR frame (nuScenes LIDAR_TOP): x right, y forward, z up, relative to the car.
- Ego frame: x forward, y left, z up; origin at the rear-axle centre on the ground.
- Global frame: map coordinates (metres).

Grid layout convention used everywhere in this project: a 2D BEV tensor is indexed ``[..., ix, iy]``
(first spatial axis along x, second along y) and a 3D volume ``[ix, iy, iz]``, the same layout as the
Occ3D ``labels.npz`` arrays. Cell ``i`` along an axis covers ``[lo + i * size, lo + (i + 1) * size)``.
"""

from dataclasses import dataclass

# nuScenes detection classes, in the order of the devkit's detection config (class index = position).
DETECTION_CLASSES = (
    "car",
    "truck",
    "construction_vehicle",
    "bus",
    "trailer",
    "barrier",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_cone",
)

# BEV map segmentation classes (BEVFusion protocol). ``divider`` = road_divider + lane_divider.
BEV_MAP_CLASSES = ("drivable_area", "ped_crossing", "walkway", "stop_line", "carpark_area", "divider")

# Occ3D-nuScenes classes: index = label value in ``semantics``; 17 = free.
OCC3D_CLASSES = (
    "others",
    "barrier",
    "bicycle",
    "bus",
    "car",
    "construction_vehicle",
    "motorcycle",
    "pedestrian",
    "traffic_cone",
    "trailer",
    "truck",
    "driveable_surface",
    "other_flat",
    "sidewalk",
    "terrain",
    "manmade",
    "vegetation",
    "free",
)
OCC3D_FREE = 17

# OpenOccupancy (nuScenes-Occupancy): 0 = empty/noise, 1-16 semantic (same order as OCC3D_CLASSES[1:17]).
OPENOCC_CLASSES = ("empty",) + OCC3D_CLASSES[1:17]

CAMERA_NAMES = (
    "CAM_FRONT",
    "CAM_FRONT_RIGHT",
    "CAM_FRONT_LEFT",
    "CAM_BACK",
    "CAM_BACK_LEFT",
    "CAM_BACK_RIGHT",
)

# s: the largest gap between a camera image and the LiDAR stamp it is paired with (FrameAssembler, the node,
# replay); nuScenes cameras fire within ~50 ms of the LiDAR sweep passing them, and at 12 Hz a camera has an
# image within ~42 ms of any instant, so 0.12 s pairs every real frame and leaves out a stopped camera.
MAX_CAMERA_LIDAR_DELAY_S = 0.12

# Devkit evaluation range per detection class (metres, ``detection_cvpr_2019``).
CLASS_RANGE = {
    "car": 50.0,
    "truck": 50.0,
    "bus": 50.0,
    "trailer": 50.0,
    "construction_vehicle": 50.0,
    "pedestrian": 40.0,
    "motorcycle": 40.0,
    "bicycle": 40.0,
    "traffic_cone": 30.0,
    "barrier": 30.0,
}


@dataclass(frozen=True)
class GridSpec:
    """An axis-aligned voxel/pixel grid: ``lower`` and ``upper`` bounds (metres) and cell ``size`` per axis."""

    lower: tuple
    upper: tuple
    size: tuple

    @property
    def shape(self):
        return tuple(int(round((hi - lo) / s)) for lo, hi, s in zip(self.lower, self.upper, self.size, strict=True))

    def centers(self, axis):
        """Cell-centre coordinates (metres) along ``axis``."""
        n = self.shape[axis]
        return [self.lower[axis] + (i + 0.5) * self.size[axis] for i in range(n)]


# BEVFusion map grid: 200 x 200 cells of 0.5 m over [-50, 50] m in the LiDAR frame.
BEV_MAP_GRID = GridSpec(lower=(-50.0, -50.0), upper=(50.0, 50.0), size=(0.5, 0.5))
# Occ3D grid: 200 x 200 x 16 voxels of 0.4 m, ego frame.
OCC3D_GRID = GridSpec(lower=(-40.0, -40.0, -1.0), upper=(40.0, 40.0, 5.4), size=(0.4, 0.4, 0.4))
# OpenOccupancy grid: 512 x 512 x 40 voxels of 0.2 m, LiDAR frame.
OPENOCC_GRID = GridSpec(lower=(-51.2, -51.2, -5.0), upper=(51.2, 51.2, 3.0), size=(0.2, 0.2, 0.2))

# Occupancy grids a config names in ``model.head.occ.grid`` (default ``DEFAULT_OCC_GRID``); the name also selects
# the evaluation protocol (Occ3D mIoU + RayIoU, or OpenOccupancy with ``--openocc-root``) and must equal
# ``data.occ_format`` (the labels trained on). ``perception.config.occupancy_grid_name`` reads it from a config.
OCC_GRIDS = {"occ3d": OCC3D_GRID, "openocc": OPENOCC_GRID}
DEFAULT_OCC_GRID = "occ3d"

# The tasks of the multi-task model (``model.tasks`` is a non-empty subset). This order is the order in which
# the head builds, runs, sums the losses of and decodes its task modules.
TASKS = ("det", "map", "occ")
