"""Training stage."""

from .trainer import Trainer, validate

__all__ = ["Trainer", "validate"]
