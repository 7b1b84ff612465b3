"""Saving and loading networks as safetensors, with their config in the file's metadata.

A weights file is self-describing: its metadata holds the full run config as JSON under
``gliomaseg.config``, so ``load_model`` rebuilds the right network and preprocessing without
any pickle. Training state (optimizer moments, RNG) is stored the same way, see
:func:`save_state`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..atomic import atomic_path
from ..config import Config
from ..errors import InputError
from .registry import create_model

CONFIG_KEY = "gliomaseg.config"
BUNDLED = {"lgg": "lgg_unet.safetensors", "brats": "brats_model.safetensors"}  # per dataset


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
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
    return {k.removeprefix("gliomaseg."): json.loads(v) for k, v in raw.items() if k.startswith("gliomaseg.")}


def load_model(path: str | Path) -> tuple[nn.Module, Config]:
    """Rebuild the network stored in a weights file, in eval mode, on the CPU.

    Raises:
        InputError: unreadable file, or weights that do not fit the network in its config.
    """
    path = Path(path)
    config = Config.from_dict(read_metadata(path)["config"], source=str(path))
    model = create_model(config.model)
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise InputError(path, f"weights do not match network {config.model.name!r}: {str(exc).splitlines()[0]}") from None
    return model.eval(), config


def bundled_weights(dataset: str = "lgg") -> Path:
    """Path of the pretrained model for ``dataset`` (``lgg`` or ``brats``) shipped inside the package."""
    return Path(str(resources.files("gliomaseg") / "weights" / BUNDLED[dataset]))


def resolve_weights(model: str | Path | None, dataset: str = "lgg") -> Path:
    """``--model`` argument -> weights file: a ``.safetensors`` file, a run folder (its
    ``best.safetensors``), or ``None`` for the bundled model of ``dataset``.

    Raises:
        InputError: the path does not exist or a run folder has no best checkpoint.
    """
    if model is None:
        return bundled_weights(dataset)
    path = Path(model)
    if path.is_dir():
        best = path / "best.safetensors"
        if not best.is_file():
            raise InputError(path, "run folder without best.safetensors (has training finished one epoch?)")
        return best
    if not path.is_file():
        raise InputError(path, "no such model file or run folder")
    return path


def save_state(path: str | Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write training state: ``tensors`` as safetensors, ``info`` (JSON-able) in its metadata."""
    _save_atomic(tensors, Path(path), {"gliomaseg.state": json.dumps(info)})


def load_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read what :func:`save_state` wrote.

    Raises:
        InputError: missing or unreadable state file.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            info = json.loads((handle.metadata() or {})["gliomaseg.state"])
        return load_file(str(path)), info
    except (FileNotFoundError, KeyError, SafetensorError, OSError, ValueError) as exc:
        raise InputError(path, f"no usable training state ({exc.__class__.__name__})") from None
