"""The ``gliomaseg`` command: parses arguments and calls the pipeline stages.

Every user-facing error (:class:`~gliomaseg.errors.GliomasegError`) is printed as one line
``error: <file>: <problem>`` with exit status 1, never as a traceback.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from .errors import GliomasegError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and apply deep segmentation networks for gliomas in brain MRI.")
console = Console(stderr=True)

ModelOption = typer.Option(None, "--model", "-m", help="Run folder or .safetensors weights; default: the bundled model.")
PostprocessOption = typer.Option(None, "--postprocess", help="Override the model's post-processing: none, largest-3d or min-size:N (voxels).")
TtaOption = typer.Option(None, "--tta", help="Override the model's test-time augmentation: none, flip or flip+rot90.")


def _load_predictor(model: Optional[Path], postprocess: Optional[str], tta: Optional[str], backend: str, dataset: str = "lgg"):
    """The predictor for ``--model`` (default: the bundled model of ``dataset``), with the
    inference options the user overrode; BraTS cases get a volume predictor."""
    from .config import ConfigError
    from .inference.postprocess import validate_postprocess
    from .inference.predictor import TTA_TRANSFORMS, Predictor
    from .inference.volumetric import VOLUME_TTA, VolumePredictor

    brats = dataset == "brats"
    if brats and backend != "torch":
        raise ConfigError(f"--backend {backend}: BraTS models run with the torch backend only")
    if postprocess is not None:
        validate_postprocess(postprocess)
    choices = VOLUME_TTA if brats else TTA_TRANSFORMS
    if tta is not None and tta not in choices:
        raise ConfigError(f"--tta {tta}: {'for BraTS ' if brats else ''}choose one of {', '.join(choices)}")
    predictor = VolumePredictor.from_path(model) if brats else Predictor.from_path(model, backend)
    if postprocess is not None:
        predictor.config.inference.postprocess = postprocess
    if tta is not None:
        predictor.config.inference.tta = tta
    return predictor


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
    data: Path = typer.Argument(..., help="kaggle_3m folder (or its parent), or a folder of BraTS cases."),
    out: Path = typer.Option(..., "--out", "-o", help="Split file to write (JSON)."),
    val: float = typer.Option(0.15, help="Fraction of patients for validation."),
    test: float = typer.Option(0.15, help="Fraction of patients for testing."),
    seed: int = typer.Option(0, help="Shuffling seed."),
    overwrite: bool = typer.Option(False, help="Replace an existing split file."),
) -> None:
    """Patient-level train/val/test split, stratified by institution (TCGA_<inst>_...)."""
    from .data.brats import find_cases
    from .data.detect import detect_dataset
    from .data.kaggle3m import find_patients
    from .data.splits import make_split, save_split

    if detect_dataset(data) == "brats":
        ids = [case.id for case in find_cases(data, require_label=False)]
    else:
        ids = [p.id for p in find_patients(data, masks="ignored")]
    try:
        result = make_split(ids, val, test, seed)
    except ValueError as exc:
        raise InputError(out, str(exc)) from None
    save_split(result, out, overwrite)
    print(f"{out}: " + ", ".join(f"{k} {len(v)} patients" for k, v in result.items()))


@app.command()
@reports_errors
def train(
    data: Path = typer.Argument(..., help="kaggle_3m folder (or its parent), or a folder of BraTS cases."),
    split_file: Path = typer.Option(..., "--split", help="Split file from `gliomaseg split`."),
    config_file: Path = typer.Option(..., "--config", "-c", help="YAML config (see configs/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for checkpoints and logs."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its last checkpoint."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop after this much training time in all (resumed runs included)."),
    overwrite: bool = typer.Option(False, help="Start afresh in a run folder that already holds a run."),
    encoder_weights: Optional[Path] = typer.Option(None, help="Local torchvision/timm state dict for the encoder (.pth or .safetensors)."),
) -> None:
    """Train a network; keeps best (validation per-patient Dice) and last checkpoints."""
    import shutil

    from .config import load_config
    from .data.splits import load_split
    from .training.trainer import train as run_training

    config = load_config(config_file)
    if encoder_weights is not None:
        config.model.encoder_weights = str(encoder_weights)
    split_ids = load_split(split_file)
    started = (out / "state.safetensors").exists()
    if resume and not started:
        raise InputError(out, "nothing to resume: no state.safetensors")
    if started and not resume:
        if not overwrite:
            raise InputError(out, "already holds a run; pass --resume to continue it or --overwrite to start afresh")
        shutil.rmtree(out)
    progress = run_training(data, split_ids, config, out, resume, max_minutes)
    print(f"{out}: {progress.epoch} epochs, {progress.minutes:.1f} min, best validation per-patient Dice {progress.best_dice:.4f}")


@app.command()
@reports_errors
def models(
    width: Optional[int] = typer.Option(None, help="Width for every network; default: each network's published width."),
    size: int = typer.Option(256, help="Side of the square input slice, pixels."),
    patch: int = typer.Option(128, help="Side of the cubic input patch of 3D networks, voxels."),
) -> None:
    """Table of every registered network: width, parameters, forward GFLOPs per input (a 3-channel
    LGG slice for 2D networks, a 4-sequence BraTS patch for 3D networks)."""
    from rich.table import Table

    from .models.registry import MODELS, complexity

    table = Table(title="registered networks")
    for column in ("network", "width", "input", "params (M)", "GFLOPs"):
        table.add_column(column, justify="left" if column == "network" else "right", no_wrap=column == "network")
    for name, spec in sorted(MODELS.items()):
        chosen = width or spec.reference_width
        channels, side = (3, size) if spec.spatial_dims == 2 else (4, patch)
        parameters, gflops = complexity(name, chosen, in_channels=channels, size=side)
        table.add_row(name, str(chosen), "x".join(map(str, [channels] + [side] * spec.spatial_dims)),
                      f"{parameters / 1e6:.2f}", f"{gflops:.1f}")
    Console().print(table)


@app.command()
@reports_errors
def benchmark(
    data: Path = typer.Argument(..., help="kaggle_3m folder (or its parent)."),
    split_file: Path = typer.Option(..., "--split", help="Split file; trains on train, selects on val, reports test."),
    models: str = typer.Option("unet", help="Comma-separated network names (see `gliomaseg models`)."),
    losses: str = typer.Option("bce_dice", help="Comma-separated loss names."),
    budget_minutes: float = typer.Option(10.0, help="Training minutes per combination."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for benchmark.csv, benchmark.md and the runs."),
    config_file: Path = typer.Option(Path("configs/lgg_unet16.yaml"), "--config", "-c", help="Base recipe (input size, augmentation, schedule)."),
    width: Optional[int] = typer.Option(None, help="Width for every network; default: the base config's."),
) -> None:
    """Train each network x loss for the same budget, evaluate per patient on the test subset."""
    from .benchmarking import run_benchmark
    from .config import load_config
    from .data.splits import load_split

    base = load_config(config_file)
    if width is not None:
        base.model.width = width
    rows = run_benchmark(data, load_split(split_file), base, [m for m in models.split(",") if m],
                         [loss for loss in losses.split(",") if loss], budget_minutes, out)
    print(f"{len(rows)} combination(s) -> {out / 'benchmark.csv'}")


@app.command()
@reports_errors
def export(
    out: Path = typer.Option(..., "--out", "-o", help="ONNX file to write."),
    model: Optional[Path] = ModelOption,
    format: str = typer.Option("onnx", "--format", help="Export format; only onnx for now."),
    int8: bool = typer.Option(False, "--int8", help="Static int8 quantization (ONNX Runtime), needs --calibration."),
    calibration: Optional[Path] = typer.Option(None, help="kaggle_3m folder with calibration patients."),
    split_file: Optional[Path] = typer.Option(None, "--split", help="Calibrate on this split's train subset only."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
) -> None:
    """Export a model to ONNX (dynamic batch axis, checked), optionally int8-quantized."""
    import tempfile

    from .data.kaggle3m import find_patients
    from .data.splits import load_split
    from .export import calibration_batches, export_onnx, quantize_int8

    if format != "onnx":
        raise InputError(out, f"unsupported export format {format!r}; only onnx")
    if out.exists() and not overwrite:
        raise InputError(out, "already exists; pass --overwrite to replace it")
    if int8 and calibration is None:
        raise InputError(out, "--int8 needs --calibration DATA (training-split patients)")
    if not int8:
        export_onnx(model, out)
        print(f"{out}: fp32 ONNX")
        return
    patients = find_patients(calibration)
    if split_file is not None:
        train_ids = set(load_split(split_file)["train"])
        patients = [p for p in patients if p.id in train_ids]
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "fp32.onnx"
        config = export_onnx(model, fp32)
        quantize_int8(fp32, out, calibration_batches(patients, config))
    print(f"{out}: int8 ONNX, calibrated on {len(patients)} patients")



def _report_problems(problems: list) -> None:
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        console.print(f"{len(problems)} input(s) skipped")
        raise typer.Exit(2)


@app.command()
@reports_errors
def evaluate(
    data: Path = typer.Argument(..., help="kaggle_3m folder (or its parent) with masks, or a folder of labelled BraTS cases."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for per_slice.csv, per_patient.csv (BraTS: per_case.csv), summary.json."),
    model: Optional[Path] = ModelOption,
    split_file: Optional[Path] = typer.Option(None, "--split", help="Split file; evaluate only --subset of it."),
    subset: str = typer.Option("test", help="Subset of --split to evaluate: train, val or test."),
    postprocess: Optional[str] = PostprocessOption,
    tta: Optional[str] = TtaOption,
    backend: str = typer.Option("torch", help="torch, or onnxruntime with an .onnx --model from `gliomaseg export`."),
    overwrite: bool = typer.Option(False, help="Replace an earlier evaluation in --out."),
) -> None:
    """Per-patient (headline), per-slice and global Dice, IoU, precision, recall, specificity,
    pixel accuracy, Tversky index and HD95 (pixels); for BraTS cases, per case and region (WT,
    TC, ET) Dice, HD95 (mm), sensitivity, specificity and volumes. Exit 2 if some inputs were skipped."""
    from .data.detect import detect_dataset
    from .data.splits import load_split
    from .evaluation import Evaluation, check_output_folder, evaluate_patients, select_patients, write_evaluation
    from .report import print_summary

    split_ids = load_split(split_file) if split_file else None
    if detect_dataset(data) == "brats":
        _evaluate_cases(data, out, _load_predictor(model, postprocess, tta, backend, "brats"), split_ids, subset, overwrite)
        return
    predictor = _load_predictor(model, postprocess, tta, backend)
    evaluation = Evaluation()
    patients = select_patients(data, split_ids, subset if split_file else None, evaluation.problems)
    check_output_folder(out, overwrite)  # before the slow part, not only when writing
    evaluate_patients(predictor, patients, evaluation)
    summary = write_evaluation(evaluation, out, overwrite)
    print_summary(summary)
    dice = summary["per_patient"]["dice"]
    print(f"per-patient Dice: mean {dice['mean']:.4f}, median {dice['median']:.4f} over {summary['n_patients']} patients -> {out}")
    _report_problems(evaluation.problems)


def _evaluate_cases(data: Path, out: Path, predictor, split_ids: Optional[dict], subset: str, overwrite: bool) -> None:
    from .evaluation import CaseEvaluation, check_output_folder, evaluate_cases, select_cases, write_case_evaluation
    from .report import print_case_summary

    evaluation = CaseEvaluation()
    cases = select_cases(data, split_ids, subset if split_ids else None, evaluation.problems)
    check_output_folder(out, overwrite)
    evaluate_cases(predictor, cases, evaluation)
    summary = write_case_evaluation(evaluation, out, overwrite)
    print_case_summary(summary)
    regions = ", ".join(f"{r} {summary['per_case'][r]['dice']['mean']:.4f}" for r in summary["per_case"])
    print(f"per-case mean Dice: {regions} over {summary['n_cases']} cases -> {out}")
    _report_problems(evaluation.problems)


@app.command()
@reports_errors
def segment(
    inputs: list[Path] = typer.Argument(..., help="Slice files (TIFF, PNG, JPEG) and/or patient folders, or BraTS case folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for masks, overlays (BraTS: label maps, montages) and results.jsonl."),
    model: Optional[Path] = ModelOption,
    postprocess: Optional[str] = PostprocessOption,
    tta: Optional[str] = TtaOption,
    backend: str = typer.Option("torch", help="torch, or onnxruntime with an .onnx --model from `gliomaseg export`."),
    overwrite: bool = typer.Option(False, help="Replace earlier outputs in --out."),
) -> None:
    """Segment slices or patient folders (mask and overlay PNGs), or BraTS cases (<case>_seg.nii.gz
    on the input's grid, montage PNG); results.jsonl. Exit 2 if some inputs were skipped."""
    from .data.detect import detect_dataset
    from .segmentation import RESULTS, segment as run_segment, segment_cases

    kinds = {detect_dataset(path) for path in inputs if path.exists()}
    if len(kinds) > 1:
        raise InputError(inputs[0], "mixes LGG slices and BraTS cases; segment them in separate calls")
    if kinds == {"brats"}:
        run = segment_cases(inputs, out, _load_predictor(model, postprocess, tta, backend, "brats"), overwrite)
        print(f"{sum(r['type'] == 'case' for r in run.records)} case(s) segmented -> {out / RESULTS}")
        _report_problems(run.problems)
        return
    run = run_segment(inputs, out, _load_predictor(model, postprocess, tta, backend), overwrite)
    slices = sum(r["type"] == "slice" for r in run.records)
    print(f"{slices} slice(s) segmented -> {out / RESULTS}")
    _report_problems(run.problems)
