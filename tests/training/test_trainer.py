"""A short real training run on a few LGG patients: loss falls, checkpoints are written and resumed;
histogram landmarks are fitted on the train patients and saved; deep supervision's heads stay
out of the weights; a moving average of the weights follows its formula; so does nnU-Net's SGD."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TRAIN_PATIENTS, VAL_PATIENTS
from gliomaseg.config import Config
from gliomaseg.data.base import get_dataset
from gliomaseg.data.preprocessing import fit_landmarks
from gliomaseg.errors import ConfigError, InputError
from gliomaseg.inference.predictor import Predictor
from gliomaseg.models.registry import create_model
from gliomaseg.models.weights import load_model, load_state, resolve_weights
from gliomaseg.training import trainer as trainer_module
from gliomaseg.training.trainer import train


def tiny_config() -> Config:
    """A network and recipe small enough for a few CPU seconds per epoch."""
    config = Config.from_dict({
        "model": {"width": 8},
        "data": {"image_size": 96, "crop_to_brain": True},
        "train": {"batch_size": 8, "lr": 2e-3, "slices_per_epoch": 96, "max_epochs": 4, "tumor_fraction": 0.6},
        "inference": {"postprocess": "largest-3d"},
    })
    return config


@pytest.fixture(scope="module")
def run(lgg_root, tmp_path_factory):
    """Train 4 epochs, then resume to 6."""
    out = tmp_path_factory.mktemp("run")
    split = {"train": TRAIN_PATIENTS, "val": VAL_PATIENTS, "test": []}
    config = tiny_config()
    first = train(lgg_root, split, config, out)
    state_after_first = load_state(out / "state.safetensors")
    config.train.max_epochs = 6
    second = train(lgg_root, split, config, out, resume=True)
    return out, first, second, state_after_first


def test_loss_falls(run):
    """Training loss of the last epoch is clearly below the first epoch's."""
    out, _, second, _ = run
    losses = [row["train_loss"] for row in second.history]
    assert len(losses) == 6
    assert losses[-1] < 0.9 * losses[0], losses


def test_checkpoints_and_logs_written(run):
    """best/last weights, state, resolved config, CSV and TensorBoard logs exist and load."""
    out, first, _, _ = run
    for name in ("best.safetensors", "last.safetensors", "state.safetensors", "config.yaml", "metrics.csv"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    model, config = load_model(out / "best.safetensors")
    assert config.model.width == 8
    assert first.best_dice >= 0
    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7))


def test_resume_continues_from_last_checkpoint(run):
    """The resumed run starts at epoch 5 with the saved optimizer moments, not from scratch."""
    out, first, second, (tensors, info) = run
    assert first.epoch == 4 and second.epoch == 6
    assert info["progress"]["epoch"] == 4
    assert second.minutes > first.minutes
    # Adam's step count went on from where it stopped: 4 epochs x 12 steps, then 2 more epochs.
    steps_first = float(tensors["optimizer.0.step"])
    steps_second = float(load_state(out / "state.safetensors")[0]["optimizer.0.step"])
    assert steps_first == 4 * 12 and steps_second == 6 * 12
    last = load_file(str(out / "last.safetensors"))
    assert all(torch.isfinite(v.float()).all() for v in last.values())


def test_training_on_every_case_needs_the_poly_schedule(lgg_root, tmp_path):
    """A split with no validation cases (the final model trained on everything) trains with the
    poly schedule, keeps its last weights and writes no best checkpoint; the plateau schedule,
    which chooses epochs on the validation cases, is refused before any case is read."""
    split = {"train": TRAIN_PATIENTS, "val": [], "test": []}
    config = tiny_config()
    with pytest.raises(ConfigError, match="schedule=poly"):
        train(lgg_root, split, config, tmp_path / "plateau")
    assert not (tmp_path / "plateau").exists()
    config.train.schedule, config.train.max_epochs = "poly", 2
    progress = train(lgg_root, split, config, tmp_path / "poly")
    assert progress.epoch == 2
    assert (tmp_path / "poly" / "last.safetensors").is_file()
    assert not (tmp_path / "poly" / "best.safetensors").exists()
    assert resolve_weights(tmp_path / "poly") == tmp_path / "poly" / "last.safetensors"  # --model RUN
    assert all(math.isnan(row["val_dice_mean"]) for row in progress.history)


def test_histogram_landmarks_are_fitted_on_the_train_cases_and_saved(lgg_root, tmp_path):
    """``data.standardize: histogram`` fits the landmarks on the split's train patients (not its
    validation patient) when training starts; the weights file carries them, and the predictor
    of the loaded model standardises with them."""
    split = {"train": TRAIN_PATIENTS, "val": VAL_PATIENTS, "test": []}
    config = tiny_config()
    config.data.standardize = "histogram"
    config.train.schedule, config.train.max_epochs, config.train.slices_per_epoch = "poly", 1, 16
    train(lgg_root, split, config, tmp_path)
    dataset = get_dataset("kaggle3m")
    refs = {ref.id: ref for ref in dataset.find(lgg_root)}
    expected = np.asarray(fit_landmarks([dataset.load(refs[pid]).images for pid in TRAIN_PATIENTS], volumetric=False))
    model, saved = load_model(tmp_path / "last.safetensors")
    np.testing.assert_allclose(np.asarray(saved.data.landmarks), expected)
    assert saved.data.standardize == "histogram"
    with_val = np.asarray(fit_landmarks([dataset.load(refs[pid]).images for pid in TRAIN_PATIENTS + VAL_PATIENTS],
                                        volumetric=False))
    assert not np.allclose(with_val, expected)  # the check above could tell the validation patient in
    predictor = Predictor(model, saved)
    np.testing.assert_allclose(np.asarray(predictor.preprocessing.landmarks), expected)


def test_deep_supervision_trains_saves_the_network_alone_and_resumes_its_heads(lgg_root, tmp_path):
    """With ``train.deep_supervision: 2`` the run saves the network's weights alone (they load
    and predict as any run's), keeps the two auxiliary heads in its state and resumes them; a
    run saved without them is not resumed with deep supervision, nor one saved with them
    without it."""
    split = {"train": TRAIN_PATIENTS, "val": [], "test": []}
    config = tiny_config()
    config.train.schedule, config.train.max_epochs, config.train.deep_supervision = "poly", 1, 2
    out = tmp_path / "ds"
    train(lgg_root, split, config, out)
    tensors, _ = load_state(out / "state.safetensors")
    heads = {k: v for k, v in tensors.items() if k.startswith("heads.")}
    assert sorted(heads) == ["heads.0.bias", "heads.0.weight", "heads.1.bias", "heads.1.weight"]
    assert heads["heads.0.weight"].shape == (1, 16, 1, 1) and heads["heads.1.weight"].shape == (1, 32, 1, 1)  # width 8 x 2, x 4
    last = load_file(str(out / "last.safetensors"))
    assert not any("heads" in key for key in last)
    model, saved = load_model(out / "last.safetensors")
    assert saved.train.deep_supervision == 2 and type(model).__name__ == "UNet"
    config.train.max_epochs = 2
    second = train(lgg_root, split, config, out, resume=True)
    assert second.epoch == 2 and math.isfinite(second.history[-1]["train_loss"])
    resumed, _ = load_state(out / "state.safetensors")
    assert not torch.equal(resumed["heads.1.weight"], heads["heads.1.weight"])  # trained on from the saved heads
    plain = tiny_config()
    plain.train.schedule, plain.train.max_epochs = "poly", 1
    train(lgg_root, split, plain, tmp_path / "plain")
    plain.train.deep_supervision, plain.train.max_epochs = 2, 2
    with pytest.raises(InputError, match="without deep supervision"):
        train(lgg_root, split, plain, tmp_path / "plain", resume=True)
    config.train.deep_supervision, config.train.max_epochs = 0, 3
    with pytest.raises(InputError, match="saved with deep supervision"):
        train(lgg_root, split, config, out, resume=True)


def test_moving_average_of_the_weights_is_validated_saved_and_resumed(lgg_root, tmp_path):
    """With ``train.ema: d`` the saved weights follow the formula of an exponential moving
    average, one update per step: after the first step they equal the trained weights, after
    the second ``d * previous + (1 - d) * trained`` (BatchNorm statistics included), while the
    state keeps the raw weights for the optimizer; the average resumes from the state, and a
    run saved without one is not resumed with one."""
    split = {"train": TRAIN_PATIENTS, "val": VAL_PATIENTS[:1], "test": []}
    config = tiny_config()
    decay = 0.9
    config.train.schedule, config.train.max_epochs, config.train.slices_per_epoch = "poly", 1, 8  # one step per epoch
    config.train.ema = decay
    out = tmp_path / "ema"
    train(lgg_root, split, config, out)
    raw_1 = {k.removeprefix("model."): v for k, v in load_state(out / "state.safetensors")[0].items() if k.startswith("model.")}
    assert all(torch.equal(load_file(str(out / "last.safetensors"))[k], raw_1[k]) for k in raw_1)  # the first update copies
    config.train.max_epochs = 2
    train(lgg_root, split, config, out, resume=True)
    tensors, _ = load_state(out / "state.safetensors")
    raw_2 = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    last, best = load_file(str(out / "last.safetensors")), load_file(str(out / "best.safetensors"))
    assert int(tensors["ema.n_averaged"]) == 2
    running = [k for k in raw_2 if k.endswith("running_var")]
    assert running and all(not torch.equal(raw_2[k], raw_1[k]) for k in running)  # the step moved the statistics
    for key, value in raw_2.items():
        if value.is_floating_point():
            torch.testing.assert_close(last[key], decay * raw_1[key] + (1 - decay) * value, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(tensors[f"ema.module.{key}"], last[key])
    assert any(not torch.equal(last[k], raw_2[k]) for k in running)
    assert set(best) == set(last)  # the validated checkpoint is the average's too
    model, saved = load_model(out / "last.safetensors")
    assert saved.train.ema == decay and type(model).__name__ == "UNet"
    plain = tiny_config()
    plain.train.schedule, plain.train.max_epochs, plain.train.slices_per_epoch = "poly", 1, 8
    train(lgg_root, split, plain, tmp_path / "plain")
    plain.train.ema, plain.train.max_epochs = decay, 2
    with pytest.raises(InputError, match="without a moving average"):
        train(lgg_root, split, plain, tmp_path / "plain", resume=True)


def test_moving_average_decay_is_checked():
    """A decay outside [0, 1) is refused by the config loader with the key named."""
    with pytest.raises(ConfigError, match="train.ema"):
        Config.from_dict({"train": {"ema": 1.0}})


def test_sgd_step_follows_nesterov_formula_with_clipped_gradient(lgg_root, tmp_path, monkeypatch):
    """``train.optimizer: sgd`` is nnU-Net's: the first step of SGD with Nesterov momentum m
    moves each weight by ``-lr * (1 + m) * g`` (the momentum buffer starts as the gradient g),
    g clipped to a global L2 norm (here lowered to 1e-3 so that the clip surely acts); the state
    records the optimiser, and an Adam run is not resumed with SGD."""
    monkeypatch.setattr(trainer_module, "SGD_CLIP_NORM", 1e-3)
    split = {"train": TRAIN_PATIENTS, "val": VAL_PATIENTS[:1], "test": []}
    config = tiny_config()
    config.train.optimizer, config.train.lr = "sgd", 0.01
    config.train.max_epochs, config.train.slices_per_epoch = 1, 8  # one step; plateau: lr constant
    out = tmp_path / "sgd"
    train(lgg_root, split, config, out)
    torch.manual_seed(config.train.seed)  # the trainer's initial weights
    initial = dict(create_model(config.model).named_parameters())
    tensors, rest = load_state(out / "state.safetensors")
    assert rest["optimizer"] == "sgd"
    buffers = [tensors[f"optimizer.{i}.momentum_buffer"] for i in range(len(initial))]
    assert math.isclose(float(torch.linalg.vector_norm(torch.stack([b.norm() for b in buffers]))), 1e-3, rel_tol=1e-3)
    for (name, start), buffer in zip(initial.items(), buffers):
        torch.testing.assert_close(tensors[f"model.{name}"], start.detach() - 0.01 * (1 + trainer_module.SGD_MOMENTUM) * buffer,
                                   rtol=1e-5, atol=1e-8)
    adam = tiny_config()
    adam.train.max_epochs, adam.train.slices_per_epoch = 1, 8
    train(lgg_root, split, adam, tmp_path / "adam")
    adam.train.optimizer, adam.train.max_epochs = "sgd", 2
    with pytest.raises(InputError, match="saved without nnU-Net's SGD"):
        train(lgg_root, split, adam, tmp_path / "adam", resume=True)
    with pytest.raises(ConfigError, match="train.optimizer"):
        Config.from_dict({"train": {"optimizer": "rmsprop"}})
