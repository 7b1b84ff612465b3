"""The real ``gliomaseg`` command on bad inputs: one ``error:`` line per problem, no traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from cli_helpers import assert_no_traceback, assert_one_error_per_file, run_cli
from gliomaseg.config import Config
from gliomaseg.errors import EXIT_PARTIAL
from gliomaseg.models import create_model
from gliomaseg.models.weights import save_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained width-4 U-Net on 64x64 brain crops, saved as a gliomaseg weights file."""
    config = Config()
    config.data.dataset = "kaggle3m"  # as training saves it: resolved from the data folder
    config.model.width = 4
    config.data.image_size = 64
    config.data.crop_to_brain = True
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(create_model(config.model), config, path)
    return path


@pytest.fixture(scope="module")
def good_slices(patient_dir) -> list[Path]:
    """Two real slice files of the test patient."""
    return [patient_dir / f"{patient_dir.name}_{n}.tif" for n in (9, 10)]


def _bad_input(kind: str, folder: Path, source: Path) -> Path:
    """Create (or, for 'missing', only name) a bad input file of the given kind in ``folder``."""
    if kind == "text":
        path = folder / "not_an_image.tif"
        path.write_text("this is a text file, not a TIFF\n")
    elif kind == "truncated":
        path = folder / "truncated_slice.tif"
        data = source.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "one_channel":
        path = folder / "one_channel.tif"
        tifffile.imwrite(path, tifffile.imread(source)[..., 1], photometric="minisblack")
    elif kind == "missing":
        path = folder / "missing_slice.tif"
    else:
        raise ValueError(kind)
    return path


BAD_KINDS = ["text", "truncated", "one_channel", "missing"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_segment_reports_bad_file_and_segments_the_good_ones(kind, tiny_model, good_slices, tmp_path):
    """A bad file among good slices: one error line naming it, no traceback, exit 3 (some inputs skipped), good masks written."""
    bad = _bad_input(kind, tmp_path, good_slices[0])
    out = tmp_path / "out"
    result = run_cli("segment", good_slices[0], bad, good_slices[1], "--out", out, "--model", tiny_model)
    assert_no_traceback(result)
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert_one_error_per_file(result, [bad.name])
    for good in good_slices:
        mask = np.asarray(Image.open(out / f"{good.stem}_mask.png"))
        assert mask.shape == (256, 256) and set(np.unique(mask).tolist()) <= {0, 255}
        assert (out / f"{good.stem}_overlay.png").is_file()
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["file"] for r in records if r["type"] == "slice") == sorted(map(str, good_slices))
    assert [Path(r["file"]).name for r in records if r["type"] == "error"] == [bad.name]


def test_segment_reports_every_bad_file_once(tiny_model, good_slices, tmp_path):
    """All four kinds of bad file in one call: one error line each, exit 3, the good slice segmented."""
    bad = [_bad_input(kind, tmp_path, good_slices[0]) for kind in BAD_KINDS]
    out = tmp_path / "out"
    result = run_cli("segment", *bad[:2], good_slices[0], *bad[2:], "--out", out, "--model", tiny_model)
    assert_no_traceback(result)
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert_one_error_per_file(result, [p.name for p in bad])
    assert (out / f"{good_slices[0].stem}_mask.png").is_file()


def test_segment_bad_slice_in_patient_folder(tiny_model, patient_dir, tmp_path):
    """A truncated slice inside a patient folder: one error line naming it, the other input still done."""
    folder = tmp_path / "TCGA_XX_0003_20000101"
    folder.mkdir()
    for n in (1, 2, 3):
        shutil.copyfile(patient_dir / f"{patient_dir.name}_{n + 8}.tif", folder / f"{folder.name}_{n}.tif")
    truncated = folder / f"{folder.name}_2.tif"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    good = patient_dir / f"{patient_dir.name}_10.tif"
    out = tmp_path / "out"
    result = run_cli("segment", folder, good, "--out", out, "--model", tiny_model)
    assert_no_traceback(result)
    assert result.returncode == EXIT_PARTIAL, result.stderr
    assert_one_error_per_file(result, [truncated.name])
    assert (out / f"{good.stem}_mask.png").is_file()


def test_segment_missing_model_is_fatal(good_slices, tmp_path):
    """A --model that does not exist: exit 1, one error line naming it, nothing written."""
    model = tmp_path / "no_such_model.safetensors"
    out = tmp_path / "out"
    result = run_cli("segment", good_slices[0], "--out", out, "--model", model)
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert_one_error_per_file(result, [model.name])
    assert not (out / "results.jsonl").exists()


def test_segment_refuses_to_overwrite_results(tiny_model, good_slices, tmp_path):
    """An existing results.jsonl without --overwrite: exit 1, one error line, the file unchanged byte for byte."""
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "results.jsonl"
    content = b'{"type": "slice", "file": "earlier.tif", "tumor_area_px": 12}\n'
    existing.write_bytes(content)
    result = run_cli("segment", good_slices[0], "--out", out, "--model", tiny_model)
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert_one_error_per_file(result, ["results.jsonl"])
    assert len(result.stderr.strip().splitlines()) == 1
    assert existing.read_bytes() == content
    assert not (out / f"{good_slices[0].stem}_mask.png").exists()


def test_evaluate_on_empty_folder(tiny_model, tmp_path):
    """evaluate on an empty folder: exit 1 and a single error line naming the folder."""
    empty = tmp_path / "empty_dataset"
    empty.mkdir()
    result = run_cli("evaluate", empty, "--out", tmp_path / "eval", "--model", tiny_model)
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert_one_error_per_file(result, ["empty_dataset"])
    assert not (tmp_path / "eval").exists()


def test_split_refuses_to_overwrite(lgg_root, tmp_path):
    """split onto an existing file without --overwrite: exit 1, one error line, the file unchanged."""
    existing = tmp_path / "my_split.json"
    content = '{"train": [], "val": [], "test": []}\n'
    existing.write_text(content)
    result = run_cli("split", lgg_root, "--out", existing)
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert_one_error_per_file(result, ["my_split.json"])
    assert existing.read_text() == content
    # with --overwrite it is replaced by a real split of the folder's patients
    result = run_cli("split", lgg_root, "--out", existing, "--overwrite")
    assert result.returncode == 0, result.stderr
    split = json.loads(existing.read_text())
    ids = sorted(p.name for p in lgg_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert sorted(split["train"] + split["val"] + split["test"]) == ids
