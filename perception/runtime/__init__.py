"""Inference: :class:`Predictor` is the only thing that runs the model (eval, ROS 2 nodes, replay)."""

from perception.runtime.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
