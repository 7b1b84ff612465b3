"""Typed configuration: plain dataclasses, read from and written to YAML.

A config file holds up to six sections (``model``, ``data``, ``augment``, ``train``,
``inference``, ``runtime``); a missing key takes the default below, an unknown key is an error,
so a typo never silently falls back to a default. Values are checked for type and range when
the file is read (:meth:`Config.check`); checks that need the network registry or the dataset
types run right after (:func:`gliomaseg.training.checks.check_config`), before any data is read.

``--set section.key=value`` overrides (:func:`apply_overrides`) are applied to the raw mapping,
so they get the same checks as the file.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

POSTPROCESS_CHOICES = ("none", "largest-3d", "min-size:N")
TTA_CHOICES = ("none", "flip", "flip+rot90")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
BANK_CHOICES = ("memory", "disk")
SCHEDULE_CHOICES = ("plateau", "poly")
OPTIMIZER_CHOICES = ("adam", "sgd")
TUMOR_SAMPLING_CHOICES = ("slice", "case", "region")
STANDARDIZE_CHOICES = ("none", "histogram")
# Brain-intensity percentiles whose values are the landmarks of histogram standardisation
# (Nyul et al. 2000: the 1st and 99th as the ends of the scale, deciles between).
LANDMARK_PERCENTILES = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)


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
    # Fine-tuning: every weight of the network starts from this gliomaseg model (a bundled
    # name such as ``lgg``, a .safetensors file or a run folder) whose network is the same
    # (name, channels, width); read once when training starts.
    init_weights: str = ""
    # When init_weights is an ensemble: the member (0-based) training starts from; -1 for none.
    init_member: int = -1
    # Networks averaged at inference (a fold ensemble written by `gliomaseg ensemble`, see
    # gliomaseg.models.ensemble); training builds and trains one network (1).
    members: int = 1
    # Mixed-resolution ensembles of slice networks: the side (pixels) each member was trained at,
    # when they differ; the ensemble runs on data.image_size (the largest) and resizes for each
    # member (gliomaseg.models.ensemble). Empty: every member at data.image_size.
    member_sizes: tuple[int, ...] = ()


@dataclass
class DataConfig:
    """Dataset type and preprocessing, shared by training, evaluation and ``segment``.

    Every field means one thing for every dataset type; which fields a type uses is checked
    when the config is loaded:

    - ``dataset``: a registered dataset type (``kaggle3m``, ``brats``, ``image_folder``), or
      ``auto``: detected from the data folder and saved so in the run's config.
    - ``image_size``: side in pixels of the square each slice is resized to (slice datasets:
      ``kaggle3m``, ``image_folder``); 0 keeps the voxel grid (volume datasets, whose spacing
      in mm matters).
    - ``crop_to_brain``, ``crop_margin``: slice datasets: cut out the square box around the
      brain of the whole volume, ``crop_margin`` pixels wider, before resizing (volume datasets
      always crop to the non-zero brain box).
    - ``context_slices``: neighbouring slices on each side stacked as extra channels (2.5D),
      so ``model.in_channels = channels * (2 * context_slices + 1)``.
    - ``patch_size``: volume datasets: the training window in voxels, ``(x, y, z)`` for 3D
      networks and ``(x, y, 1)`` for slice networks.
    - ``standardize``: ``none``, or ``histogram``: Nyul's piecewise-linear histogram
      standardisation of each channel before the recipe's normalisation
      (:func:`gliomaseg.data.preprocessing.standardize`), against ``landmarks``.
    - ``landmarks``: the standard scale of ``histogram``, one row per image channel of the
      intensities at the brain percentiles 1, 10, 20, ..., 90, 99; empty in a recipe, fitted on
      the training cases when training starts and saved with the weights.
    """

    dataset: str = "auto"
    image_size: int = 0
    crop_to_brain: bool = False
    crop_margin: int = 8
    context_slices: int = 0
    patch_size: tuple[int, int, int] = (96, 96, 96)
    standardize: str = "none"
    landmarks: tuple[tuple[float, ...], ...] = ()


@dataclass
class AugmentConfig:
    """On-the-fly augmentation, applied per batch (see :mod:`gliomaseg.data.augment`)."""

    # Mirroring with probability 1/2: slices along their width (axis 1: left-right for
    # kaggle_3m, front-back for BraTS), 3D patches along every axis.
    flip: bool = True
    # Slice networks: also mirror along the height (axis 0: left-right for BraTS, whose slices
    # are (x, y) in the challenge's L, P, S orientation), independently of ``flip``; with both,
    # the four mirrorings of nnU-Net's 2D configuration.
    flip_height: bool = False
    rotate_degrees: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    intensity: float = 0.1  # per-channel gain and bias drawn from +-intensity
    # Probability that each of the pre- and post-contrast channels is replaced by FLAIR, as
    # in the LGG patients whose missing sequences were filled with FLAIR copies.
    flair_copy: float = 0.0
    # Probability per sample of a smooth multiplicative bias field (MR intensity
    # inhomogeneity): ``exp`` of a Legendre polynomial of degree 3 whose coefficients are drawn
    # from ``+-bias_field_coeff`` (Van Leemput et al. 1999; TorchIO's RandomBiasField).
    bias_field: float = 0.0
    bias_field_coeff: float = 0.2
    # Probability per sample of a gamma transform of its intensities, ``x -> min + range *
    # ((x - min) / range) ^ gamma``, gamma below or above 1 with equal chance within
    # ``gamma_range`` (nnU-Net: probability 0.3, 0.7-1.5).
    gamma: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.5)
    # Slice networks: probability per sample of an elastic deformation, U-Net's (Ronneberger
    # et al. 2015): displacements of a coarse 3x3 grid drawn with ``elastic_sigma`` pixels'
    # standard deviation (of the network's grid), interpolated bicubically.
    elastic: float = 0.0
    elastic_sigma: float = 10.0


@dataclass
class TrainConfig:
    """Optimisation recipe: an optimiser with one of two learning-rate schedules.

    - ``optimizer: adam``: Adam (Kingma and Ba 2015) with ``lr`` and ``weight_decay``.
    - ``optimizer: sgd``: nnU-Net's optimiser (Isensee et al. 2021): SGD with Nesterov momentum
      0.99, ``lr`` and ``weight_decay`` (nnU-Net: 0.01 and 3e-5), the gradient's global L2 norm
      clipped at 12 before each step.

    - ``schedule: plateau``: ReduceLROnPlateau and early stopping on validation per-patient
      Dice, validated every epoch; the best checkpoint is the model.
    - ``schedule: poly``: nnU-Net's polynomial decay ``lr * (1 - t)^0.9`` (Isensee et al. 2021),
      ``t`` the larger of the share of ``max_epochs`` and of the time budget (``--max-minutes``)
      spent; no early stopping, validation every ``val_every`` epochs for the curves only, the
      last checkpoint is the model. For cross-validation: the held-out fold chooses nothing.
    """

    loss: str = "bce_dice"
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "sgd" (see the class docstring)
    max_epochs: int = 100
    slices_per_epoch: int = 0  # samples per epoch; 0: one pass over the training slices
    tumor_fraction: float = 0.5  # share of tumor samples drawn per epoch (oversampling)
    # Slice datasets: within that share, each tumor slice alike ("slice") or each patient's
    # tumor alike ("case", small-lesion sampling; see training.banks.SliceBank). Volume
    # datasets always draw the case first, then a whole-tumor voxel ("slice", "case") or a
    # voxel of one of the case's regions, each region alike ("region", training.banks.VolumeBank;
    # refused for slice datasets).
    tumor_sampling: str = "slice"
    # Deep supervision (nnU-Net): auxiliary outputs of the decoder at 1/2, 1/4, ... resolution,
    # their losses weighted 1, 1/2, 1/4, ... (training.deep_supervision); 0: none. U-shaped
    # networks only (unet, resunet, residual_inception_unet); the saved weights are the same.
    deep_supervision: int = 0
    # Exponential moving average of the weights (Polyak averaging, as timm's ModelEmaV2), its
    # decay per optimiser step in [0, 1); 0: none. 0.999 averages over about the last 1,000
    # steps; the average starts from the first step's weights and carries d^n of them after n
    # steps, so it needs a run of several 1 / (1 - d) steps (LGG row 48: 0.999 over 5,000).
    # The average, BatchNorm statistics included, is what validation scores and
    # best/last.safetensors hold; the optimiser keeps training the raw weights.
    ema: float = 0.0
    plateau_patience: int = 5  # epochs without validation gain before the LR is lowered
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    early_stop_patience: int = 15  # epochs without validation gain before training stops
    schedule: str = "plateau"  # "plateau" | "poly" (see the class docstring)
    val_every: int = 1  # validate every N epochs (and after the last); above 1 only with "poly"
    seed: int = 0
    # Where volume datasets' preprocessed training cases live: "memory", or "disk" (.npy files
    # in <run folder>/bank, read through memory maps) when they do not fit in memory.
    bank: str = "memory"


@dataclass
class InferenceConfig:
    """Thresholding, test-time augmentation and post-processing of predicted probabilities.

    ``mirror_axes``: the spatial axes of the network input (``(x, y)`` of a slice, ``(x, y,
    z)`` of a volume) that training mirrored; ``flip`` TTA averages over those mirrorings only
    (mirroring along an axis the network never saw flipped lowers Dice). Set when a model is
    trained, from ``augment.flip``, ``augment.flip_height`` and the network's dimensions.
    """

    # Probability at or above which a voxel is in a region: one for every region, or one per
    # output channel in the model's order (BraTS: WT, TC, ET), see inference.postprocess.to_label.
    threshold: float | tuple[float, ...] = 0.5
    postprocess: str = "none"  # "none" | "largest-3d" | "min-size:N" (see inference.postprocess)
    tta: str = "none"  # "none" | "flip" | "flip+rot90" (see inference.tta)
    batch_size: int = 32
    overlap: float = 0.5  # 3D networks: sliding-window overlap, fraction of the patch
    mirror_axes: tuple[int, ...] = ()


@dataclass
class RuntimeConfig:
    """Where and how networks run, in training and inference alike."""

    device: str = "cpu"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    threads: int = 0  # intra-op CPU threads; 0: one per core
    bf16: bool = True  # bfloat16 autocast where the device supports it
    channels_last: bool = True


@dataclass
class Config:
    """Everything that defines a run; saved beside its weights as ``config.yaml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "Config":
        """Build from a nested dict (configs of earlier versions are translated first, see
        :func:`migrate`), then :meth:`check` it.

        Raises:
            ConfigError: unknown section or key, a value of the wrong type or out of range.
        """
        config = _build(cls, migrate(raw or {}), source)
        config.check(source)
        return config

    def check(self, source: str = "config") -> None:
        """Ranges and cross-field rules that need nothing but the config itself.

        Raises:
            ConfigError: naming ``source``, the key and the allowed range.
        """
        threshold = self.inference.threshold
        thresholds = threshold if isinstance(threshold, tuple) else (threshold,)
        rules = [
            (self.model.in_channels >= 1, "model.in_channels", "at least 1"),
            (self.model.out_channels >= 1, "model.out_channels", "at least 1"),
            (self.model.width >= 1, "model.width", "at least 1"),
            (self.model.members >= 1, "model.members", "at least 1"),
            (self.model.init_member >= -1, "model.init_member", "-1 (none) or a member index from 0"),
            (not self.model.member_sizes or (len(self.model.member_sizes) == self.model.members
                                             and all(0 < n <= self.data.image_size for n in self.model.member_sizes)),
             "model.member_sizes", "empty, or one side in pixels per member, none above data.image_size"),
            (self.data.image_size >= 0, "data.image_size", "0 (keep the grid) or a side in pixels"),
            (self.data.crop_margin >= 0, "data.crop_margin", "0 or more pixels"),
            (self.data.context_slices >= 0, "data.context_slices", "0 or more"),
            (all(n >= 1 for n in self.data.patch_size), "data.patch_size", "three sides of at least 1 voxel"),
            (self.data.standardize in STANDARDIZE_CHOICES, "data.standardize", f"one of {', '.join(STANDARDIZE_CHOICES)}"),
            (not self.data.landmarks or self.data.standardize == "histogram", "data.landmarks", "empty unless data.standardize is histogram"),
            (all(len(row) == len(LANDMARK_PERCENTILES) and all(a < b for a, b in zip(row, row[1:])) for row in self.data.landmarks),
             "data.landmarks", f"rows of {len(LANDMARK_PERCENTILES)} increasing intensities, one row per channel"),
            (self.augment.rotate_degrees >= 0, "augment.rotate_degrees", "0 or more"),
            (0 < self.augment.scale[0] <= self.augment.scale[1], "augment.scale", "0 < low <= high"),
            (self.augment.intensity >= 0, "augment.intensity", "0 or more"),
            (0 <= self.augment.flair_copy <= 1, "augment.flair_copy", "a probability in [0, 1]"),
            (0 <= self.augment.gamma <= 1, "augment.gamma", "a probability in [0, 1]"),
            (0 < self.augment.gamma_range[0] <= self.augment.gamma_range[1], "augment.gamma_range", "0 < low <= high"),
            (0 <= self.augment.bias_field <= 1, "augment.bias_field", "a probability in [0, 1]"),
            (self.augment.bias_field_coeff >= 0, "augment.bias_field_coeff", "0 or more"),
            (0 <= self.augment.elastic <= 1, "augment.elastic", "a probability in [0, 1]"),
            (self.augment.elastic_sigma >= 0, "augment.elastic_sigma", "0 or more"),
            (self.train.batch_size >= 1, "train.batch_size", "at least 1"),
            (self.train.lr > 0, "train.lr", "above 0"),
            (self.train.weight_decay >= 0, "train.weight_decay", "0 or more"),
            (self.train.max_epochs >= 1, "train.max_epochs", "at least 1"),
            (self.train.slices_per_epoch >= 0, "train.slices_per_epoch", "0 (one pass) or more"),
            (0 <= self.train.tumor_fraction <= 1, "train.tumor_fraction", "a fraction in [0, 1]"),
            (self.train.tumor_sampling in TUMOR_SAMPLING_CHOICES, "train.tumor_sampling", f"one of {', '.join(TUMOR_SAMPLING_CHOICES)}"),
            (self.train.deep_supervision >= 0, "train.deep_supervision", "0 (none) or more auxiliary outputs"),
            (0 <= self.train.ema < 1, "train.ema", "a decay per step in [0, 1); 0: no moving average"),
            (self.train.plateau_patience >= 0, "train.plateau_patience", "0 or more epochs"),
            (0 < self.train.plateau_factor < 1, "train.plateau_factor", "in (0, 1)"),
            (self.train.min_lr >= 0, "train.min_lr", "0 or more"),
            (self.train.early_stop_patience >= 1, "train.early_stop_patience", "at least 1 epoch"),
            (self.train.bank in BANK_CHOICES, "train.bank", f"one of {', '.join(BANK_CHOICES)}"),
            (self.train.optimizer in OPTIMIZER_CHOICES, "train.optimizer", f"one of {', '.join(OPTIMIZER_CHOICES)}"),
            (self.train.schedule in SCHEDULE_CHOICES, "train.schedule", f"one of {', '.join(SCHEDULE_CHOICES)}"),
            (self.train.val_every >= 1, "train.val_every", "at least 1 epoch"),
            (self.train.val_every == 1 or self.train.schedule == "poly", "train.val_every",
             "1 with schedule plateau (its learning rate and early stopping follow each epoch's validation)"),
            (all(0 <= t <= 1 for t in thresholds), "inference.threshold", "probabilities in [0, 1]"),
            (not isinstance(threshold, tuple) or len(thresholds) == self.model.out_channels,
             "inference.threshold", f"one probability, or one per output channel ({self.model.out_channels})"),
            (self.inference.batch_size >= 1, "inference.batch_size", "at least 1"),
            (0 <= self.inference.overlap < 1, "inference.overlap", "a fraction in [0, 1)"),
            (self.inference.tta in TTA_CHOICES, "inference.tta", f"one of {', '.join(TTA_CHOICES)}"),
            (all(0 <= a <= 2 for a in self.inference.mirror_axes), "inference.mirror_axes", "spatial axes 0, 1 or 2"),
            (_valid_postprocess(self.inference.postprocess), "inference.postprocess", f"one of {', '.join(POSTPROCESS_CHOICES)}"),
            (self.runtime.threads >= 0, "runtime.threads", "0 (one per core) or more"),
            (_valid_device(self.runtime.device), "runtime.device", f"one of {', '.join(DEVICE_CHOICES)}"),
        ]
        for ok, key, allowed in rules:
            if not ok:
                raise ConfigError(f"{source}: {key} = {_value(self, key)!r} is out of range; expected {allowed}")


def _value(config: Config, key: str) -> Any:
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _valid_postprocess(method: str) -> bool:
    try:
        parse_postprocess(method)
    except ConfigError:
        return False
    return True


def parse_postprocess(method: str) -> tuple[str, int]:
    """``"none"``, ``"largest-3d"`` or ``"min-size:N"`` -> ``(kind, N)`` (N 0 but for min-size).

    Raises:
        ConfigError: another name, or an N that is not a whole number of voxels.
    """
    if method in ("none", "largest-3d"):
        return method, 0
    kind, _, size = method.partition(":")
    if kind != "min-size" or not size.isdigit():
        raise ConfigError(f"unknown post-processing {method!r}; choose one of {', '.join(POSTPROCESS_CHOICES)} "
                          "(N a whole number of voxels)")
    return kind, int(size)


def parse_threshold(text: str) -> float | tuple[float, ...]:
    """``"0.3"`` -> ``0.3`` (every region); ``"0.2,0.3,0.5"`` -> ``(0.2, 0.3, 0.5)``, one per
    output channel in the model's order (BraTS: WT, TC, ET). Ranges are checked by
    :meth:`Config.check`.

    Raises:
        ConfigError: a value that is not a number.
    """
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"threshold {text!r}: expected a probability, or one per region separated by commas "
                          "(e.g. 0.3,0.3,0.5 for WT,TC,ET)") from None
    return values[0] if len(values) == 1 else values


def _valid_device(device: str) -> bool:
    return device in ("auto", "cpu", "cuda", "mps") or (device.startswith("cuda:") and device[5:].isdigit())


# Keys that moved between sections or changed meaning, for files written by gliomaseg 0.1.
_MOVED_TO_RUNTIME = ("bf16", "channels_last", "threads")
_RENAMED_DATASETS = {"lgg": "kaggle3m"}


def migrate(raw: dict[str, Any]) -> dict[str, Any]:
    """Translate a config of gliomaseg 0.1 into the current layout (a copy; current configs
    pass unchanged): ``train.bf16``, ``train.channels_last`` and ``train.threads`` move to the
    ``runtime`` section; ``data.dataset: lgg`` is now ``kaggle3m``; a BraTS slice network's
    ``data.image_size`` (its training crop) becomes ``data.patch_size`` ``(S, S, 1)`` and
    ``image_size`` 0 (no resize). A config with a ``runtime`` section is current.
    """
    if not isinstance(raw, dict):
        return raw
    raw = copy.deepcopy(raw)
    old = "runtime" not in raw  # 0.1 had no runtime section
    train = raw.get("train")
    if isinstance(train, dict) and any(key in train for key in _MOVED_TO_RUNTIME):
        runtime = raw.setdefault("runtime", {})
        for key in _MOVED_TO_RUNTIME:
            if key in train:
                runtime.setdefault(key, train.pop(key))
    data = raw.get("data")
    if isinstance(data, dict):
        data["dataset"] = _RENAMED_DATASETS.get(data.get("dataset"), data.get("dataset", "auto"))
        model = raw.get("model", {}) if isinstance(raw.get("model"), dict) else {}
        if old and data["dataset"] == "brats" and data.get("image_size", 0) and model.get("name") != "unet3d":
            side = data.pop("image_size")
            data["patch_size"] = [side, side, 1]
            data["image_size"] = 0
    return raw


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to a raw config mapping (a copy). Values are read
    as YAML, so ``train.lr=3e-4`` gives a number, ``augment.scale=[0.8,1.2]`` a list.

    Raises:
        ConfigError: an override not of the form ``section.key=value``.
    """
    raw = copy.deepcopy(raw or {})
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.lr=3e-4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as text
            try:
                value = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                pass
        section = raw.setdefault(parts[0], {})
        if not isinstance(section, dict):
            raise ConfigError(f"--set {item!r}: section {parts[0]} is not a mapping")
        section[parts[1]] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file, with optional ``section.key=value`` overrides.

    Raises:
        ConfigError: the file is missing, is not YAML, or holds an invalid key or value.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a config file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return Config.from_dict(apply_overrides(raw, overrides or []), source=str(path))


def save_config(config: Config, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path``."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _plain_hint(hint: Any) -> str:
    """``float | tuple[float, ...]`` -> ``"a number or a list of numbers"`` (for error messages)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_plain_hint(alternative) for alternative in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_plain_hint(typing.get_args(hint)[0]).removeprefix('a ')}s"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(hint, str(hint))


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
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(t, v, where) for t, v in zip(args, value))
    if origin in (typing.Union, types.UnionType):  # the first alternative the value fits
        for alternative in typing.get_args(hint):
            try:
                return _coerce(alternative, value, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_plain_hint(hint)}, got {value!r}")
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
