"""Running the real ``gliomaseg`` console script in tests, and checking its error lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

GLIOMASEG = str(Path(sys.executable).parent / "gliomaseg")  # the console script of this venv
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_cli(*args, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FORCE_COLOR", None)
    result = subprocess.run([GLIOMASEG, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=timeout)
    result.stdout, result.stderr = ANSI.sub("", result.stdout), ANSI.sub("", result.stderr)
    return result


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def assert_one_error_per_file(result: subprocess.CompletedProcess, names: list[str]) -> None:
    """Exactly one ``error:`` line per bad file, each naming its file."""
    lines = error_lines(result)
    assert len(lines) == len(names), result.stderr
    for name in names:
        assert sum(name in line for line in lines) == 1, (name, result.stderr)
