"""The ``gliomaseg`` command: parses arguments and calls the pipeline stages.

Every user-facing error (:class:`~gliomaseg.errors.GliomasegError`) is printed as one line
``error: <file>: <problem>`` with exit status 1, never as a traceback.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from .errors import GliomasegError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and apply deep segmentation networks for gliomas in brain MRI.")
console = Console(stderr=True)

ModelOption = typer.Option(None, "--model", "-m", help="Run folder or .safetensors weights; default: the bundled model.")


def reports_errors(command: Callable) -> Callable:
    """Turn a GliomasegError into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GliomasegError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@reports_errors
def split(
    data: Path = typer.Argument(..., help="kaggle_3m folder (or its parent)."),
    out: Path = typer.Option(..., "--out", "-o", help="Split file to write (JSON)."),
    val: float = typer.Option(0.15, help="Fraction of patients for validation."),
    test: float = typer.Option(0.15, help="Fraction of patients for testing."),
    seed: int = typer.Option(0, help="Shuffling seed."),
    overwrite: bool = typer.Option(False, help="Replace an existing split file."),
) -> None:
    """Patient-level train/val/test split, stratified by institution (TCGA_<inst>_...)."""
    from .data.kaggle3m import find_patients
    from .data.splits import make_split, save_split

    try:
        result = make_split([p.id for p in find_patients(data, require_masks=False)], val, test, seed)
    except ValueError as exc:
        raise InputError(out, str(exc)) from None
    save_split(result, out, overwrite)
    print(f"{out}: " + ", ".join(f"{k} {len(v)} patients" for k, v in result.items()))


@app.command()
@reports_errors
def train(
    data: Path = typer.Argument(..., help="kaggle_3m folder (or its parent)."),
    split_file: Path = typer.Option(..., "--split", help="Split file from `gliomaseg split`."),
    config_file: Path = typer.Option(..., "--config", "-c", help="YAML config (see configs/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for checkpoints and logs."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its last checkpoint."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop after this much training time in all (resumed runs included)."),
    overwrite: bool = typer.Option(False, help="Start afresh in a run folder that already holds a run."),
) -> None:
    """Train a network; keeps best (validation per-patient Dice) and last checkpoints."""
    import shutil

    from .config import load_config
    from .data.splits import load_split
    from .training.trainer import train as run_training

    config = load_config(config_file)
    split_ids = load_split(split_file)
    started = (out / "last.safetensors").exists()
    if resume and not started:
        raise InputError(out, "nothing to resume: no last.safetensors")
    if started and not resume:
        if not overwrite:
            raise InputError(out, "already holds a run; pass --resume to continue it or --overwrite to start afresh")
        shutil.rmtree(out)
    progress = run_training(data, split_ids, config, out, resume, max_minutes)
    print(f"{out}: {progress.epoch} epochs, {progress.minutes:.1f} min, best validation per-patient Dice {progress.best_dice:.4f}")


def main() -> None:  # pragma: no cover
    sys.exit(app())
