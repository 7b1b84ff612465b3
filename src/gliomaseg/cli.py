"""The ``gliomaseg`` command: parses arguments and calls the pipeline stages.

Every user-facing error (:class:`~gliomaseg.errors.GliomasegError`) is printed as one line
``error: <file>: <problem>``, never as a traceback. Exit statuses (:mod:`gliomaseg.errors`):
0 done, 1 fatal error (or no input of a batch usable), 2 usage error, 3 some inputs skipped.
Each command imports only what it uses, so a new process starts fast.
"""

from __future__ import annotations

import enum
import functools
from pathlib import Path
from typing import Callable, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_PARTIAL, GliomasegError, InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, evaluate and apply deep segmentation networks for gliomas in brain MRI.")
console = Console(stderr=True)


class Tta(str, enum.Enum):
    """Test-time augmentation modes (see :mod:`gliomaseg.inference.tta`)."""

    none = "none"
    flip = "flip"
    flip_rot90 = "flip+rot90"


class Backend(str, enum.Enum):
    """What runs the network."""

    torch = "torch"
    onnxruntime = "onnxruntime"


class Subset(str, enum.Enum):
    """Subsets of a split file."""

    train = "train"
    val = "val"
    test = "test"


class ExportFormat(str, enum.Enum):
    """Export formats."""

    onnx = "onnx"


def _postprocess_choice(value: Optional[str]) -> Optional[str]:
    """Parser check of ``--postprocess``: a bad value is a usage error listing the choices."""
    from .config import parse_postprocess

    if value is not None:
        try:
            parse_postprocess(value)
        except GliomasegError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


def _version(value: bool) -> None:
    if value:
        print(f"gliomaseg {__version__}")
        raise typer.Exit()


def _show_warnings() -> None:
    """Print the ``gliomaseg`` logger's warnings (float input rescaled, outputs moved apart) as
    one ``warning: ...`` line each on stderr; silence the decoders' own log chatter."""
    import logging

    class ConsoleHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            console.print(f"[yellow]warning:[/yellow] {record.getMessage()}", highlight=False, soft_wrap=True)

    logger = logging.getLogger("gliomaseg")
    if not any(type(h).__name__ == "ConsoleHandler" for h in logger.handlers):
        logger.addHandler(ConsoleHandler(logging.WARNING))
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # its complaints reach the user as gliomaseg errors


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Train, evaluate and apply deep segmentation networks for gliomas in brain MRI.

    Exit status: 0 done; 1 fatal error, or no input could be used; 2 usage error; 3 some
    inputs were skipped (each named on its own `error:` line); warnings are `warning:` lines."""
    _show_warnings()


FoldOption = typer.Option(None, "--fold", help="Cross-validation fold k of a --split file of folds: "
                          "trains on the other folds, validates (evaluates) on fold k.")
ModelOption = typer.Option(None, "--model", "-m", help="Bundled model name (see `gliomaseg models`), run folder or .safetensors; "
                           "default: the bundled model for the input's dataset type.")
def _sequence_choices(values: list[str]) -> list[str]:
    """Parser check of ``--sequence``: a value that is not ``NAME=PATH_OR_SERIES_UID`` with a
    known sequence name is a usage error."""
    from .data.sequences import parse_overrides

    try:
        parse_overrides(values)
    except GliomasegError as exc:
        raise typer.BadParameter(str(exc)) from None
    return values


PostprocessOption = typer.Option(None, "--postprocess", callback=_postprocess_choice,
                                 help="Override the model's post-processing: none, largest-3d or min-size:N (voxels).")
TtaOption = typer.Option(None, "--tta", help="Override the model's test-time augmentation.")
def _threshold_choice(value: Optional[str]) -> Optional[float | tuple[float, ...]]:
    """Parser of ``--threshold``: ``0.3`` or ``0.3,0.3,0.5`` (one per region) -> a float or a
    tuple; text is a usage error. The range and count are checked against the model's config
    when it loads (:func:`_load_predictor`)."""
    from .config import parse_threshold

    if value is None:
        return None
    try:
        return parse_threshold(value)
    except GliomasegError as exc:
        raise typer.BadParameter(str(exc)) from None


ThresholdOption = typer.Option(None, "--threshold", callback=_threshold_choice, metavar="P[,P,...]",
                               help="Override the model's threshold: probability at or above which a voxel is in a region; "
                                    "one for every region, or one per region in the model's order (BraTS: WT,TC,ET, e.g. 0.3,0.3,0.5).")
BackendOption = typer.Option(Backend.torch, "--backend", help="torch, or onnxruntime with an .onnx --model from `gliomaseg export`.")
DeviceOption = typer.Option(None, "--device", help="Run the network on auto, cpu, cuda, cuda:N or mps (runtime.device; default: the config's).")


def _load_predictor(model: Optional[str], postprocess: Optional[str], tta: Optional[Tta], backend: Backend, dataset: str,
                    device: Optional[str] = None, threshold: Optional[float | tuple[float, ...]] = None):
    """The predictor for ``--model`` (default: the bundled model of dataset type ``dataset``),
    with the inference options the user overrode, checked before any input is read."""
    from .inference.predictor import Predictor

    predictor = Predictor.from_path(model, dataset, backend.value)
    if device is not None:
        predictor.config.runtime.device = device
        predictor.config.check("--device")
    if postprocess is not None:
        predictor.config.inference.postprocess = postprocess
    if tta is not None:
        predictor.config.inference.tta = tta.value
    if threshold is not None:
        predictor.config.inference.threshold = threshold
        predictor.config.check("--threshold")  # one per region of this model
    # rebuilt so the overrides are checked now, and a torch network moved to the chosen device
    return Predictor(getattr(predictor.backend, "model", predictor.backend), predictor.config)


def reports_errors(command: Callable) -> Callable:
    """Turn a GliomasegError into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except GliomasegError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            console.print("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def _report_problems(problems: list, done: int) -> None:
    """One ``error:`` line per skipped input; exit 3 if some were skipped, 1 if none was done."""
    for problem in problems:
        console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
    if problems:
        console.print(f"{len(problems)} input(s) skipped")
        raise typer.Exit(EXIT_PARTIAL if done else EXIT_ERROR)


@app.command()
@reports_errors
def split(
    data: Path = typer.Argument(..., help="Dataset folder: kaggle_3m patients, BraTS cases or an image/mask folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Split file to write (JSON)."),
    val: float = typer.Option(0.15, help="Fraction of patients for validation."),
    test: float = typer.Option(0.15, help="Fraction of patients for testing."),
    seed: int = typer.Option(0, help="Shuffling seed."),
    folds: int = typer.Option(0, help="Write K cross-validation folds over every patient instead (train and evaluate with --fold k)."),
    overwrite: bool = typer.Option(False, help="Replace an existing split file."),
) -> None:
    """Patient-level train/val/test split, or K cross-validation folds, stratified by
    institution (TCGA_<inst>_...)."""
    from .data import detect_dataset
    from .data.splits import make_folds, make_split, save_split

    dataset = detect_dataset(data)
    ids = [ref.id for ref in dataset.find(data, require_labels=False)]
    try:
        result = {"folds": make_folds(ids, folds, seed)} if folds else make_split(ids, val, test, seed)
    except ValueError as exc:
        raise InputError(out, str(exc)) from None
    save_split(result, out, overwrite)
    sizes = {f"fold {k}": ids for k, ids in enumerate(result["folds"])} if folds else result
    print(f"{out}: " + ", ".join(f"{k} {len(v)} {dataset.case_noun}s" for k, v in sizes.items()))


# Files a training run writes into its folder; --overwrite replaces these and nothing else.
RUN_FILES = ("config.yaml", "best.safetensors", "last.safetensors", "state.safetensors", "metrics.csv")


@app.command()
@reports_errors
def train(
    data: Path = typer.Argument(..., help="Dataset folder: kaggle_3m patients, BraTS cases or an image/mask folder."),
    split_file: Path = typer.Option(..., "--split", help="Split file from `gliomaseg split`."),
    fold: Optional[int] = FoldOption,
    config_file: Path = typer.Option(..., "--config", "-c", help="YAML config (see configs/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for checkpoints and logs."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value: section.key=value (repeatable)."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its last checkpoint."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop after this much training time in all (resumed runs included)."),
    overwrite: bool = typer.Option(False, help="Start afresh in a run folder that already holds a run (only the run's own files are replaced)."),
    encoder_weights: Optional[Path] = typer.Option(None, help="Local torchvision/timm state dict for the encoder (.pth or .safetensors)."),
    device: Optional[str] = DeviceOption,
    devices: int = typer.Option(1, "--devices", min=1, help="Data-parallel processes on this machine (one per GPU, or CPU processes); "
                                "train.batch_size is their global batch. Several nodes: launch with torchrun (README)."),
) -> None:
    """Train a network; keeps best (validation per-patient Dice) and last checkpoints."""
    import shutil

    from .atomic import require_folder
    from .config import load_config
    from .data.splits import load_split
    from .distributed import processes
    from .models.weights import resolve_weights
    from .training.checks import check_config
    from .training.trainer import train as run_training

    ranks = processes(devices)
    if ranks is None:
        return
    config = load_config(config_file, overrides + ([f"runtime.device={device}"] if device else []))
    check_config(config, str(config_file))
    if encoder_weights is not None:
        config.model.encoder_weights = str(encoder_weights)
    split_ids = load_split(split_file, fold)
    require_folder(out, "run folder")
    started = (out / "state.safetensors").exists()
    if resume and not started:
        raise InputError(out, "nothing to resume: no state.safetensors")
    if started and not resume:
        if not overwrite:
            raise InputError(out, "already holds a run; pass --resume to continue it or --overwrite to start afresh")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "tensorboard", ignore_errors=True)
    progress = run_training(data, split_ids, config, out, resume, max_minutes)
    if ranks.main:
        scored = f"best validation Dice {progress.best_dice:.4f}" if split_ids["val"] else "no validation cases"
        print(f"{out}: {progress.epoch} epochs, {progress.minutes:.1f} min, {scored}; the model: {resolve_weights(out)}")


def _print_folds(records: list[dict], keys: list[str]) -> None:
    """One row per cross-validation fold: its cases, training minutes (when trained) and mean Dice."""
    from .report import print_table

    print_table("folds: mean Dice of the held-out patients", ["n", "train minutes", *keys],
                [[f"fold {r['fold']}", str(r["n"]), f"{r['minutes']:.1f}" if "minutes" in r else "-", *(r[k] for k in keys)]
                 for r in records])


@app.command()
@reports_errors
def cv(
    data: Path = typer.Argument(..., help="Labelled dataset folder holding every patient of the folds."),
    split_file: Path = typer.Option(..., "--split", help="Folds file from `gliomaseg split --folds K`."),
    config_file: Path = typer.Option(..., "--config", "-c", help="YAML config with train.schedule poly (see configs/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the fold runs fold<k>/ and the pooled out-of-fold evaluation."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value: section.key=value (repeatable)."),
    max_minutes: Optional[float] = typer.Option(None, help="Training time budget of each fold, minutes."),
    fold: list[int] = typer.Option([], "--fold", help="Run only this fold (repeatable); default every fold."),
    device: Optional[str] = DeviceOption,
    overwrite: bool = typer.Option(False, help="Replace an earlier pooled evaluation in --out (fold runs are resumed, never replaced)."),
) -> None:
    """K-fold cross-validation by patient: train each fold on the others (resumed if
    interrupted), score it on its held-out patients with its last weights, pool the
    out-of-fold per-patient rows; prints each fold's mean Dice and the pooled statistics."""
    from .atomic import require_folder
    from .config import load_config
    from .crossval import cross_validate, dice_keys, fold_summary
    from .evaluation import check_output_folder, write_evaluation
    from .report import print_table
    from .training.checks import check_config

    config = load_config(config_file, overrides + ([f"runtime.device={device}"] if device else []))
    check_config(config, str(config_file))
    require_folder(out, "cross-validation folder")
    check_output_folder(out, overwrite)
    evaluation, records = cross_validate(data, split_file, config, out, max_minutes, fold)
    keys = dice_keys(evaluation)
    write_evaluation(evaluation, out, overwrite, extra=fold_summary(records, keys))
    _print_folds(records, keys)
    print_table(*evaluation.table())
    print(f"out-of-fold {evaluation.headline()} -> {out}")
    _report_problems(evaluation.problems, len(evaluation.per_case or evaluation.per_slice))


@app.command()
@reports_errors
def ensemble(
    sources: list[str] = typer.Argument(..., help="Weights files, run folders (their model: last weights of a poly run, else best) or `gliomaseg cv` "
                                        "folders (every fold's last.safetensors)."),
    out: Path = typer.Option(..., "--out", "-o", help=".safetensors file to write; use it as --model."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
) -> None:
    """Join trained networks of one recipe into a fold ensemble (their probabilities are
    averaged, as nnU-Net ensembles its folds); inference time grows with each member."""
    from .atomic import require_new_file
    from .crossval import fold_models
    from .models.weights import resolve_weights, save_ensemble

    require_new_file(out, overwrite, "a .safetensors")
    paths = [path for source in sources for path in (fold_models(Path(source)) or [resolve_weights(source)])]
    config = save_ensemble(paths, out)
    print(f"{out}: ensemble of {config.model.members} {config.model.name} networks ({', '.join(map(str, paths))})")


@app.command()
@reports_errors
def models(
    width: Optional[int] = typer.Option(None, help="Width for every network; default: each network's published width."),
    size: int = typer.Option(256, help="Side of the square input slice, pixels."),
    patch: int = typer.Option(128, help="Side of the cubic input patch of 3D networks, voxels."),
) -> None:
    """The bundled models with their metadata, and every registered network: width,
    parameters, forward GFLOPs per input (a 3-channel slice for 2D networks, a 4-sequence
    patch for 3D networks)."""
    from rich.table import Table

    from .models.registry import MODELS, complexity
    from .models.weights import bundled_models

    out = Console()
    for name, card in bundled_models().items():
        table = Table(title=f"bundled model --model {name}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for key, value in card.items():
            table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
        out.print(table)
    table = Table(title="registered networks")
    for column in ("network", "width", "input", "params (M)", "GFLOPs"):
        table.add_column(column, justify="left" if column == "network" else "right", no_wrap=column == "network")
    for name, spec in sorted(MODELS.items()):
        chosen = width or spec.reference_width
        channels, side = (3, size) if spec.spatial_dims == 2 else (4, patch)
        parameters, gflops = complexity(name, chosen, in_channels=channels, size=side)
        table.add_row(name, str(chosen), "x".join(map(str, [channels] + [side] * spec.spatial_dims)),
                      f"{parameters / 1e6:.2f}", f"{gflops:.1f}")
    out.print(table)


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
    model: Optional[str] = ModelOption,
    format: ExportFormat = typer.Option(ExportFormat.onnx, "--format", help="Export format."),
    int8: bool = typer.Option(False, "--int8", help="Static int8 quantization (ONNX Runtime), needs --calibration."),
    calibration: Optional[Path] = typer.Option(None, help="Dataset folder with calibration cases (training patients)."),
    split_file: Optional[Path] = typer.Option(None, "--split", help="Calibrate on this split's train subset only."),
    overwrite: bool = typer.Option(False, help="Replace an existing --out file."),
) -> None:
    """Export a slice model to ONNX (dynamic batch axis, checked), optionally int8-quantized."""
    import tempfile

    from .atomic import require_new_file
    from .data import detect_dataset
    from .data.splits import load_split
    from .export import calibration_batches, export_onnx, quantize_int8

    require_new_file(out, overwrite, "an .onnx")
    if int8 and calibration is None:
        raise InputError(out, "--int8 needs --calibration DATA (training-split patients)")
    if not int8:
        export_onnx(model, out)
        print(f"{out}: fp32 ONNX")
        return
    dataset = detect_dataset(calibration)
    refs = dataset.find(calibration, require_labels=False)
    if split_file is not None:
        train_ids = set(load_split(split_file)["train"])
        refs = [ref for ref in refs if ref.id in train_ids]
        if not refs:
            raise InputError(calibration, f"no {dataset.case_noun} of the split's train subset is in this folder")
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "fp32.onnx"
        config = export_onnx(model, fp32)
        quantize_int8(fp32, out, calibration_batches(dataset, refs, config))
    print(f"{out}: int8 ONNX, calibrated on {len(refs)} {dataset.case_noun}s")


@app.command()
@reports_errors
def evaluate(
    data: Path = typer.Argument(..., help="Labelled dataset folder: kaggle_3m patients, BraTS cases or an image/mask folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for per_slice.csv, per_<patient|case>.csv and summary.json."),
    model: Optional[str] = ModelOption,
    split_file: Optional[Path] = typer.Option(None, "--split", help="Split file; evaluate only --subset of it."),
    subset: Subset = typer.Option(Subset.test, help="Subset of --split to evaluate."),
    fold: Optional[int] = FoldOption,
    postprocess: Optional[str] = PostprocessOption,
    threshold: Optional[str] = ThresholdOption,
    tta: Optional[Tta] = TtaOption,
    backend: Backend = BackendOption,
    device: Optional[str] = DeviceOption,
    devices: int = typer.Option(1, "--devices", min=1, help="Processes sharing the cases (one per GPU, or CPU processes); one merged report."),
    overwrite: bool = typer.Option(False, help="Replace an earlier evaluation in --out."),
) -> None:
    """Per-patient (headline), per-slice and global Dice, IoU, precision, recall, specificity,
    pixel accuracy, Tversky index and HD95 (pixels); for BraTS cases, per case and region (WT,
    TC, ET) Dice, HD95 (mm), sensitivity, specificity and volumes. With --model a `gliomaseg cv`
    folder and --split its folds (no --fold): out of fold, each fold's model on the patients it
    never saw, pooled (to compare post-processing by cross-validation). Exit 3 if some inputs were skipped."""
    from .crossval import dice_keys, evaluate_folds, fold_models, fold_summary
    from .data import detect_dataset
    from .data.splits import load_split
    from .distributed import processes
    from .evaluation import Evaluation, check_output_folder, evaluate as run_evaluation, select, write_evaluation
    from .report import print_table
    from .verify import usable

    check_output_folder(out, overwrite)  # before the slow part, not only when writing
    extra = None
    if split_file is not None and fold is None and model is not None and fold_models(Path(model)):
        if devices > 1:
            raise InputError(model, "out-of-fold evaluation of a cross-validation folder runs in one process; drop --devices")
        name = detect_dataset(data).name
        evaluation, records = evaluate_folds(data, split_file, Path(model), load=lambda weights: _load_predictor(
            str(weights), postprocess, tta, backend, name, device, threshold))
        extra = fold_summary(records, dice_keys(evaluation))
        _print_folds(records, dice_keys(evaluation))
    else:
        ranks = processes(devices)
        if ranks is None:
            return
        split_ids = load_split(split_file, fold) if split_file else None
        dataset = detect_dataset(data)
        predictor = _load_predictor(model, postprocess, tta, backend, dataset.name, ranks.device_name(device), threshold)
        evaluation = Evaluation(dataset)
        chosen = "val" if fold is not None else subset.value  # a fold's held-out patients are its val subset
        refs = select(dataset, data, split_ids, chosen if split_file else None, evaluation.problems)
        refs = usable(dataset, refs, evaluation.problems)  # the cheap part of `verify`: headers, before any prediction
        run_evaluation(predictor, dataset, refs, evaluation, ranks)
        ranks.stop()
        if not ranks.main:
            return
    if not (evaluation.per_case or evaluation.per_slice):
        _report_problems(evaluation.problems, 0)  # nothing to score: one line per skipped input, exit 1
    summary = write_evaluation(evaluation, out, overwrite, extra)
    print_table(*evaluation.table())
    rule = summary.get("empty_slice_rule") or summary.get("empty_region_rule")
    print(f"{evaluation.headline()} -> {out}\n(empty masks: {rule}; HD95 in {summary['hd95_unit']})")
    _report_problems(evaluation.problems, len(evaluation.per_case or evaluation.per_slice))


@app.command()
@reports_errors
def thresholds(
    data: Path = typer.Argument(..., help="Labelled dataset folder holding every case of the folds."),
    model: Path = typer.Option(..., "--model", "-m", help="`gliomaseg cv` folder: every fold's last.safetensors."),
    split_file: Path = typer.Option(..., "--split", help="The folds file the cv folder was trained on."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for thresholds.json and per_case.csv."),
    candidates: Optional[str] = typer.Option(None, "--candidates", metavar="P,P,...",
                                             help="Thresholds to try for every region, each in (0, 1); "
                                                  "default 0.05,0.1,0.2,0.3,0.4,0.5,0.6."),
    postprocess: Optional[str] = PostprocessOption,
    threshold: Optional[str] = ThresholdOption,
    tta: Optional[Tta] = TtaOption,
    device: Optional[str] = DeviceOption,
    overwrite: bool = typer.Option(False, help="Replace an earlier choice in --out."),
) -> None:
    """Choose one probability threshold per region (BraTS: WT, TC, ET) on the out-of-fold
    predictions of a cross-validation, as nnU-Net chooses its post-processing; prints each
    region's out-of-fold Dice at every candidate, the choice, and a nested estimate (each fold
    scored with thresholds chosen on the other folds). Regions meet in the label map, so each is
    swept with the others at the models' thresholds, or at --threshold where given. Use the
    choice as --threshold."""
    from .config import parse_threshold
    from .crossval import trained_dataset
    from .report import print_table
    from .thresholds import CANDIDATES, check_output, choose_thresholds, write_choice

    tried = parse_threshold(candidates) if candidates else CANDIDATES
    check_output(out, overwrite)
    name = trained_dataset(model)
    if name == "auto":
        raise InputError(model, "holds no fold models (fold<k>/last.safetensors); train them with gliomaseg cv")
    choice = choose_thresholds(data, split_file, model, tried if isinstance(tried, tuple) else (tried,),
                               load=lambda weights: _load_predictor(str(weights), postprocess, tta, Backend.torch, name, device, threshold))
    write_choice(choice, out, overwrite)
    regions, dice = choice["regions"], choice["dice"]
    start = "--threshold" if threshold is not None else "the models' thresholds"
    print_table(f"out-of-fold mean Dice of {choice['n_cases']} cases, other regions at {start}",
                [f"at {t:g}" for t in choice["candidates"]] + ["own", "chosen", "nested"],
                [[region, *choice["mean_dice"][region].values(), dice[region]["own"], dice[region]["chosen"], dice[region]["nested"]]
                 for region in regions])
    print(f"chosen: --threshold {','.join(f'{t:g}' for t in choice['chosen'])} (the start: "
          f"{','.join(f'{t:g}' for t in choice['own'])}); nested out-of-fold Dice "
          + ", ".join(f"{region} {dice[region]['nested']:.4f}" for region in regions) + f" -> {out}")
    _report_problems(choice["problems"], choice["n_cases"])


@app.command()
@reports_errors
def verify(
    data: Path = typer.Argument(..., help="Dataset folder: kaggle_3m patients, BraTS cases or an image/mask folder."),
    quick: bool = typer.Option(False, "--quick", help="Layout and file headers only, nothing decoded (what train and evaluate check first)."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Require every case's masks or label map (--no-labels: data for segment)."),
) -> None:
    """Check a dataset before training or evaluation: one `error:` line per problem (missing or
    extra files, unreadable or truncated files, shape, spacing and affine mismatches, label values
    outside the convention, empty labels, NaN or infinite voxels, duplicate or missing slice
    numbers, non-binary masks). Exit 0 if clean, 1 if not."""
    from .verify import verify_dataset

    report = verify_dataset(data, full=not quick, require_labels=labels)
    for problem in report.problems:
        console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
    state = "clean" if report.clean else f"{len(report.problems)} problem(s)"
    print(f"{data}: {report.dataset.name}, {report.cases} {report.dataset.case_noun}s, {state} ({report.seconds:.1f} s)")
    if not report.clean:
        raise typer.Exit(EXIT_ERROR)


@app.command()
@reports_errors
def segment(
    inputs: list[Path] = typer.Argument(..., help="Slice files, patient folders, image folders, BraTS case folders, "
                                        "DICOM folders (searched recursively) or NIfTI/NRRD/MHA volumes and folders of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for masks and overlays (volumes: label maps, montages, DICOM SEG) and results.jsonl."),
    model: Optional[str] = ModelOption,
    sequences: list[str] = typer.Option([], "--sequence", callback=_sequence_choices, help="Which file or series is a sequence: NAME=PATH_OR_SERIES_UID, "
                                        "NAME one of flair, t1, t1ce, t2 (repeatable); default: identified from names."),
    save_probabilities: bool = typer.Option(False, "--save-probabilities", help="Volumes: also write <case>_probabilities.nii.gz "
                                            "(one channel per region, steps of 1/255) on the input's grid."),
    postprocess: Optional[str] = PostprocessOption,
    threshold: Optional[str] = ThresholdOption,
    tta: Optional[Tta] = TtaOption,
    backend: Backend = BackendOption,
    device: Optional[str] = DeviceOption,
    overwrite: bool = typer.Option(False, help="Replace earlier outputs in --out."),
) -> None:
    """Segment slices and patient folders (mask and overlay PNGs per slice), image folders,
    BraTS cases (<case>_seg.nii.gz on the input's grid, montage PNG), NIfTI/NRRD/MHA studies
    (<study>_seg.nii.gz on the FLAIR volume's grid) or DICOM studies (also <study>_seg.dcm,
    a DICOM SEG on the FLAIR series); results.jsonl with volumes in mL. Studies go to the LGG
    model unless --model names another (brats: T1, T1ce, T2 and FLAIR). Exit 3 if some inputs
    were skipped."""
    from .data import detect_dataset
    from .data.base import WriteOptions
    from .data.sequences import parse_overrides
    from .models.weights import DEFAULT_BUNDLED
    from .segmentation import RESULTS, check_output_folder, segment as run_segment

    chosen = parse_overrides(sequences)
    check_output_folder(out, overwrite)
    if model is None:
        kinds = {detect_dataset(path).name for path in inputs if path.exists()}
        if len({DEFAULT_BUNDLED.get(kind, kind) for kind in kinds}) > 1:
            raise InputError(inputs[0], f"the inputs hold different kinds of data ({', '.join(sorted(kinds))}): "
                             "segment them in separate calls, or name one --model for all")
        dataset = kinds.pop() if kinds else "kaggle3m"
    else:
        dataset = "kaggle3m"  # only used when --model is None
    predictor = _load_predictor(model, postprocess, tta, backend, dataset, device, threshold)
    name = Path(model).name if model else DEFAULT_BUNDLED.get(dataset, dataset)
    options = WriteOptions(save_probabilities, f"{name} ({predictor.config.model.name})")
    run = run_segment(inputs, out, predictor, overwrite, chosen, options)
    print(f"{run.segmented} input(s) segmented -> {out / RESULTS}")
    _report_problems(run.problems, run.segmented)


@app.command()
@reports_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on; anything but loopback needs --token."),
    port: int = typer.Option(8000, help="TCP port."),
    model: list[str] = typer.Option(["lgg", "brats"], "--model", "-m", help="Model to keep loaded (repeatable): bundled name, run folder or .safetensors."),
    results: Path = typer.Option(Path("gliomaseg-jobs"), help="Folder of the jobs and their results (kept across restarts)."),
    token: Optional[str] = typer.Option(None, envvar="GLIOMASEG_TOKEN", help="API token every /api request must carry (Authorization: Bearer)."),
    max_upload_mb: float = typer.Option(512, help="Largest upload in MiB (zip contents counted inflated)."),
    workers: Optional[int] = typer.Option(None, help="Inference threads; default: one per two CPU cores."),
    max_queue: int = typer.Option(16, help="Jobs waiting or running before new ones are answered 503 with Retry-After."),
    ttl_hours: float = typer.Option(24, help="Hours a finished job is kept."),
    cors_origin: list[str] = typer.Option([], help="Origin allowed by CORS (repeatable); default: CORS off."),
) -> None:
    """Web page and REST API (/api/v1, OpenAPI schema at /docs) segmenting uploads with warm models."""
    try:
        import uvicorn

        from .serve.app import Settings, check_binding, create_app, default_workers
    except ImportError as exc:
        raise GliomasegError(f"gliomaseg serve needs the serve extra: pip install 'gliomaseg[serve]' ({exc.name} missing)") from None
    import os

    import torch

    check_binding(host, token)
    workers = workers or default_workers()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    settings = Settings(results, list(model), token or None, max_upload_mb, workers, max_queue, ttl_hours, list(cors_origin))
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def main() -> None:
    """The ``gliomaseg`` console command: run the command, then end the process without the
    interpreter's teardown.

    Once a command has finished, every output is closed and renamed into place, so what is
    left is freeing PyTorch's modules, which takes about 0.4 s on a 2-core CPU
    (``benchmarks/startup.py``). The exit handlers still run (temporary folders, logging), the
    threads the command started are joined and the standard streams are flushed; then
    ``os._exit`` ends the process with the command's exit status.
    """
    import atexit
    import logging
    import os
    import sys
    import threading

    try:
        app(prog_name="gliomaseg")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_ERROR)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
