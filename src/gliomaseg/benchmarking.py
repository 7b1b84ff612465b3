"""``gliomaseg benchmark``: networks x losses trained for the same wall-clock budget on the same
split and seed, each evaluated per patient on the test subset.

Rows go to ``OUT/benchmark.csv`` as each combination finishes (an interrupted benchmark resumes:
finished rows are kept, an unfinished training resumes from its checkpoint);
``OUT/benchmark.md`` holds the Markdown table and ``OUT/benchmark.png`` the plot.
"""

from __future__ import annotations

import copy
import csv
import time
from pathlib import Path

import numpy as np

from .atomic import atomic_path, write_text_atomic
from .config import Config
from .data.base import resolve_dataset
from .errors import InputError
from .evaluation import evaluate
from .inference.predictor import Predictor
from .models.registry import MODELS, complexity
from .models.weights import load_model
from .training.trainer import train

SPEED_PATIENTS = 3  # test patients timed for inference slices/s (preprocessing included)
COLUMNS = ("model", "loss", "width", "dice_mean", "dice_median", "iou_mean", "hd95_mean", "precision_mean",
           "recall_mean", "parameters_m", "gflops", "train_minutes", "epochs", "infer_slices_per_s")


def run_benchmark(data: Path, split: dict[str, list[str]], base: Config, models: list[str], losses: list[str],
                  budget_minutes: float, out: Path) -> list[dict]:
    """Train and evaluate every (model, loss) pair not yet in ``OUT/benchmark.csv``.

    Raises:
        InputError: an unknown network, or a test subset that is empty.
    """
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise InputError(out, f"unknown network(s) {', '.join(unknown)}; registered: {', '.join(sorted(MODELS))}")
    if not split["test"]:
        raise InputError(out, "the split has no test patients to evaluate on")
    out.mkdir(parents=True, exist_ok=True)
    table = out / "benchmark.csv"
    rows = _read_rows(table)
    done = {(r["model"], r["loss"]) for r in rows}
    dataset = resolve_dataset(data, base.data.dataset)
    by_id = {ref.id: ref for ref in dataset.find(data)}
    for model in models:
        for loss in losses:
            if (model, loss) in done:
                continue
            config = copy.deepcopy(base)
            config.model.name, config.train.loss = model, loss
            run = out / "runs" / f"{model}__{loss}"
            progress = train(data, split, config, run, resume=(run / "state.safetensors").exists(), max_minutes=budget_minutes)
            rows.append(_evaluate(run, progress, dataset, [by_id[pid] for pid in split["test"]], config))
            write_text_atomic(table, _csv(rows))
    if rows:  # also redraws a finished benchmark's table and plot
        write_text_atomic(out / "benchmark.md", markdown(rows, budget_minutes))
        plot(rows, out / "benchmark.png")
    return rows


def _evaluate(run: Path, progress, dataset, refs, config: Config) -> dict:
    network, run_config = load_model(run / "best.safetensors")
    predictor = Predictor(network, run_config)
    summary = evaluate(predictor, dataset, refs).summary()[f"per_{dataset.case_noun}"]
    timed = [dataset.load(ref, predictor.in_channels) for ref in refs[:SPEED_PATIENTS]]
    started = time.perf_counter()
    for case in timed:
        predictor.probabilities(case.images)
    seconds = time.perf_counter() - started
    slices = sum(case.images.shape[-1] for case in timed)
    parameters, gflops = complexity(config.model.name, config.model.width, config.model.in_channels, config.data.image_size)
    return {
        "model": config.model.name, "loss": config.train.loss, "width": config.model.width,
        "dice_mean": round(summary["dice"]["mean"], 4), "dice_median": round(summary["dice"]["median"], 4),
        "iou_mean": round(summary["iou"]["mean"], 4), "hd95_mean": round(summary["hd95"]["mean"], 2),
        "precision_mean": round(summary["precision"]["mean"], 4), "recall_mean": round(summary["recall"]["mean"], 4),
        "parameters_m": round(parameters / 1e6, 2), "gflops": round(gflops, 2),
        "train_minutes": round(progress.minutes, 1), "epochs": progress.epoch,
        "infer_slices_per_s": round(slices / seconds, 1),
    }


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _csv(rows: list[dict]) -> str:
    lines = [",".join(COLUMNS)] + [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict], budget_minutes: float) -> str:
    """The benchmark as a Markdown table, best mean per-patient Dice first."""
    ordered = sorted(rows, key=lambda r: -float(r["dice_mean"]) if r["dice_mean"] not in ("", "nan") else np.inf)
    header = ("| network | loss | width | Dice mean | Dice median | IoU | HD95 (px) | precision | recall | params (M) "
              "| GFLOPs/slice | train min | epochs | infer slices/s |\n|" + "---|" * 14 + "\n")
    body = "".join("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |\n" for r in ordered)
    return f"Budget: {budget_minutes} minutes of training per row.\n\n" + header + body


def plot(rows: list[dict], path: Path) -> None:
    """Bar chart of mean per-patient Dice (median as a dot) per network and loss, with the
    training epochs each reached, written atomically as PNG (matplotlib, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']}\n{r['loss']} ({r['epochs']} ep)" for r in rows]
    means = [float(r["dice_mean"]) for r in rows]
    medians = [float(r["dice_median"]) for r in rows]
    figure, axis = plt.subplots(figsize=(max(6, 1.3 * len(rows)), 4), layout="constrained")
    axis.bar(range(len(rows)), means, color="#4878a8", label="mean")
    axis.plot(range(len(rows)), medians, "o", color="#d0543c", label="median")
    axis.set_xticks(range(len(rows)), labels, fontsize=7)
    axis.set_ylim(0, 1)
    axis.set_ylabel("per-patient Dice (test split)")
    axis.legend(loc="lower right")
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
