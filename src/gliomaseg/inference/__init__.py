"""Inference stage: one predictor, pluggable inferers, test-time augmentation, post-processing."""

from .predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
