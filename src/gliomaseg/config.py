"""Typed configuration: plain dataclasses, read from and written to YAML.

A config file holds up to five sections (``model``, ``data``, ``augment``, ``train``,
``inference``); a missing key takes the default below, an unknown key is an error, so a typo
never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


@dataclass
class ModelConfig:
    """Network choice. ``name`` is a key of :data:`gliomaseg.models.MODELS`."""

    name: str = "unet"
    in_channels: int = 3
    out_channels: int = 1
    width: int = 32  # features of the first level; doubled at every level down
    # Local torchvision/timm state dict for the network's encoder (networks with an `encoder`
    # that has `load_pretrained`); read once when training starts. Nothing is downloaded.
    encoder_weights: str = ""


@dataclass
class DataConfig:
    """Preprocessing shared by training, evaluation and ``segment``.

    ``image_size``: side in pixels of the square the network sees. ``crop_to_brain``: crop each
    volume to the square box around the brain before resizing (see
    :func:`gliomaseg.data.preprocessing.brain_box`).
    """

    dataset: str = "auto"  # "lgg" (kaggle_3m slices), "brats" (NIfTI cases), "auto": from the folder
    image_size: int = 256  # BraTS 2D networks: side of the square in-plane training crop (voxels)
    crop_to_brain: bool = False
    crop_margin: int = 8  # pixels of background kept around the brain box
    # BraTS 2D networks (2.5D): neighbouring axial slices on each side stacked as extra channels,
    # so ``model.in_channels = 4 * (2 * context_slices + 1)``.
    context_slices: int = 0
    patch_size: tuple[int, int, int] = (96, 96, 96)  # BraTS 3D networks: training patch, voxels


@dataclass
class AugmentConfig:
    """On-the-fly augmentation, applied per batch (see :mod:`gliomaseg.data.augment`)."""

    flip: bool = True
    rotate_degrees: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    intensity: float = 0.1  # per-channel gain and bias drawn from +-intensity
    # Probability that each of the pre- and post-contrast channels is replaced by FLAIR, as
    # in the LGG patients whose missing sequences were filled with FLAIR copies.
    flair_copy: float = 0.0


@dataclass
class TrainConfig:
    """Optimisation recipe: Adam, ReduceLROnPlateau and early stopping on validation
    per-patient Dice, best checkpoint kept."""

    loss: str = "bce_dice"
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    max_epochs: int = 100
    slices_per_epoch: int = 0  # 0: one pass over the training slices
    tumor_fraction: float = 0.5  # share of tumor slices drawn per epoch (oversampling)
    plateau_patience: int = 5  # epochs without validation gain before the LR is lowered
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    early_stop_patience: int = 15  # epochs without validation gain before training stops
    bf16: bool = True  # bfloat16 autocast on CPUs that support it
    channels_last: bool = True
    threads: int = 0  # 0: all cores
    seed: int = 0


@dataclass
class InferenceConfig:
    """Thresholding and post-processing of predicted probabilities."""

    threshold: float = 0.5
    postprocess: str = "none"  # "none" | "largest-3d" | "min-size:N" (see inference.postprocess)
    tta: str = "none"  # "none" | "flip" | "flip+rot90" (see inference.predictor.TTA_TRANSFORMS)
    batch_size: int = 32
    overlap: float = 0.5  # BraTS 3D networks: sliding-window overlap, fraction of the patch


@dataclass
class Config:
    """Everything that defines a run; saved beside its weights as ``config.yaml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "Config":
        """Build from a nested dict.

        Raises:
            ConfigError: unknown section or key, or a value of the wrong type.
        """
        return _build(cls, raw or {}, source)


def load_config(path: str | Path) -> Config:
    """Read a YAML config file.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds an invalid key or value.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return Config.from_dict(raw, source=str(path))


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path``."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(t, v, where) for t, v in zip(typing.get_args(hint), value))
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if hint is int and float(value) != int(value):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return hint(value)
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{where}: expected text, got {value!r}")
    return value
