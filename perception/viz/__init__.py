"""Visualizations: bird's-eye view (:func:`render_bev`) and the six cameras (:func:`render_cameras`)."""

from perception.viz.bev import BevLayers, layers_from_sample, render_bev
from perception.viz.cameras import render_cameras

__all__ = ["BevLayers", "layers_from_sample", "render_bev", "render_cameras"]
