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


def empty_prediction(notes, bev_shape=None, occ_shape=None, free_index=0):
    """The result of a frame with no usable modality: no boxes, zero BEV probabilities ``bev_shape`` (None: no map
    task), an all-free occupancy ``occ_shape`` filled with ``free_index`` (None: no occupancy task)."""
    return Prediction(
        boxes=np.zeros((0, 9), np.float32), scores=np.zeros((0,), np.float32), labels=np.zeros((0,), np.int64),
        class_names=[], bev_probs=None if bev_shape is None else np.zeros(bev_shape, np.float32),
        occ_labels=None if occ_shape is None else np.full(occ_shape, free_index, np.uint8),
        timings_ms={"preprocess": 0.0, "model": 0.0, "postprocess": 0.0},
        warnings=notes + ["no usable modality: empty result"],
    )
