"""Errors that reach the user as one line naming the file and what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GliomasegError(Exception):
    """Base class of every error gliomaseg reports to the user without a traceback."""


class InputError(GliomasegError):
    """A file or folder given by the user cannot be used.

    Args:
        path: the offending file or folder.
        problem: what is wrong with it, in words a user understands.
    """

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(GliomasegError):
    """A configuration file or option is invalid (unknown key, wrong type, bad value)."""


def read_each(items: Iterable[T], read: Callable[[T], R], problems: list[InputError] | None) -> list[R]:
    """``read(item)`` for every item. An item whose read raises :class:`InputError` is appended
    to ``problems`` and skipped (batch runs go on), or, when ``problems`` is ``None``, re-raised."""
    results = []
    for item in items:
        try:
            results.append(read(item))
        except InputError as exc:
            if problems is None:
                raise
            problems.append(exc)
    return results


# Exit statuses of the ``gliomaseg`` command (README, "Exit codes").
EXIT_OK = 0  # everything done
EXIT_ERROR = 1  # a fatal error (one `error:` line), or no input of a batch could be used
EXIT_USAGE = 2  # the command line itself is wrong (unknown option, bad choice): nothing was read
EXIT_PARTIAL = 3  # a batch finished, but some inputs were skipped (one `error:` line each)
EXIT_INTERRUPTED = 130  # Ctrl-C
