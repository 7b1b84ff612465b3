"""The trained (not averaged) weights of fold runs trained with ``train.ema``, laid out as a
cross-validation folder that ``gliomaseg evaluate`` scores out of fold (model card, LGG row 48).

A run with a moving average of its weights saves the average in ``last.safetensors`` and keeps
the raw weights the optimiser trained in ``state.safetensors`` (keys ``model.*``). This writes
each given fold run's raw weights, with the run's config, to ``OUT/fold<k>/last.safetensors``
(``fold<k>`` being the run folder's name), so that the average and the raw weights of the same
trajectories are scored on the same held-out patients (the paired effect of the average alone):

    python benchmarks/raw_weights.py runs/cv_lgg_ema_128e_f0/fold0 runs/cv_lgg_ema_128e_f1/fold1 ... \\
        --out runs/cv_lgg_ema_raw
    gliomaseg evaluate cache/lgg/kaggle_3m --model runs/cv_lgg_ema_raw --split splits/lgg_folds.json \\
        --out runs/oof_lgg_ema_raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gliomaseg.models.weights import load_model, load_state, read_metadata, save_model, state_section


def write_raw(run: Path, out: Path) -> Path:
    """Write ``out/<run's name>/last.safetensors`` from ``run/state.safetensors``; returns its path.

    Raises:
        InputError: the run has no state or weights file.
        SystemExit: the state holds no raw weights (``model.*``), or the file exists already.
    """
    model, config = load_model(run / "last.safetensors")
    tensors, _ = load_state(run / "state.safetensors")
    raw = state_section(tensors, "model")
    if not raw:
        raise SystemExit(f"error: {run / 'state.safetensors'}: no model.* weights")
    path = out / run.name / "last.safetensors"
    if path.exists():
        raise SystemExit(f"error: {path}: exists already")
    model.load_state_dict(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, config, path, epoch=read_metadata(run / "last.safetensors").get("epoch"), weights="raw, not averaged")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="fold run folders (fold<k>, with last.safetensors and state.safetensors)")
    parser.add_argument("--out", type=Path, required=True, help="cross-validation folder to write")
    args = parser.parse_args()
    for run in args.runs:
        print(f"-> {write_raw(run, args.out)}")


if __name__ == "__main__":
    main()
