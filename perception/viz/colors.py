"""Colours of the visualizations: RGB tuples in [0, 1] (matplotlib) or 0-255 (PIL, via :func:`to_uint8`)."""

import numpy as np
from matplotlib import colormaps

from perception.constants import BEV_MAP_CLASSES, DETECTION_CLASSES, OCC3D_CLASSES

# One colour per detection class (index = position in DETECTION_CLASSES); matplotlib's tab10.
DETECTION_COLORS = tuple(tuple(colormaps["tab10"](i)[:3]) for i in range(len(DETECTION_CLASSES)))
# Colour of predicted boxes (drawn dashed / thinner on top of the GT).
PRED_COLOR = (1.0, 0.1, 0.6)

BEV_MAP_COLORS = {
    "drivable_area": (0.55, 0.55, 0.55),
    "ped_crossing": (0.9, 0.5, 0.1),
    "walkway": (0.2, 0.6, 0.3),
    "stop_line": (0.9, 0.1, 0.1),
    "carpark_area": (0.3, 0.4, 0.8),
    "divider": (1.0, 0.85, 0.1),
}
assert tuple(BEV_MAP_COLORS) == BEV_MAP_CLASSES

# Occ3D / SurroundOcc semantic classes 0..16 (index = label), nuScenes-lidarseg-like colours; 17 = free.
OCC3D_COLORS = (
    (0.0, 0.0, 0.0),  # others
    (1.0, 0.47, 0.2),  # barrier
    (1.0, 0.75, 0.8),  # bicycle
    (1.0, 1.0, 0.0),  # bus
    (0.0, 0.59, 0.96),  # car
    (0.0, 1.0, 1.0),  # construction_vehicle
    (0.78, 0.71, 0.0),  # motorcycle
    (1.0, 0.0, 0.0),  # pedestrian
    (1.0, 0.94, 0.59),  # traffic_cone
    (0.53, 0.24, 0.12),  # trailer
    (0.63, 0.13, 0.94),  # truck
    (1.0, 0.0, 1.0),  # driveable_surface
    (0.55, 0.55, 0.55),  # other_flat
    (0.29, 0.0, 0.29),  # sidewalk
    (0.59, 0.94, 0.31),  # terrain
    (0.9, 0.9, 0.98),  # manmade
    (0.0, 0.69, 0.0),  # vegetation
    (1.0, 1.0, 1.0),  # free
)
assert len(OCC3D_COLORS) == len(OCC3D_CLASSES)


def scalar_colors(values, lo, hi, cmap="viridis"):
    """``(N,)`` values -> ``(N, 3)`` RGB in [0, 1] through ``cmap``, clipped to ``[lo, hi]``."""
    t = np.clip((np.asarray(values, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return colormaps[cmap](t)[:, :3]


def to_uint8(rgb):
    """RGB in [0, 1] (tuple or array) -> uint8 0-255 of the same shape."""
    return np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
