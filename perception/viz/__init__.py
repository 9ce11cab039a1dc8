"""Visualizations: bird's-eye view (:func:`render_bev`), the six cameras (:func:`render_cameras`) and the
picture files of ``perception show`` / ``perception demo`` (:mod:`perception.viz.pictures`)."""

from perception.viz.bev import BevLayers, layers_from_sample, render_bev
from perception.viz.cameras import render_cameras
from perception.viz.pictures import (
    SHOW_MIN_SCORE,
    render_prediction,
    render_sample,
    render_surroundocc_frame,
    shown_boxes,
)

__all__ = [
    "SHOW_MIN_SCORE",
    "BevLayers",
    "layers_from_sample",
    "render_bev",
    "render_cameras",
    "render_prediction",
    "render_sample",
    "render_surroundocc_frame",
    "shown_boxes",
]
