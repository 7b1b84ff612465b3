"""Cross-validation on real LGG patients (2 folds of 2, a tiny network; fixture ``cv`` in
conftest): the poly schedule, out-of-fold pooling, resume,
the `cv` command, and fold ensembles (`gliomaseg ensemble`)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import assert_no_traceback, run_cli
from conftest import CV_EPOCHS as EPOCHS, CV_FOLDS as FOLDS, CV_PATIENTS as PATIENTS, CV_STEPS as STEPS, tiny_poly_config

from gliomaseg.config import save_config
from gliomaseg.crossval import cross_validate, fold_models, fold_summary
from gliomaseg.data.base import get_dataset
from gliomaseg.errors import ConfigError, InputError
from gliomaseg.inference.predictor import Predictor
from gliomaseg.models.weights import load_model, read_metadata, save_ensemble, save_model


def test_poly_schedule_follows_the_formula(cv):
    """Each epoch's last learning rate is lr * (1 - t)^0.9, t the share of max_epochs done at its
    last step; validation only on every 2nd epoch and the last, no early stopping."""
    out, _, _ = cv
    with (out / "fold0" / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for epoch, row in enumerate(rows, 1):
        expected = 2e-3 * (1 - (epoch - 1 + (STEPS - 1) / STEPS) / EPOCHS) ** 0.9
        assert float(row["lr"]) == pytest.approx(expected, rel=1e-6)
    validated = [not np.isnan(float(r["val_dice_mean"])) for r in rows]
    assert validated == [False, True, True]


def test_every_patient_is_scored_once_by_the_fold_that_never_saw_it(cv):
    """Pooled rows: one per patient, tagged with the fold that held it out, scored by that fold's
    last weights (trained on the other fold only)."""
    _, (evaluation, records), _ = cv
    rows = evaluation.per_case
    assert sorted(row["patient"] for row in rows) == sorted(PATIENTS)
    for row in rows:
        assert row["patient"] in FOLDS[row["fold"]]
    for k, record in enumerate(records):
        fold_rows = [row for row in rows if row["fold"] == k]
        assert record["n"] == len(fold_rows) == 2
        assert record["dice"] == pytest.approx(np.mean([row["dice"] for row in fold_rows]))
        assert 0 <= record["dice"] <= 1


def test_fold_summary_is_the_mean_and_sd_of_fold_means(cv):
    """across_folds: mean and sample SD (ddof 1) of the per-fold mean Dice."""
    _, (_, records), _ = cv
    means = [record["dice"] for record in records]
    spread = fold_summary(records, ["dice"])["across_folds"]["dice"]
    assert spread["mean_of_folds"] == pytest.approx(sum(means) / 2)
    assert spread["sd_of_folds"] == pytest.approx(abs(means[0] - means[1]) / 2 ** 0.5)


def test_a_second_call_resumes_finished_folds(cv):
    """Finished folds are not trained again: same minutes, same out-of-fold Dice."""
    _, (_, first), (_, again) = cv
    assert [r["minutes"] for r in again] == [r["minutes"] for r in first]
    assert [r["dice"] for r in again] == pytest.approx([r["dice"] for r in first])


def test_plateau_schedule_is_refused(lgg_root, folds_file, tmp_path):
    """The plateau schedule would pick epochs on the held-out fold: refused before training."""
    config = tiny_poly_config()
    config.train.schedule, config.train.val_every = "plateau", 1
    with pytest.raises(ConfigError, match="schedule poly"):
        cross_validate(lgg_root, folds_file, config, tmp_path)
    assert not any(tmp_path.iterdir())


def test_cv_command_writes_pooled_evaluation(cv, lgg_root, folds_file, tmp_path):
    """`gliomaseg cv` on the finished folds writes per_patient.csv with a fold column and
    summary.json with each fold's mean and the spread; a second run without --overwrite is refused."""
    out, (_, records), _ = cv
    config = tmp_path / "tiny.yaml"
    save_config(tiny_poly_config(), config)
    args = ["cv", str(lgg_root), "--split", str(folds_file), "--config", str(config), "--out", str(out)]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [f["dice"] for f in summary["folds"]] == pytest.approx([r["dice"] for r in records])
    assert set(summary["across_folds"]["dice"]) == {"mean_of_folds", "sd_of_folds"}
    with (out / "per_patient.csv").open() as handle:
        assert {row["fold"] for row in csv.DictReader(handle)} == {"0", "1"}
    again = run_cli(*args)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    assert_no_traceback(again)


def test_ensemble_averages_the_fold_models_probabilities(cv, lgg_root, tmp_path):
    """`gliomaseg ensemble CV_FOLDER` joins fold<k>/last.safetensors; on a real patient its
    probabilities are the mean of the two fold models' (bf16 autocast: within 0.01)."""
    out, _, _ = cv
    target = tmp_path / "ensemble.safetensors"
    result = run_cli("ensemble", str(out), "--out", str(target))
    assert result.returncode == 0, result.stderr
    members = fold_models(out)
    assert [p.parent.name for p in members] == ["fold0", "fold1"]
    assert read_metadata(target)["members_from"] == [str(p) for p in members]
    ensemble, config = load_model(target)
    assert config.model.members == 2
    dataset = get_dataset("kaggle3m")
    case = dataset.load(next(ref for ref in dataset.find(lgg_root) if ref.id == PATIENTS[0]))
    mean = np.mean([Predictor.from_path(p).probabilities(case.images) for p in members], axis=0)
    joined = Predictor(ensemble, config).probabilities(case.images)
    assert joined.shape == mean.shape
    assert np.abs(joined - mean).max() < 0.01
    refused = run_cli("ensemble", str(out), "--out", str(target))
    assert refused.returncode != 0 and "--overwrite" in refused.stderr


def test_ensemble_forward_is_the_mean_probability_in_fp32(cv):
    """Without autocast the ensemble's sigmoid equals the members' mean sigmoid to 1e-6."""
    out, _, _ = cv
    from gliomaseg.models.ensemble import Ensemble

    networks = [load_model(p)[0] for p in fold_models(out)]
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(n(images)) for n in networks]).mean(0)
        got = torch.sigmoid(Ensemble(networks)(images))
    assert torch.allclose(got, expected, atol=1e-6)


def test_mixed_resolution_ensemble_resizes_the_input_for_each_member(cv, tmp_path):
    """Networks trained at different sides join into one ensemble at the largest side
    (``model.member_sizes`` each member's); its probability is the mean of the large member's
    and the small member's on the input shrunk (bilinear, antialiased) and grown back (bilinear),
    written out here with ``F.interpolate``. Any other preprocessing difference is refused."""
    out, _, _ = cv
    first, second = fold_models(out)
    network, config = load_model(second)
    config.data.image_size = 64
    small = tmp_path / "small.safetensors"
    save_model(network, config, small)
    joined = tmp_path / "mixed.safetensors"
    save_ensemble([small, first], joined)
    ensemble, mixed = load_model(joined)
    assert (mixed.data.image_size, mixed.model.member_sizes) == (96, (64, 96))
    images = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        shrunk = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False, antialias=True)
        grown = F.interpolate(torch.sigmoid(network(shrunk)), size=(96, 96), mode="bilinear", align_corners=False)
        expected = (grown + torch.sigmoid(load_model(first)[0](images))) / 2
        got = torch.sigmoid(ensemble(images))
    assert torch.allclose(got, expected, atol=1e-6)
    config.data.crop_margin += 4
    save_model(network, config, small)
    with pytest.raises(InputError, match=r"small\.safetensors: .*preprocessing differs"):
        save_ensemble([first, small], tmp_path / "refused.safetensors")


def test_evaluate_scores_a_cv_folder_out_of_fold(cv, lgg_root, folds_file, tmp_path):
    """`gliomaseg evaluate --model CV_FOLDER --split FOLDS` re-scores each fold's model on its
    held-out patients: with the same inference settings it reproduces the cv figures; with
    other post-processing it writes its own."""
    out, (_, records), _ = cv
    same, other, strict = tmp_path / "same", tmp_path / "largest", tmp_path / "strict"
    for target, options in ((same, ["--postprocess", "none"]), (other, ["--postprocess", "largest-3d"]),
                            (strict, ["--postprocess", "none", "--threshold", "0.9"])):
        result = run_cli("evaluate", str(lgg_root), "--model", str(out), "--split", str(folds_file), *options, "--out", str(target))
        assert result.returncode == 0, result.stderr
    summary = json.loads((same / "summary.json").read_text())
    assert [f["dice"] for f in summary["folds"]] == pytest.approx([r["dice"] for r in records])
    assert json.loads((other / "summary.json").read_text())["n_patients"] == len(PATIENTS)
    # a higher threshold keeps a subset of the voxels: no patient's recall can rise
    recalls = [{row["patient"]: float(row["recall"]) for row in csv.DictReader((folder / "per_patient.csv").open())}
               for folder in (same, strict)]
    assert all(recalls[1][pid] <= recalls[0][pid] + 1e-9 for pid in PATIENTS)


def test_ensemble_exports_to_onnx_with_the_same_probabilities(cv, tmp_path):
    """An ensemble is one network to `gliomaseg export`: the ONNX graph's logits match PyTorch's."""
    from gliomaseg.export import export_onnx
    from gliomaseg.inference.backends import OnnxBackend

    out, _, _ = cv
    joined, exported = tmp_path / "ensemble.safetensors", tmp_path / "ensemble.onnx"
    save_ensemble(fold_models(out), joined)
    config = export_onnx(joined, exported)
    assert config.model.members == 2
    images = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        expected = torch.sigmoid(load_model(joined)[0](images))
    assert torch.allclose(torch.sigmoid(OnnxBackend(exported)(images)), expected, atol=1e-4)
