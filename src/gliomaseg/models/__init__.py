"""Networks, one file each, registered by name (see :mod:`.registry`)."""

from . import unet  # noqa: F401  (registers "unet")
from .registry import MODELS, create_model, register

__all__ = ["MODELS", "create_model", "register"]
