"""Inference: :class:`Predictor` is the only thing that runs the model (eval, ROS 2 nodes, replay).

A live caller builds a :class:`Frame` (points, cameras with calibration, ``lidar2ego``) and gets a
:class:`Prediction`. This package imports the data layer and the models only: never ``perception.training``
or ``perception.eval``.
"""

from perception.runtime.fallback import FALLBACK_KINDS, add_fallback_models
from perception.runtime.frame import CameraFrame, Frame
from perception.runtime.predictor import Prediction, Predictor

__all__ = ["FALLBACK_KINDS", "CameraFrame", "Frame", "Prediction", "Predictor", "add_fallback_models"]
