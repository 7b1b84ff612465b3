"""Inference stage: predictor and post-processing."""

from .postprocess import POSTPROCESS, postprocess
from .predictor import Prediction, Predictor

__all__ = ["POSTPROCESS", "Prediction", "Predictor", "postprocess"]
