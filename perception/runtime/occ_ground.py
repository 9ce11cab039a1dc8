"""The occupancy's ground follows the BEV map on frames a fusion model runs without LiDAR.

Why. Without LiDAR the occupancy head finds where the ground is (with the prior's fill, ``occ_prior.py``) but not
which ground it is: on val its driveable surface and sidewalk fall far below what the same frame's BEV map says
about the road and the walkways (docs/benchmarks.md, candidate I). Both are outputs of one prediction; where
they disagree on the kind of ground, the map's head, trained on the map labels, has the better evidence.

What. With ``model.occ_ground_from_map`` = T, every voxel whose label is a ground class (:data:`GROUND`) becomes
``driveable_surface`` where the map's ``drivable_area`` probability at its column is >= T, else ``sidewalk``
where ``walkway`` is >= T; else it keeps its label. Free and occupied voxels stay as they are. The map is the one
the prediction reports (after the map memory). Frames with LiDAR and models without a LiDAR branch are untouched.

Frames. Occupancy: ``OCC3D_GRID`` (ego frame, 0.4 m voxels, labels ``OCC3D_CLASSES``). Map: ``BEV_MAP_GRID``
(LiDAR frame, 0.5 m cells, ``bev_probs[k, ix, iy]``). A column's centre ``(x, y, 0)`` in the ego frame is taken
into the LiDAR frame by ``inv(lidar2ego)`` and falls in one map cell; columns outside the map keep their labels.
"""

import numpy as np

from perception.constants import BEV_MAP_CLASSES, BEV_MAP_GRID, OCC3D_CLASSES, OCC3D_GRID
from perception.runtime.occ_prior import fill_classes

GROUND = fill_classes("ground")  # the label values of the ground classes, as the prior's 'ground' fill has them
# map class -> the Occ3D ground class it decides, in order of precedence
MAP_TO_GROUND = (("drivable_area", "driveable_surface"), ("walkway", "sidewalk"))


def map_cells_of_columns(lidar2ego):
    """``(ix, iy, inside)``, each ``(200, 200)``: the ``BEV_MAP_GRID`` cell (LiDAR frame) under each ``OCC3D_GRID``
    column centre (ego frame, z = 0), for a ``lidar2ego`` (4, 4) transform; ``inside`` False off the map."""
    ego2lidar = np.linalg.inv(np.asarray(lidar2ego, np.float64))
    x, y = np.meshgrid(OCC3D_GRID.centers(0), OCC3D_GRID.centers(1), indexing="ij")  # (200, 200) ego, metres
    lx = ego2lidar[0, 0] * x + ego2lidar[0, 1] * y + ego2lidar[0, 3]  # LiDAR frame, metres
    ly = ego2lidar[1, 0] * x + ego2lidar[1, 1] * y + ego2lidar[1, 3]
    ix = np.floor((lx - BEV_MAP_GRID.lower[0]) / BEV_MAP_GRID.size[0]).astype(np.int64)
    iy = np.floor((ly - BEV_MAP_GRID.lower[1]) / BEV_MAP_GRID.size[1]).astype(np.int64)
    nx, ny = BEV_MAP_GRID.shape
    inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    return np.clip(ix, 0, nx - 1), np.clip(iy, 0, ny - 1), inside


def ground_from_map(occ_labels, bev_probs, lidar2ego, threshold):
    """``(labels (200, 200, 16) uint8, changed)``: ``occ_labels`` (``OCC3D_GRID``, not modified) with each ground
    voxel relabelled from ``bev_probs (6, 200, 200)`` (``BEV_MAP_GRID``) as the module says; ``changed`` counts the
    voxels whose label changed."""
    if occ_labels.shape != OCC3D_GRID.shape or bev_probs.shape != (len(BEV_MAP_CLASSES), *BEV_MAP_GRID.shape):
        raise ValueError(f"ground_from_map: occupancy {occ_labels.shape} must be {OCC3D_GRID.shape} and map "
                         f"{bev_probs.shape} must be {(len(BEV_MAP_CLASSES), *BEV_MAP_GRID.shape)}")
    ix, iy, inside = map_cells_of_columns(lidar2ego)
    column = np.full(ix.shape, -1, np.int64)  # (200, 200): the ground class each column's map decides, -1 none
    for map_name, ground_name in reversed(MAP_TO_GROUND):  # the first pair is written last: it wins
        probs = np.asarray(bev_probs[BEV_MAP_CLASSES.index(map_name)])[ix, iy]  # (200, 200)
        column[inside & (probs >= threshold)] = OCC3D_CLASSES.index(ground_name)
    relabel = np.isin(occ_labels, GROUND) & (column >= 0)[..., None]  # (200, 200, 16)
    out = np.where(relabel, column[..., None], occ_labels).astype(np.uint8)
    return out, int((out != occ_labels).sum())
