"""Throughput and accuracy of the LGG pipeline on this machine, side by side in one run.

Prints: the machine; training throughput (slices/s) of the reference U-Net (Buda et al. 2019,
configs/unet_buda.yaml) and of the default network (configs/lgg_unet16.yaml), each on real
augmented training slices with its own preprocessing; inference throughput of the bundled
model, batched and one slice at a time; the end-to-end time of ``segment`` on one patient; and
the bundled model's per-patient Dice on the test split.

    python benchmarks/benchmark.py --data cache/lgg/kaggle_3m [--steps 8] [--skip-dice] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from gliomaseg.config import Config, load_config
from gliomaseg.data.augment import trained_mirror_axes
from gliomaseg.data.base import get_dataset, resolve_dataset
from gliomaseg.data.kaggle3m import find_patients, load_patient
from gliomaseg.evaluation import evaluate
from gliomaseg.inference.predictor import Predictor
from gliomaseg.losses import create_loss
from gliomaseg.models.registry import create_model, spatial_dims
from gliomaseg.runtime import autocast, describe_machine, memory_format, set_threads
from gliomaseg.training.trainer import prepare
from startup import seconds

REPO = Path(__file__).resolve().parents[1]
SWEEP = [(16, 128), (24, 128), (32, 128), (16, 160), (24, 160), (32, 160), (16, 256)]


def training_throughput(config: Config, bank, steps: int, prefetch: bool = False) -> float:
    """Samples/s (slices or patches) of full training steps (sampling, augmentation, forward,
    loss, backward, Adam) on a training bank, after one warm-up step; with ``prefetch``, each
    next batch drawn and augmented in a background thread during the step, as the Trainer
    does on accelerators."""
    dims = spatial_dims(config.model.name)
    model = create_model(config.model).to(memory_format=memory_format(config.runtime.channels_last, dims)).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    loss_fn = create_loss(config.train.loss)
    generator = torch.Generator().manual_seed(0)
    batch = config.train.batch_size
    seen, started = 0, None

    def draw():
        return bank.batch(bank.sample(batch, config.train.tumor_fraction, generator), config.augment, generator)

    loader = ThreadPoolExecutor(1)
    pending = loader.submit(draw) if prefetch else None
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        images, masks = pending.result() if prefetch else draw()
        if prefetch:
            pending = loader.submit(draw)
        with autocast(config.runtime.bf16):
            logits = model(images.contiguous(memory_format=memory_format(config.runtime.channels_last, dims)))
        loss = loss_fn(logits.float(), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += batch if step else 0
    rate = seen / (time.perf_counter() - started)
    loader.shutdown(wait=True)
    return rate


def training_bank(data: Path, ids: list[str], config: Config):
    """The bank ``config``'s network trains on (slices, or windows of volumes), built from the
    cases ``ids`` of ``data`` as ``gliomaseg train`` builds it (:func:`gliomaseg.training.trainer.prepare`)."""
    dataset = resolve_dataset(data, config.data.dataset)
    bank, _ = prepare(dataset, data, {"train": list(ids), "val": []}, config)
    return bank


def untrained_predictor(config: Config) -> Predictor:
    """A Predictor of ``config``'s network with fresh weights (weights do not change speed), its
    mirror axes set as training saves them."""
    config.inference.mirror_axes = trained_mirror_axes(config.augment, spatial_dims(config.model.name))
    return Predictor(create_model(config.model), config)


def inference_throughput(predictor: Predictor, images, batch_size: int) -> float:
    """Slices/s of ``Predictor.probabilities`` on one patient (``(C, H, W, S)`` images) with the
    given batch size (a new predictor is built, so the inferer takes it)."""
    predictor.config.inference.batch_size = batch_size
    predictor = Predictor(predictor.backend, predictor.config)
    count = images.shape[-1]
    predictor.probabilities(images[..., :2])  # warm-up
    started = time.perf_counter()
    if batch_size == 1:
        for s in range(count):
            predictor.probabilities(images[..., s:s + 1])
    else:
        predictor.probabilities(images)
    return count / (time.perf_counter() - started)


def time_segment_command(patient_folder: Path, model: str | None = None) -> float:
    """Seconds of ``gliomaseg segment PATIENT`` with default settings (and ``--model model``
    when given) in a new process."""
    extra = ["--model", model] if model else []
    with tempfile.TemporaryDirectory() as out:
        return seconds([str(Path(sys.executable).parent / "gliomaseg"), "segment", str(patient_folder), "--out", out, *extra])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="kaggle_3m folder with all 90 shared patients")
    parser.add_argument("--split", type=Path, default=REPO / "splits" / "lgg.json")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per network")
    parser.add_argument("--skip-dice", action="store_true", help="skip the test-split evaluation")
    parser.add_argument("--sweep", action="store_true",
                        help="also time the default recipe at other widths and input sizes (the choice of the default)")
    args = parser.parse_args()
    set_threads(0)
    split = json.loads(args.split.read_text())
    by_id = {p.id: p for p in find_patients(args.data)}
    print(f"machine: {describe_machine()}")

    train_ids = split["train"][:4]
    print("\ntraining throughput (slices/s, batch 16, augmentation + forward + backward + Adam)")
    for name in ("unet_buda.yaml", "lgg_unet16.yaml"):
        rate = training_throughput(config := load_config(REPO / "configs" / name), training_bank(args.data, train_ids, config), args.steps)
        print(f"  {name:18s} {rate:7.1f}")
    if args.sweep:
        for width, size in SWEEP:
            config = load_config(REPO / "configs" / "lgg_unet16.yaml")
            config.model.width, config.data.image_size = width, size
            rate = training_throughput(config, training_bank(args.data, train_ids, config), args.steps)
            print(f"  lgg_unet16.yaml with width {width}, input {size}x{size}: {rate:7.1f}")

    predictor = Predictor.from_path(None)
    patient = load_patient(by_id[max(split["test"], key=lambda pid: len(by_id[pid].images))], predictor.in_channels)
    print(f"\ninference throughput, bundled model, patient {patient.id} ({len(patient.sources)} slices)")
    for batch_size in (32, 1):
        rate = inference_throughput(predictor, patient.images, batch_size)
        print(f"  batch {batch_size:2d}: {rate:7.1f} slices/s")

    seconds = time_segment_command(patient.sources[0].parent)
    print(f"  `gliomaseg segment` on that patient, end to end (new process, model load, PNG writing): {seconds:.2f} s")

    if not args.skip_dice:
        predictor.config.inference.batch_size = 32
        predictor = Predictor(predictor.backend, predictor.config)
        test = [by_id[pid] for pid in split["test"]]
        evaluation = evaluate(predictor, get_dataset("kaggle3m"), test)
        dice = evaluation.summary()["per_patient"]["dice"]
        print(f"\nbundled model, test split ({dice['n']} patients): per-patient Dice mean {dice['mean']:.4f}, median {dice['median']:.4f}")


if __name__ == "__main__":
    main()
