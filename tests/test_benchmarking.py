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
