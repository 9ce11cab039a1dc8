"""What :class:`perception.runtime.Predictor` returns for one frame: a :class:`Prediction` (numpy arrays)."""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prediction:
    """Model output for one frame. Boxes ``(K, 9)`` x, y, z, l, w, h, yaw, vx, vy in the LiDAR frame;
    ``bev_probs (6, 200, 200)`` on ``BEV_MAP_GRID`` (LiDAR frame) or None when 'map' is off;
    ``occ_labels (200, 200, 16)`` uint8 on the occupancy grid (Occ3D: ego frame) or None when 'occ' is off;
    ``timings_ms``: ``preprocess``, ``model``, ``postprocess``; ``warnings``: what was degraded; ``model``: which
    model ran the frame: ``'main'`` or a fallback's kind (``'no_lidar'``, ``'no_cameras'``)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list
    bev_probs: np.ndarray | None = None
    occ_labels: np.ndarray | None = None
    timings_ms: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    model: str = "main"
