"""Saving and loading networks as safetensors, with their config in the file's metadata.

A weights file is self-describing: its metadata holds the full run config as JSON under
``gliomaseg.config``, so ``load_model`` rebuilds the right network and preprocessing without
any pickle. Training state (optimizer moments, RNG) is stored the same way, see
:func:`save_state`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..atomic import atomic_path
from ..config import Config
from ..data.augment import trained_mirror_axes
from ..errors import ConfigError, InputError
from .ensemble import Ensemble
from .registry import create_model, spatial_dims

CONFIG_KEY = "gliomaseg.config"
# Bundled models by name, and the one each dataset type uses by default.
BUNDLED = {"lgg": "lgg_unet.safetensors", "brats": "brats_model.safetensors", "t1ce": "t1ce_unet.safetensors"}
# DICOM and NIfTI studies: the LGG model, which needs FLAIR only; --model brats for four sequences.
DEFAULT_BUNDLED = {"kaggle3m": "lgg", "brats": "brats", "image_folder": "t1ce", "dicom": "lgg", "nifti": "lgg"}


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def save_model(model: nn.Module, config: Config, path: str | Path, **metadata: Any) -> None:
    """Write ``model``'s state dict and ``config`` (plus any ``metadata``, as JSON) atomically."""
    meta = {CONFIG_KEY: json.dumps(config.to_dict())}
    meta.update({f"gliomaseg.{k}": json.dumps(v) for k, v in metadata.items()})
    _save_atomic(model.state_dict(), Path(path), meta)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``gliomaseg.*`` metadata of a weights file, JSON-decoded, keys without the prefix.

    Raises:
        InputError: not a safetensors file, or one without a gliomaseg config.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except FileNotFoundError:
        raise InputError(path, "no such weights file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(path, f"not a readable safetensors file ({exc})") from None
    if CONFIG_KEY not in raw:
        raise InputError(path, "safetensors file without a gliomaseg config in its metadata")
    try:
        return {k.removeprefix("gliomaseg."): json.loads(v) for k, v in raw.items() if k.startswith("gliomaseg.")}
    except json.JSONDecodeError as exc:
        raise InputError(path, f"its gliomaseg metadata is not valid JSON ({exc.msg})") from None


def read_config(path: str | Path) -> Config:
    """The run config stored in a weights file. Files of gliomaseg 0.1 (no ``runtime``
    section) get what that version left implicit: ``data.dataset`` ``auto`` meant LGG
    (``kaggle3m``), and the mirror axes its training used (``inference.mirror_axes``).

    Raises:
        InputError: unreadable file, or a config that is not valid (naming the file).
    """
    path = Path(path)
    raw = read_metadata(path)["config"]
    try:
        config = Config.from_dict(raw, source=str(path))
        if "runtime" not in raw and config.data.dataset == "auto":
            config.data.dataset = "kaggle3m"
        if "mirror_axes" not in raw.get("inference", {}):
            config.inference.mirror_axes = trained_mirror_axes(config.augment, spatial_dims(config.model.name))
    except ConfigError as exc:
        raise InputError(path, f"its config is not valid: {exc}") from None
    return config


def load_model(path: str | Path) -> tuple[nn.Module, Config]:
    """Rebuild the network stored in a weights file, in eval mode, on the CPU.

    Raises:
        InputError: unreadable file, or weights that do not fit the network in its config.
    """
    from safetensors.torch import load_file

    path = Path(path)
    config = read_config(path)
    try:
        model = create_model(config.model)
    except ConfigError as exc:
        raise InputError(path, str(exc)) from None
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise InputError(path, f"weights do not match network {config.model.name!r}: {str(exc).splitlines()[0]}") from None
    return model.eval(), config


def save_ensemble(sources: list[str | Path], out: str | Path, **metadata: Any) -> Config:
    """Join trained networks into one ensemble weights file (:class:`~.ensemble.Ensemble`):
    the members' weights under ``members.<i>.``, the first member's config with
    ``model.members`` set, the sources' paths (``members_from``) and ``metadata``, written
    atomically.

    Args:
        sources: at least two weights files (see :func:`resolve_weights` for what a run
            folder or a bundled name resolves to) of the same network and data recipe; slice
            networks may differ in ``data.image_size`` (a mixed-resolution ensemble: it runs at
            the largest side, ``model.member_sizes`` holds each member's).
        out: the ``.safetensors`` file to write.

    Returns:
        the ensemble's config.

    Raises:
        InputError: a source is unreadable, is itself an ensemble, or differs from the first
            in its network (``model``) or preprocessing (``data``, but for a slice network's
            ``image_size``).
    """
    if len(sources) < 2:
        raise InputError(out, f"an ensemble needs at least two members, got {len(sources)}")
    models = [load_model(source) for source in sources]
    first = models[0][1]
    for source, (_, config) in zip(sources, models):
        if config.model.members != 1:
            raise InputError(source, f"is already an ensemble of {config.model.members}; join single networks")
        resized = bool(config.data.image_size and first.data.image_size)
        data = replace(config.data, image_size=first.data.image_size) if resized else config.data
        if (config.model, data) != (first.model, first.data):
            raise InputError(source, f"its network or preprocessing differs from {sources[0]}'s (model and data sections"
                             + (", but for data.image_size)" if resized else ")"))
    sizes = tuple(config.data.image_size for _, config in models)
    config = Config.from_dict(first.to_dict())
    config.model.members = len(models)
    if len(set(sizes)) > 1:
        config.model.member_sizes = sizes
        config.data.image_size = max(sizes)
    ensemble = Ensemble([model for model, _ in models], config.model.member_sizes)
    save_model(ensemble, config, out, members_from=[str(s) for s in sources], **metadata)
    return config


def bundled_weights(name: str = "lgg") -> Path:
    """Path of the bundled model ``name`` (a key of :data:`BUNDLED`) inside the package.

    Raises:
        InputError: no bundled model of that name.
    """
    if name not in BUNDLED:
        raise InputError(name, f"no bundled model of this name; bundled: {', '.join(BUNDLED)}")
    return Path(str(resources.files("gliomaseg") / "weights" / BUNDLED[name]))


def bundled_models() -> dict[str, dict[str, Any]]:
    """Name -> model card of every bundled model (the ``gliomaseg.card`` metadata written by
    ``scripts/bundle_model.py``: version, dataset, input channels, expected input, output
    labels, network, recipe and training time, held-out figures, licence of the weights)."""
    return {name: read_metadata(bundled_weights(name)).get("card", {}) for name in BUNDLED}


def resolve_weights(model: str | Path | None, dataset: str = "kaggle3m") -> Path:
    """``--model`` argument -> weights file: a bundled model's name (``lgg``, ``brats``, ...),
    a ``.safetensors`` file, a run folder (the run's model: ``last.safetensors`` for the poly
    schedule, which chooses no epoch, else the best validation epoch's ``best.safetensors``),
    or ``None`` for the bundled model of dataset type ``dataset``.

    Raises:
        InputError: the path does not exist, a run folder has no checkpoint of its model, or no
            model is bundled for ``dataset``.
    """
    if model is None:
        if dataset not in DEFAULT_BUNDLED:
            raise InputError(dataset, "no model is bundled for this dataset type; pass --model")
        return bundled_weights(DEFAULT_BUNDLED[dataset])
    if str(model) in BUNDLED and not Path(model).exists():
        return bundled_weights(str(model))
    path = Path(model)
    if path.is_dir():
        last = path / "last.safetensors"
        if last.is_file() and read_config(last).train.schedule == "poly":
            return last
        best = path / "best.safetensors"
        if not best.is_file():
            raise InputError(path, "run folder without best.safetensors (has training finished one epoch?)")
        return best
    if not path.is_file():
        raise InputError(path, "no such model file or run folder")
    return path


def check_initial_weights(config: Config) -> tuple[Path, int]:
    """The weights file ``config.model.init_weights`` names (a bundled name, a weights file or
    a run folder, see :func:`resolve_weights`), checked from its metadata alone to hold the
    network of ``config``, or its 2.5D form: the same network on ``k`` stacked slices
    (``data.context_slices``) where ``config`` takes one slice, which
    :func:`load_initial_weights` folds into it. A source that is an ensemble
    (``gliomaseg ensemble``) must be given the member to start from, ``model.init_member``
    (0-based, in the order the ensemble was joined); the member is compared.

    Returns:
        the file, and ``k``, the source's stacked slices to fold (1: the same network).

    Raises:
        InputError: the source is missing or unreadable.
        ConfigError: the source is an ensemble and ``model.init_member`` is not one of its
            members (or is set for a single network), or the source's network differs from
            ``config`` (name, channels, width) other than by that stacking.
    """
    model = config.model
    path = resolve_weights(model.init_weights)
    saved = read_config(path)
    members = saved.model.members
    if members > 1 and not 0 <= model.init_member < members:
        raise ConfigError(f"model.init_weights {model.init_weights!r} is an ensemble of {members} networks: choose "
                          f"the one to start from with model.init_member (0 to {members - 1})")
    if members == 1 and model.init_member != -1:
        raise ConfigError(f"model.init_member is {model.init_member}, but model.init_weights "
                          f"{model.init_weights!r} is a single network: leave it at -1")
    ours = (model.name, model.in_channels, model.out_channels, model.width)
    theirs = (saved.model.name, saved.model.in_channels, saved.model.out_channels, saved.model.width)
    stack = 2 * saved.data.context_slices + 1
    if ours == theirs:
        return path, 1
    if (config.data.context_slices == 0 and stack > 1 and saved.model.in_channels == stack * model.in_channels
            and ours[:1] + ours[2:] == theirs[:1] + theirs[2:]):
        return path, stack
    raise ConfigError(f"model.init_weights {model.init_weights!r} holds network (name, in, out, width) "
                      f"{theirs}" + (f" on {stack} stacked slices" if stack > 1 else "")
                      + f", the config asks for {ours}" + (f" on {2 * config.data.context_slices + 1} stacked slices"
                                                            if config.data.context_slices else ""))


def load_initial_weights(model: nn.Module, config: Config) -> None:
    """Load every weight of ``config.model.init_weights`` (of its member
    ``model.init_member`` when it is an ensemble) into ``model``, the network of
    ``config``: the start of fine-tuning, as nnU-Net's ``-pretrained_weights``. A 2.5D source
    (``k`` stacked slices of ``C`` channels) starting a one-slice network of ``C`` channels
    has its input convolution's ``(O, k C, ...)`` kernels summed over the ``k`` slices: the
    folded network computes on a slice exactly what the source computes on that slice given
    alone (repeated in place of its neighbours, as :func:`~gliomaseg.data.preprocessing.stack_slices`
    pads the edges).

    Raises:
        InputError, ConfigError: as :func:`check_initial_weights`.
    """
    path, stack = check_initial_weights(config)
    network = load_model(path)[0]
    if isinstance(network, Ensemble):
        network = network.members[config.model.init_member]
    source = network.state_dict()
    target = model.state_dict()
    for key, value in source.items():
        if stack > 1 and value.dim() > 2 and value.shape[1] == stack * target[key].shape[1]:
            source[key] = value.reshape(value.shape[0], stack, -1, *value.shape[2:]).sum(1)
    model.load_state_dict(source)


def save_state(path: str | Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write training state: ``tensors`` as safetensors, ``info`` (JSON-able) in its metadata."""
    _save_atomic(tensors, Path(path), {"gliomaseg.state": json.dumps(info)})


def state_section(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """One part of a training state's tensors (``model``: the raw trained weights, ``heads``:
    deep supervision's, ``ema``: the moving average), keyed without the ``<name>.`` prefix;
    empty when the state has no such part."""
    prefix = f"{name}."
    return {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`save_state` wrote.

    Raises:
        InputError: missing or unreadable state file.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            info = json.loads((handle.metadata() or {})["gliomaseg.state"])
        from safetensors.torch import load_file

        return load_file(str(path)), info
    except (FileNotFoundError, KeyError, SafetensorError, OSError, ValueError) as exc:
        raise InputError(path, f"no usable training state ({exc.__class__.__name__})") from None
