"""BEV map segmentation ground truth from the nuScenes map expansion (``maps/expansion/<location>.json``).

Output: ``(6, nx, ny)`` uint8 {0, 1} for ``BEV_MAP_CLASSES`` on a grid in the keyframe LIDAR frame
(default ``BEV_MAP_GRID``: 200 x 200 cells of 0.5 m over [-50, 50] m), indexed ``[class, ix, iy]``: the first
axis runs along LiDAR x. ``divider`` is the union of ``road_divider`` and ``lane_divider``.

How: ``NuScenesMap.get_map_mask`` cuts a patch centred on the grid centre (global), rotated by the heading
of the LiDAR x axis in the global frame (``patch_angle``, degrees CCW); the patch's local x is then LiDAR x.
Its masks are indexed ``[row, col]`` = ``[local y, local x]`` (row 0 at the lowest y), so they are transposed
to ``[ix, iy]``. The map is 2D: the LiDAR's small pitch/roll are ignored.
"""

import functools
import os

import numpy as np

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID

# Map-expansion layers that make each BEV class (``divider`` merges two line layers).
BEV_CLASS_LAYERS = {
    "drivable_area": ("drivable_area",),
    "ped_crossing": ("ped_crossing",),
    "walkway": ("walkway",),
    "stop_line": ("stop_line",),
    "carpark_area": ("carpark_area",),
    "divider": ("road_divider", "lane_divider"),
}


def map_json_path(dataroot, location):
    """``<dataroot>/maps/expansion/<location>.json``."""
    return os.path.join(str(dataroot), "maps", "expansion", f"{location}.json")


@functools.lru_cache(maxsize=16)
def get_nusc_map(dataroot, location):
    """The ``NuScenesMap`` of ``location`` under ``dataroot``, loaded once per (dataroot, location)."""
    from nuscenes.map_expansion.map_api import NuScenesMap  # heavy: kept off the runtime's import path

    path = map_json_path(dataroot, location)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"map expansion file not found: {path}")
    return NuScenesMap(dataroot=str(dataroot), map_name=location)


def rasterize_bev_map(nusc_map, lidar2global, grid=BEV_MAP_GRID):
    """Rasterize the 6 BEV map classes around the LiDAR.

    Args:
        nusc_map: a ``NuScenesMap``.
        lidar2global: 4x4, keyframe LiDAR -> global (metres).
        grid: a 2D ``GridSpec`` in the LiDAR frame.

    Returns:
        ``(6, nx, ny)`` uint8 {0, 1}, ``[class, ix, iy]`` (see module docstring).
    """
    lidar2global = np.asarray(lidar2global, dtype=np.float64)
    if lidar2global.shape != (4, 4):
        raise ValueError(f"rasterize_bev_map: 'lidar2global' must be 4x4, got {lidar2global.shape}")
    nx, ny = grid.shape[:2]
    size_x = grid.upper[0] - grid.lower[0]
    size_y = grid.upper[1] - grid.lower[1]
    centre_lidar = np.array([(grid.lower[0] + grid.upper[0]) / 2, (grid.lower[1] + grid.upper[1]) / 2, 0.0, 1.0])
    centre_global = lidar2global @ centre_lidar
    heading = lidar2global[:3, :3] @ np.array([1.0, 0.0, 0.0])
    patch_angle = np.degrees(np.arctan2(heading[1], heading[0]))
    # patch_box = (centre x, centre y, height = extent along local y, width = extent along local x)
    patch_box = (centre_global[0], centre_global[1], size_y, size_x)
    layers = [layer for cls in BEV_MAP_CLASSES for layer in BEV_CLASS_LAYERS[cls]]
    masks = nusc_map.get_map_mask(patch_box, patch_angle, layers, canvas_size=(ny, nx))  # (L, ny, nx)
    by_layer = dict(zip(layers, masks, strict=True))
    out = np.zeros((len(BEV_MAP_CLASSES), nx, ny), np.uint8)
    for c, cls in enumerate(BEV_MAP_CLASSES):
        merged = np.zeros((ny, nx), bool)
        for layer in BEV_CLASS_LAYERS[cls]:
            merged |= by_layer[layer].astype(bool)
        out[c] = merged.T  # [iy, ix] -> [ix, iy]
    return out


def make_bev_map_fn(dataroot, location, grid=BEV_MAP_GRID):
    """A ``Sample -> (6, nx, ny)`` function for :attr:`Sample.bev_map`, or ``None`` when the sample has no
    map location or ``maps/expansion/<location>.json`` is absent under ``dataroot``."""
    if not location or dataroot is None or not os.path.isfile(map_json_path(dataroot, location)):
        return None

    def bev_map(sample):
        return rasterize_bev_map(get_nusc_map(str(dataroot), location), sample.lidar2global, grid)

    return bev_map
