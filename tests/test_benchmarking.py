"""`gliomaseg benchmark` on real patients: one row per network x loss, resumable; the helpers of
benchmarks/ (cross-validation tables, nested choice, component rules, raw weights of averaged runs)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from gliomaseg.metrics import overlap_metrics
from conftest import REPO, TEST_PATIENTS, TRAIN_PATIENTS, VAL_PATIENTS

GLIOMASEG = str(Path(sys.executable).parent / "gliomaseg")


def test_benchmark_writes_rows_and_resumes(lgg_root, tmp_path):
    """Two networks x one loss under a tiny budget give two evaluated rows; a rerun adds nothing."""
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": TRAIN_PATIENTS[:2], "val": VAL_PATIENTS, "test": TEST_PATIENTS[:1]}))
    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / "configs" / "lgg_unet16.yaml").read_text()
                      .replace("image_size: 160", "image_size: 64").replace("slices_per_epoch: 1600", "slices_per_epoch: 32"))
    out = tmp_path / "bench"
    command = [GLIOMASEG, "benchmark", str(lgg_root), "--split", str(split), "--models", "unet,resunet",
               "--losses", "dice", "--budget-minutes", "0.05", "--width", "8", "--config", str(config), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with (out / "benchmark.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], r["loss"]) for r in rows] == [("unet", "dice"), ("resunet", "dice")]
    for row in rows:
        assert 0.0 <= float(row["dice_mean"]) <= 1.0
        assert float(row["parameters_m"]) > 0 and float(row["infer_slices_per_s"]) > 0
        assert int(row["epochs"]) >= 1
    assert "| unet | dice |" in (out / "benchmark.md").read_text()
    assert (out / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0
    assert (out / "benchmark.csv").read_text().count("\n") == 3


def test_nested_choice_scores_each_fold_with_the_choice_of_the_others(tmp_path):
    """benchmarks/nested_choice.py: candidate B is best over all folds, but each fold is scored
    with the candidate best on the other fold (fold 0 with B, fold 1 with A), so the nested mean
    (0.55) is below either candidate's: what choosing on the same patients would hide."""
    scores = {"A": [0.9, 0.9, 0.5, 0.5], "B": [0.6, 0.6, 0.9, 0.9]}
    specs = []
    for name, dice in scores.items():
        path = tmp_path / f"{name}.csv"
        path.write_text("patient,dice,fold\n" + "".join(f"p{i},{d},{i // 2}\n" for i, d in enumerate(dice)))
        specs.append(f"{name}={path}")
    out = tmp_path / "nested.csv"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "nested_choice.py"), *specs, "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fold 0 scored with B" in done.stdout and "fold 1 scored with A" in done.stdout
    assert "chosen on all folds: B; nested mean 0.5500" in done.stdout
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["dice_nested"]) for r in rows] == [0.6, 0.6, 0.5, 0.5]
    bad = tmp_path / "bad.csv"
    bad.write_text("patient,dice,fold\np0,0.5,1\np1,0.5,0\np2,0.5,1\np3,0.5,1\n")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "nested_choice.py"), specs[0], f"C={bad}",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip() == "error: C: other patients or folds than the first candidate"


def test_cv_table_pools_folds_and_prints_the_error_profile(tmp_path):
    """benchmarks/cv_table.py on two folds' evaluations: the table pairs each patient with the
    baseline, sorted by true volume, and the error profile is the means of the per-patient
    columns (a nan precision left out and counted) and the per-slice false alarms, by hand."""
    header = "patient,true_volume_voxels,pred_volume_voxels,dice,precision,recall,fold\n"
    folds = {0: "p0,100,50,0.6,1.0,0.5,0\np1,40,0,0.0,nan,0.0,0\n", 1: "p2,200,300,0.8,0.6,0.9,1\n"}
    slices = {0: "patient,true_area_px,pred_area_px\np0,0,7\np0,100,50\np1,0,0\np1,40,0\n",
              1: "patient,true_area_px,pred_area_px\np2,0,0\np2,0,3\np2,200,300\n"}
    evaluations = []
    for fold in folds:
        (tmp_path / f"f{fold}").mkdir()
        (tmp_path / f"f{fold}" / "per_patient.csv").write_text(header + folds[fold])
        (tmp_path / f"f{fold}" / "per_slice.csv").write_text(slices[fold])
        evaluations.append(str(tmp_path / f"f{fold}" / "per_patient.csv"))
    baseline = tmp_path / "base.csv"
    baseline.write_text("patient,fold,dice_old\np0,0,0.5\np1,0,0.1\np2,1,0.7\n")
    out = tmp_path / "table.csv"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cv_table.py"), *evaluations,
                           "--baseline", f"{baseline}:dice_old:dice_base", "--name", "dice_new", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["patient"], r["dice_base"], r["dice_new"]) for r in rows] == [
        ("p1", "0.1", "0.0000"), ("p0", "0.5", "0.6000"), ("p2", "0.7", "0.8000")]
    recall, precision, ratio = (0.5 + 0.0 + 0.9) / 3, (1.0 + 0.6) / 2, (50 / 100 + 0 / 40 + 300 / 200) / 3
    assert (f"dice_new: recall {recall:.3f}, precision {precision:.3f} (1 patients with nothing predicted left out), "
            f"predicted / true volume {ratio:.3f}; tumor-free slices with a false positive 2 of 4 (10 pixels)") in done.stdout


def test_component_rules_keep_the_largest_or_the_most_confident_component():
    """benchmarks/component_rules.py: of two 3D components, `largest` keeps the larger (as
    largest-3d) and `confident` the one with the higher mean probability; both fill holes per
    slice; Dice against a truth that is the smaller component."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from component_rules import kept
    finally:
        sys.path.pop(0)
    probabilities = np.zeros((20, 20, 4), np.float32)
    probabilities[1:11, 1:11, :] = 0.6  # 400 voxels, mean 0.6
    probabilities[14:19, 14:19, 1:3] = 0.95  # 50 voxels, mean 0.95
    probabilities[16, 16, 1] = 0.2  # a hole in one slice of the confident component
    truth = probabilities >= 0.9
    truth[16, 16, 1] = True
    masks = kept(probabilities, 0.5)
    assert masks["largest"].sum() == 400 and masks["largest"][5, 5, 0]
    assert masks["confident"].sum() == 50 and masks["confident"][16, 16, 1]  # the hole filled
    dice = {rule: overlap_metrics(mask, truth)["dice"] for rule, mask in masks.items()}
    assert dice == {"largest": 0.0, "confident": 1.0}


def test_raw_weights_of_an_averaged_run_are_the_trained_ones(lgg_root, tmp_path):
    """benchmarks/raw_weights.py: a run trained with ``train.ema`` saves the average; the script
    writes the optimiser's raw weights (the state's ``model.*``) into a cross-validation folder, as
    a weights file that loads with the run's config and predicts differently from the average;
    it overwrites nothing."""
    import torch
    from safetensors.torch import load_file

    from conftest import tiny_poly_config
    from gliomaseg.models.weights import load_model, load_state
    from gliomaseg.training.trainer import train

    config = tiny_poly_config()
    config.train.ema, config.train.max_epochs = 0.9, 1
    run = tmp_path / "ema"
    train(lgg_root, {"train": TRAIN_PATIENTS, "val": [], "test": []}, config, run)
    command = [sys.executable, str(REPO / "benchmarks" / "raw_weights.py"), str(run), "--out", str(tmp_path / "raw")]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = tmp_path / "raw" / "ema" / "last.safetensors"
    raw, average = load_file(str(written)), load_file(str(run / "last.safetensors"))
    state = {k.removeprefix("model."): v for k, v in load_state(run / "state.safetensors")[0].items() if k.startswith("model.")}
    assert set(raw) == set(state) == set(average)
    assert all(torch.equal(raw[k], state[k]) for k in raw)
    assert any(not torch.equal(raw[k], average[k]) for k in raw if raw[k].is_floating_point())
    model, saved = load_model(written)
    assert saved.train.ema == 0.9
    images = torch.rand(1, 3, 96, 96)
    assert not torch.equal(model(images), load_model(run / "last.safetensors")[0](images))
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode != 0 and "exists already" in again.stderr
