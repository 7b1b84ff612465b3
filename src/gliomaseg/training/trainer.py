"""The training loop: Adam or nnU-Net's SGD, on-the-fly augmentation, bf16 autocast, validation
per-patient Dice, ReduceLROnPlateau with early stopping or nnU-Net's poly schedule over a time
budget, best and last checkpoints, resume.

The loop is the same for every dataset: a *bank* (:class:`.banks.SliceBank` for slice
datasets, :class:`.banks.VolumeBank` for windows of volumes) draws augmented batches, and a
*validator* scores each validation case with the one :class:`~gliomaseg.inference.Predictor`
(per-patient Dice; with several regions, as BraTS, the mean of their Dice).

Files written to the run folder::

    config.yaml          the resolved config
    best.safetensors     weights with the best validation mean per-patient Dice (the model
                         of a plateau run; none without validation cases)
    last.safetensors     weights at the end of the last epoch (the model of a poly run)
    state.safetensors    optimizer, scheduler, RNG and progress (and the auxiliary heads of
                         deep supervision, and the moving average of ``train.ema``), for --resume
    metrics.csv          one row per epoch
    tensorboard/         the same curves for TensorBoard

With ``train.ema`` above 0 the validated and saved weights are an exponential moving average of
the trained ones (:class:`torch.optim.swa_utils.AveragedModel`), updated after every step.

Under ``torchrun`` the loop is data-parallel (see :mod:`gliomaseg.distributed`): ``train.batch_size``
and ``train.slices_per_epoch`` are global, shared evenly by the ranks; rank 0 validates and
writes; the time budget, scheduler and early stopping agree on every rank; ``state.safetensors``
holds every rank's random state.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from rich.progress import Progress, track

from ..config import AugmentConfig, Config, save_config
from ..data.augment import trained_mirror_axes
from ..data.base import Case, DatasetType, resolve_dataset
from ..data.preprocessing import Preprocessing, fit_landmarks
from ..errors import ConfigError, InputError
from ..inference.predictor import Predictor
from ..losses import create_loss
from ..metrics import overlap_metrics
from ..models.registry import create_model, load_encoder_weights, spatial_dims
from ..models.weights import load_initial_weights, load_state, save_model, save_state, state_section
from ..runtime import autocast, grad_scaler, keep_freed_memory, memory_format, set_threads
from ..verify import usable
from .banks import DiskStore, SliceBank, VolumeBank, pad_to, select_tumor_voxels
from .checks import check_config
from .deep_supervision import DeepSupervision, SupervisedLoss
from ..distributed import Ranks

Validator = Callable[[torch.nn.Module], list[float]]  # network in eval mode -> one score per validation case


class Bank(Protocol):
    """Training samples (in memory, or mapped from disk): draws sample indices and turns them
    into batches."""

    def __len__(self) -> int: ...  # samples in one pass, the epoch size when none is configured

    def sample(self, count: int, tumor_fraction: float, generator: torch.Generator) -> torch.Tensor: ...

    def batch(self, index: torch.Tensor, augment: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...

# train.optimizer sgd: nnU-Net's momentum and gradient-norm clip (Isensee et al. 2021,
# nnUNetTrainer: SGD, momentum 0.99, Nesterov; clip_grad_norm_ at 12)
SGD_MOMENTUM = 0.99
SGD_CLIP_NORM = 12.0
CSV_FIELDS = ("epoch", "train_loss", "val_dice_mean", "val_dice_median", "lr", "minutes", "slices_per_s")


@dataclasses.dataclass
class RunProgress:
    """What --resume restores besides weights and optimizer."""

    epoch: int = 0
    best_dice: float = -1.0
    epochs_since_best: int = 0
    minutes: float = 0.0  # training wall time summed over all sessions of the run
    history: list[dict] = dataclasses.field(default_factory=list)


def validate(predictor: Predictor, cases: list[Case]) -> list[float]:
    """Score of each validation case on its own grid: the Dice of its whole volume (per-patient
    Dice), averaged over the regions where there are several (BraTS WT, TC, ET)."""
    scores = []
    for case in cases:
        predicted, truth = case.labels.to_regions(predictor.predict(case).label), case.labels.to_regions(case.label)
        scores.append(float(np.mean([overlap_metrics(p, t)["dice"] for p, t in zip(predicted, truth)])))
    return scores


def _require_as_saved(path: Path, saved: bool, configured: bool, what: str, option: str) -> None:
    """Refuse to resume a run whose state was saved with ``what`` (deep supervision's heads, a
    moving average, nnU-Net's SGD) where the config now has none, or the reverse.

    Raises:
        InputError: ``saved`` and ``configured`` differ.
    """
    if saved != configured:
        raise InputError(path, f"the run was saved {'with' if saved else 'without'} {what}; "
                         f"resume it with the {option} it started with")


def _create_optimizer(parameters, train) -> tuple[torch.optim.Optimizer, float | None]:
    """The optimiser of ``train.optimizer`` (see ``config.TrainConfig``) over ``parameters``,
    and the global gradient norm it clips to before each step (None: no clipping)."""
    if train.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=train.lr, weight_decay=train.weight_decay,
                               momentum=SGD_MOMENTUM, nesterov=True), SGD_CLIP_NORM
    return torch.optim.Adam(parameters, lr=train.lr, weight_decay=train.weight_decay), None


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, rest = {}, {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"optimizer.{index}.{name}"] = value
    rest["param_groups"] = state["param_groups"]
    return tensors, rest


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


class Trainer:
    """Trains ``config``'s network on a bank of training samples, selecting on validation scores.

    Args:
        config: run config.
        bank: the training samples (see :class:`Bank`).
        validator: scores the network on each validation patient or case, in [0, 1].
        out: run folder.
        ranks: this process's rank (default: from the ``torchrun`` environment; one process
            without it).

    Raises:
        ConfigError: the device is not available, or ``train.batch_size`` is not a multiple
            of the number of ranks.
    """

    def __init__(self, config: Config, bank: Bank, validator: Validator, out: Path, ranks: Ranks | None = None):
        self.config, self.bank, self.validator, self.out = config, bank, validator, Path(out)
        self.ranks = ranks = ranks or Ranks.from_environment()
        if config.train.batch_size % ranks.world:
            raise ConfigError(f"train.batch_size {config.train.batch_size} is the global batch: it must be a multiple "
                              f"of the {ranks.world} processes")
        set_threads(ranks.threads(config.runtime.threads))
        keep_freed_memory()  # 3D recipe 1.5-1.6x on the CPU (see its docstring)
        torch.manual_seed(config.train.seed)  # the same initial weights on every rank
        self.generator = torch.Generator().manual_seed(ranks.seed(config.train.seed))
        self.device = ranks.device(config.runtime.device)
        ranks.start(self.device)
        self.memory_format = memory_format(config.runtime.channels_last, spatial_dims(config.model.name))
        model = create_model(config.model)
        if config.model.encoder_weights:
            load_encoder_weights(model, config.model.encoder_weights)
        if config.model.init_weights:
            load_initial_weights(model, config)
        self.model = ranks.sync_batchnorm(model, self.device).to(self.device, memory_format=self.memory_format)
        levels = config.train.deep_supervision
        # what the optimizer trains: the network, with the auxiliary heads of deep supervision
        self.trainee = DeepSupervision(self.model, levels).to(self.device, memory_format=self.memory_format) if levels else self.model
        self.trained = ranks.wrap(self.trainee, self.device)  # DDP under several ranks; saved weights are self.model's
        # train.ema: the moving average of self.model's weights and BatchNorm statistics, which
        # is then what validation scores and the checkpoints hold (self.shipped)
        self.average = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.train.ema),
                                     use_buffers=True) if config.train.ema else None
        self.shipped = self.average.module if self.average is not None else self.model
        self.scaler = grad_scaler(config.runtime.bf16, self.device)
        self.loss = SupervisedLoss(create_loss(config.train.loss), levels)
        self.optimizer, self.clip_norm = _create_optimizer(self.trainee.parameters(), config.train)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="max", factor=config.train.plateau_factor,
            patience=config.train.plateau_patience, min_lr=config.train.min_lr)
        self.progress = RunProgress()
        self.budget_s = math.inf  # training time budget in seconds (set by fit)

    # -- checkpoints -------------------------------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        """This rank's random states: sample generator, torch CPU and (on CUDA) device RNG."""
        states = {"rng": self.generator.get_state(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            states["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return states

    def save(self) -> None:
        """Write ``last.safetensors`` and, in one file so they always match, the weights with the
        optimizer, scheduler, every rank's RNG states (``rng.<rank>``...) and progress
        (``state.safetensors``). Every rank calls it (it gathers the RNG states); rank 0 writes."""
        states = self.ranks.gather(self._rng_states())
        if not self.ranks.main:
            return
        save_model(self.shipped, self.config, self.out / "last.safetensors", epoch=self.progress.epoch)
        tensors, rest = _optimizer_state(self.optimizer)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        if self.average is not None:
            tensors.update({f"ema.{k}": v for k, v in self.average.state_dict().items()})
        if self.trainee is not self.model:
            tensors.update({f"heads.{k}": v for k, v in self.trainee.heads.state_dict().items()})
        tensors.update({f"{name}.{rank}": value for rank, state in enumerate(states) for name, value in state.items()})
        rest.update(optimizer=self.config.train.optimizer,
                    scheduler=self.scheduler.state_dict(), progress=dataclasses.asdict(self.progress),
                    scaler=self.scaler.state_dict(), world=self.ranks.world)
        save_state(self.out / "state.safetensors", tensors, rest)

    def resume(self) -> None:
        """Continue from the run folder's ``state.safetensors``.

        Raises:
            InputError: the run folder has no usable training state, or one saved with deep
                supervision on where ``train.deep_supervision`` is now off, or the reverse, or
                with a moving average (``train.ema``) where there is now none, or the reverse,
                or with SGD (``train.optimizer``) where it is now Adam, or the reverse.
        """
        path = self.out / "state.safetensors"
        tensors, rest = load_state(path)
        average = state_section(tensors, "ema")
        _require_as_saved(path, bool(average), self.average is not None, "a moving average of the weights", "train.ema")
        if average:
            self.average.load_state_dict(average)
        self.model.load_state_dict(state_section(tensors, "model"))
        heads = state_section(tensors, "heads")
        # else the optimizer's parameters would not match
        _require_as_saved(path, bool(heads), self.trainee is not self.model, "deep supervision", "train.deep_supervision")
        if heads:
            self.trainee.heads.load_state_dict(heads)
        # states written before train.optimizer: Adam; else the optimizer's state would not match
        _require_as_saved(path, rest.get("optimizer", "adam") == "sgd", self.config.train.optimizer == "sgd",
                          "nnU-Net's SGD", "train.optimizer")
        _restore_optimizer(self.optimizer, tensors, rest)
        self.scheduler.load_state_dict(rest["scheduler"])
        if rest.get("scaler"):
            self.scaler.load_state_dict(rest["scaler"])
        self.progress = RunProgress(**rest["progress"])
        rank = self.ranks.rank
        if "rng" in tensors:  # state of gliomaseg 0.2: one process, unnumbered
            tensors["rng.0"], tensors["torch_rng.0"] = tensors.pop("rng"), tensors.pop("torch_rng")
        if f"rng.{rank}" in tensors:
            self.generator.set_state(tensors[f"rng.{rank}"])
            torch.set_rng_state(tensors[f"torch_rng.{rank}"])
            if self.device.type == "cuda" and f"cuda_rng.{rank}" in tensors:
                torch.cuda.set_rng_state(tensors[f"cuda_rng.{rank}"], self.device)
        else:  # a run resumed on more ranks than it was saved with: fresh draws for this rank
            self.generator.manual_seed(self.ranks.seed(self.config.train.seed) + self.progress.epoch)

    # -- loop --------------------------------------------------------------------------------
    def _epoch(self, deadline: float, bar: Progress) -> tuple[float, int]:
        """One epoch of this rank's share of the samples; returns its mean loss and the
        samples seen by all ranks. Stops at ``deadline`` as soon as any rank passes it. On an
        accelerator the next batch is read and augmented in a background thread while the
        network trains on this one; on the CPU in line, as that thread's work would compete for
        the cores the network trains on (half the slices/s on 2 cores, ``benchmarks/training.py``).
        Either way in order, so the draws are the same."""
        cfg, world = self.config.train, self.ranks.world
        count = (cfg.slices_per_epoch or len(self.bank)) // world
        batch_size = cfg.batch_size // world
        order = self.bank.sample(count, cfg.tumor_fraction, self.generator)
        self.trained.train()
        task = bar.add_task(f"epoch {self.progress.epoch + 1}", total=count)
        losses, seen = [], 0
        pin = self.device.type == "cuda"
        epoch_start = time.monotonic()
        starts = range(0, count - batch_size + 1, batch_size)

        def load(start: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self.bank.batch(order[start:start + batch_size], self.config.augment, self.generator)

        prefetch = self.device.type != "cpu"
        with ThreadPoolExecutor(1) as loader:
            pending = [loader.submit(load, start) for start in starts[:1]] if prefetch else []
            for step, start in enumerate(starts):
                if self.ranks.any(time.monotonic() > deadline, self.device):
                    break
                if cfg.schedule == "poly":
                    self._poly_lr(step / len(starts), time.monotonic() - epoch_start)
                images, masks = pending.pop().result() if prefetch else load(start)
                if prefetch and step + 1 < len(starts):
                    pending.append(loader.submit(load, starts[step + 1]))
                losses.append(self._step(images, masks, pin))
                seen += batch_size * world
                bar.update(task, advance=batch_size,
                           description=f"epoch {self.progress.epoch + 1} loss {np.mean(losses[-20:]):.3f}")
        bar.remove_task(task)
        return (float(np.mean(losses)) if losses else math.nan), seen

    def _poly_lr(self, epoch_fraction: float, seconds: float) -> None:
        """nnU-Net's poly schedule, ``lr * (1 - t)^0.9``, ``t`` the larger of the share of
        ``max_epochs`` and of the time budget spent so far (``seconds`` into this epoch)."""
        cfg = self.config.train
        spent = (self.progress.epoch + epoch_fraction) / cfg.max_epochs
        if math.isfinite(self.budget_s):
            spent = max(spent, (self.progress.minutes * 60 + seconds) / self.budget_s)
        lr = cfg.lr * max(0.0, 1.0 - spent) ** 0.9
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _step(self, images: torch.Tensor, masks: torch.Tensor, pin: bool) -> float:
        """One optimisation step on a batch; returns its loss."""
        if pin:  # page-locked host memory: the copy to the GPU runs asynchronously
            images, masks = images.pin_memory(), masks.pin_memory()
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with autocast(self.config.runtime.bf16, self.device):
            outputs = self.trained(images)
        loss = self.loss(outputs, masks.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.clip_norm is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradient, not the scaled one
            torch.nn.utils.clip_grad_norm_(self.trainee.parameters(), self.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update_parameters(self.model)
        return loss.item()

    def fit(self, max_minutes: float | None = None) -> RunProgress:
        """Train until ``max_epochs``, early stopping, or ``max_minutes`` of total training time.

        Returns:
            the final progress record (best validation Dice, epochs, minutes).
        """
        cfg = self.config.train
        main = self.ranks.main
        writer = None
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.out / "config.yaml")
            writer = _tensorboard(self.out / "tensorboard", self.progress.epoch + 1)
        self.budget_s = budget = math.inf if max_minutes is None else max_minutes * 60
        plateau = cfg.schedule == "plateau"
        with Progress(transient=True, disable=not main) as bar:
            while self.progress.epoch < cfg.max_epochs and not (plateau and self.progress.epochs_since_best >= cfg.early_stop_patience):
                left = budget - self.progress.minutes * 60
                if left <= 0:
                    break
                started = time.monotonic()
                train_loss, seen = self._epoch(started + left, bar)
                self.shipped.eval()
                epoch = self.progress.epoch + 1
                final = epoch >= cfg.max_epochs or time.monotonic() - started >= left
                validate_now = epoch % cfg.val_every == 0 or final
                # rank 0 validates; its scores and clock drive every rank's schedule
                dices, elapsed = self.ranks.broadcast(
                    ((self.validator(self.shipped) if validate_now else []), time.monotonic() - started) if main else None)
                self._record(train_loss, dices, elapsed, seen, writer)
        if writer is not None:
            writer.close()
        return self.progress

    def _record(self, train_loss: float, dices: list[float], seconds: float, seen: int, writer) -> None:
        progress = self.progress
        progress.epoch += 1
        progress.minutes += seconds / 60
        dice_mean = float(np.mean(dices)) if dices else math.nan
        row = {
            "epoch": progress.epoch,
            "train_loss": round(train_loss, 5),
            "val_dice_mean": round(dice_mean, 5),
            "val_dice_median": round(float(np.median(dices)), 5) if dices else math.nan,
            "lr": self.optimizer.param_groups[0]["lr"],
            "minutes": round(progress.minutes, 3),
            "slices_per_s": round(seen / seconds, 2),
        }
        progress.history.append(row)
        if self.config.train.schedule == "plateau":
            self.scheduler.step(dice_mean)
        if dices and dice_mean > progress.best_dice:  # no dices: not validated (poly, val_every > 1)
            progress.best_dice, progress.epochs_since_best = dice_mean, 0
            if self.ranks.main:
                save_model(self.shipped, self.config, self.out / "best.safetensors", epoch=progress.epoch, val_dice_mean=dice_mean)
        elif dices:
            progress.epochs_since_best += 1
        self.save()
        if not self.ranks.main:
            return
        _append_csv(self.out / "metrics.csv", row)
        if writer is not None:
            for key in ("train_loss", "val_dice_mean", "val_dice_median", "lr", "slices_per_s"):
                writer.add_scalar(key, row[key], progress.epoch)
            writer.flush()
        print(f"epoch {progress.epoch}: loss {train_loss:.4f}  val Dice mean {dice_mean:.4f}  "
              f"lr {row['lr']:.1e}  {row['slices_per_s']} slices/s  {progress.minutes:.1f} min", flush=True)


def _append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _tensorboard(folder: Path, purge_step: int):
    """A TensorBoard writer, or ``None`` where the optional ``tensorboard`` extra is not
    installed (``metrics.csv`` holds the same curves)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


def train(data: Path, split: dict[str, list[str]], config: Config, out: Path, resume: bool = False, max_minutes: float | None = None) -> RunProgress:
    """Load the split's train and val cases from ``data`` and train (see :class:`Trainer`).
    ``config.data.dataset`` ``"auto"`` is resolved from the folder's layout, and
    ``inference.mirror_axes`` from the augmentation, and both are saved so in the run's config.

    Raises:
        InputError: a case of the split is missing from ``data`` or unreadable.
        ConfigError: the config does not fit the dataset type or the network; the plateau
            schedule with no validation case (it chooses epochs on them; train on every case
            with ``train.schedule: poly``).
    """
    if config.train.schedule == "plateau" and not split["val"]:
        raise ConfigError("train.schedule plateau needs validation cases (its learning rate, early stopping and "
                          "best checkpoint follow them) and the split has none; use train.schedule=poly")
    dataset = resolve_dataset(data, config.data.dataset)
    config.data.dataset = dataset.name
    config.inference.mirror_axes = trained_mirror_axes(config.augment, spatial_dims(config.model.name))
    check_config(config)
    bank, validator = prepare(dataset, data, split, config, Path(out) / "bank" if config.train.bank == "disk" else None)
    trainer = Trainer(config, bank, validator, out)
    try:
        if resume:
            trainer.resume()
        return trainer.fit(max_minutes)
    finally:
        trainer.ranks.stop()


def require_split_ids(data: Path, split: dict[str, list[str]], found: dict, noun: str) -> list[str]:
    """The split's train and val ids, in that order, checked against the ids ``found`` in ``data``.

    Raises:
        InputError: an id of the split is missing from ``data``.
    """
    wanted = split["train"] + split["val"]
    missing = [item for item in wanted if item not in found]
    if missing:
        raise InputError(data, f"{len(missing)} {noun}(s) of the split are missing, e.g. {missing[0]}")
    return wanted


def prepare(dataset: DatasetType, data: Path, split: dict[str, list[str]], config: Config,
            store: Path | None = None) -> tuple[SliceBank | VolumeBank, Validator]:
    """Read the split's train and val cases; preprocess the train cases into the bank the
    network trains on, keep the val cases for the validator. With a ``store`` folder (volume
    datasets), each preprocessed case goes to disk at once (:class:`.banks.DiskStore`) and the
    bank reads it through memory maps: memory holds one case at a time, whatever their number.
    With ``data.standardize: histogram`` and no ``data.landmarks`` yet, the landmarks are first
    fitted on the train cases (:func:`.preprocessing.fit_landmarks`, one more read of each)
    and written into ``config``, which the run saves with its weights.

    Raises:
        InputError: a case of the split is missing or unreadable; the first problem that the
            cheap checks of :func:`gliomaseg.verify.usable` find (headers, sizes, grids).
    """
    by_id = {ref.id: ref for ref in dataset.find(data)}
    problems: list[InputError] = []
    usable(dataset, [by_id[cid] for cid in require_split_ids(data, split, by_id, dataset.case_noun)], problems)
    if problems:  # the cheap part of `gliomaseg verify`, before any case is decoded
        more = f" (and {len(problems) - 1} more problem(s): run gliomaseg verify {data})" if len(problems) > 1 else ""
        raise InputError(problems[0].path, problems[0].problem + more)
    channels = config.model.in_channels // (2 * config.data.context_slices + 1) if spatial_dims(config.model.name) == 2 else config.model.in_channels
    if config.data.standardize == "histogram" and not config.data.landmarks:
        cases = (dataset.load(by_id[cid], channels).images for cid in split["train"])
        try:
            config.data.landmarks = fit_landmarks(cases, dataset.volumetric)
        except ValueError as exc:
            raise InputError(data, str(exc)) from None
    preprocessing = Preprocessing.from_config(config.data, dataset.volumetric)
    window = tuple(config.data.patch_size)
    disk = DiskStore(store) if store is not None and dataset.volumetric else None
    rng = np.random.default_rng(config.train.seed)
    images, targets, tumor, tumor_voxels = [], [], [], []
    for cid in track(split["train"], description=f"loading {dataset.case_noun}s", transient=True):
        case = dataset.load(by_id[cid], channels)
        prepared = preprocessing.forward(case.images)
        regions = case.labels.to_regions(case.label)
        image, target = prepared.images, preprocessing.target(regions, prepared)
        if disk is not None:  # padded and tumor voxels chosen while in memory, then memory-mapped
            image, target = pad_to(image, window), pad_to(target, window)
            tumor_voxels.append(select_tumor_voxels(target, rng, config.train.tumor_sampling))
            image, target = disk.put(f"{cid}_image", image), disk.put(f"{cid}_target", target.to(torch.uint8))
        images.append(image)
        targets.append(target)
        tumor.append(torch.from_numpy(regions[0].reshape(-1, regions.shape[-1]).any(axis=0)))
    val_cases = [dataset.load(by_id[cid], channels) for cid in split["val"]]
    if dataset.volumetric:
        three_d = spatial_dims(config.model.name) == 3
        bank = VolumeBank(images, targets, window, None if three_d else config.data.context_slices,
                          config.train.seed, tumor_voxels or None, disk, config.train.tumor_sampling)
    else:
        bank = SliceBank(images, targets, tumor, config.data.context_slices, config.train.tumor_sampling)
    return bank, lambda model: validate(Predictor(model, config), val_cases)
