"""The image/mask-folder dataset type end to end with the real command, on ../shared/figshare
(48 T1-CE slices, 512x512, RGBA PNG with grey content): split, a short training, evaluate
(per-slice metrics) and segment (mask and overlay per slice, results.jsonl)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from cli_helpers import assert_no_traceback, run_cli
from conftest import SHARED
from gliomaseg.errors import EXIT_OK

FIGSHARE = SHARED / "figshare"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A split of the 48 slices and a width-4 U-Net trained for 2 short epochs on it."""
    work = tmp_path_factory.mktemp("figshare")
    split = work / "split.json"
    result = run_cli("split", FIGSHARE, "--out", split)
    assert result.returncode == EXIT_OK, result.stderr
    config = work / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "unet", "in_channels": 1, "out_channels": 1, "width": 4},
        "data": {"dataset": "image_folder", "image_size": 64, "crop_to_brain": True},
        "train": {"batch_size": 8, "lr": 2e-3, "slices_per_epoch": 16, "max_epochs": 2},
    }))
    run = work / "run"
    result = run_cli("train", FIGSHARE, "--split", split, "--config", config, "--out", run)
    assert_no_traceback(result)
    assert result.returncode == EXIT_OK, result.stderr
    return json.loads(split.read_text()), run


def test_split_is_by_slice_and_covers_every_slice(trained):
    """Independent slices: every one of the 48 is in exactly one subset."""
    split, _ = trained
    ids = split["train"] + split["val"] + split["test"]
    assert len(ids) == len(set(ids)) == 48
    assert sorted(ids) == sorted(p.stem for p in (FIGSHARE / "images").glob("*.png"))


def test_training_writes_a_run_that_records_its_dataset(trained):
    """The run's config says image_folder with 1 input channel; metrics.csv has both epochs."""
    _, run = trained
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["dataset"] == "image_folder" and saved["model"]["in_channels"] == 1
    with (run / "metrics.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2
    assert (run / "best.safetensors").is_file()


def test_evaluate_writes_per_slice_metrics(trained, tmp_path):
    """evaluate on the test subset: per_slice.csv with one row per test slice, the empty-mask
    rule stated in summary.json, Dice in [0, 1]."""
    split, run = trained
    out = tmp_path / "eval"
    split_file = tmp_path / "split.json"
    split_file.write_text(json.dumps(split))
    result = run_cli("evaluate", FIGSHARE, "--model", run, "--split", split_file, "--subset", "test", "--out", out)
    assert_no_traceback(result)
    assert result.returncode == EXIT_OK, result.stderr
    with (out / "per_slice.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["slice"] for row in rows) == sorted(split["test"])
    assert all(0.0 <= float(row["dice"]) <= 1.0 for row in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dataset"] == "image_folder" and summary["n_slices"] == len(split["test"])
    assert "Dice 1" in summary["empty_slice_rule"]
    assert not (out / "per_patient.csv").exists()


def test_segment_writes_mask_and_overlay_per_slice(trained, tmp_path):
    """segment on the image folder: a 0/255 mask at 512x512 and an RGB overlay per slice, one
    results.jsonl record per slice."""
    _, run = trained
    out = tmp_path / "seg"
    result = run_cli("segment", FIGSHARE, "--model", run, "--out", out)
    assert_no_traceback(result)
    assert result.returncode == EXIT_OK, result.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    slices = [r for r in records if r["type"] == "slice"]
    assert len(slices) == 48
    for record in slices[:5]:
        mask = np.asarray(Image.open(record["mask"]))
        assert mask.shape == (512, 512) and set(np.unique(mask).tolist()) <= {0, 255}
        assert int((mask == 255).sum()) == record["tumor_area_px"]
        assert np.asarray(Image.open(record["overlay"])).shape == (512, 512, 3)


def test_train_overwrite_replaces_only_the_runs_own_files(trained, tmp_path):
    """`train --overwrite` on a folder holding a finished run and a file of the user's: the run
    starts afresh (new metrics.csv), the user's file and folder are untouched."""
    import shutil

    _, run = trained
    again = tmp_path / "run"
    shutil.copytree(run, again)
    (again / "notes.txt").write_text("my notes\n")
    (again / "mine").mkdir()
    (again / "mine" / "data.csv").write_text("1,2\n")
    before = (again / "metrics.csv").stat().st_mtime_ns
    split = tmp_path / "split.json"
    result = run_cli("split", FIGSHARE, "--out", split)
    assert result.returncode == EXIT_OK, result.stderr
    result = run_cli("train", FIGSHARE, "--split", split, "--config", run / "config.yaml", "--out", again, "--overwrite",
                     "--set", "train.max_epochs=1")
    assert_no_traceback(result)
    assert result.returncode == EXIT_OK, result.stderr
    assert (again / "notes.txt").read_text() == "my notes\n"
    assert (again / "mine" / "data.csv").read_text() == "1,2\n"
    assert (again / "metrics.csv").stat().st_mtime_ns != before
    assert len((again / "metrics.csv").read_text().splitlines()) == 2  # header and the one new epoch
