"""`gliomaseg benchmark` on real patients: one row per network x loss, resumable."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

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
