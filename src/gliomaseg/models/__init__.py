"""Networks, one file each, registered by name (see :mod:`.registry`), each checking its input
stride (:mod:`.base`)."""

from . import attention_resunet, encoder_unet, residual_inception_unet, resunet, unet, unet3d  # noqa: F401  (each registers its network)
from .registry import MODELS, create_model, register

__all__ = ["MODELS", "create_model", "register"]
