"""Output files and folders: atomic writes (a result appears complete or not at all, never
half-written), and the check every command makes of its ``--out`` folder."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import InputError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def require_folder(out: Path, noun: str = "folder") -> None:
    """Refuse an ``--out`` that exists and is not a folder (a file where the command would
    write its folder of outputs), before any slow work.

    Raises:
        InputError: naming ``out``; ``noun`` says what ``--out`` must be ("folder", "run folder").
    """
    if out.exists() and not out.is_dir():
        raise InputError(out, f"exists and is not a folder; --out needs a {noun}")


def require_new_file(out: Path, overwrite: bool, kind: str) -> None:
    """Refuse an ``--out`` file path that is a folder, or an existing file without
    ``--overwrite``, before any slow work.

    Raises:
        InputError: naming ``out``; ``kind`` says what ``--out`` must be ("an .onnx", "a .safetensors").
    """
    if out.is_dir():
        raise InputError(out, f"is a folder; --out needs {kind} file path")
    if out.exists() and not overwrite:
        raise InputError(out, "already exists; pass --overwrite to replace it")
