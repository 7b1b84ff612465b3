"""``gliomaseg verify``: clean on the real shared data of every dataset type; on broken copies,
one line per problem naming its file, and exit 1."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from brats_cases import add_foreign_label, copy_case, shrink_sequence
from cli_helpers import ANSI
from conftest import BRATS_TRAIN_CASE, SHARED
from gliomaseg.cli import app
from gliomaseg.verify import verify_dataset


def _verify(*args):
    result = CliRunner().invoke(app, ["verify", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in ANSI.sub("", result.stderr).splitlines() if line.startswith("error:")]
    return result, errors


@pytest.mark.parametrize("which", ["lgg", "brats", "figshare"])
def test_real_data_is_clean(which, lgg_root, brats_root):
    root = {"lgg": lgg_root, "brats": brats_root, "figshare": SHARED / "figshare"}[which]
    result, errors = _verify(root)
    assert result.exit_code == 0 and errors == [], result.stderr
    assert "clean" in result.stdout


def test_broken_lgg_copy_reports_each_problem(patient_dir, tmp_path):
    folder = tmp_path / "kaggle_3m" / patient_dir.name
    shutil.copytree(patient_dir, folder)
    name = patient_dir.name
    mask = folder / f"{name}_12_mask.tif"
    values = tifffile.imread(mask)
    values[:2, :2] = 7
    tifffile.imwrite(mask, values)
    nan = folder / f"{name}_5.tif"
    image = tifffile.imread(nan).astype(np.float32)
    image[0, 0, 0] = np.nan
    tifffile.imwrite(nan, image, photometric="rgb")
    (folder / "notes.txt").write_text("mine")
    for suffix in ("", "_mask"):
        (folder / f"{name}_3{suffix}.tif").unlink()
    result, errors = _verify(tmp_path / "kaggle_3m")
    assert result.exit_code == 1
    expected = [mask.name, nan.name, "notes.txt", "slice number(s) 3 missing"]
    assert len(errors) == len(expected), result.stderr
    for text in expected:
        assert sum(text in line for line in errors) == 1, (text, result.stderr)


def test_broken_brats_copy_reports_each_problem(brats_root, tmp_path):
    case = copy_case(brats_root / BRATS_TRAIN_CASE, tmp_path / "brats")
    bad_label, bad_shape = add_foreign_label(case), shrink_sequence(case)
    flair = case / f"{case.name}_flair.nii.gz"
    data = bytearray(flair.read_bytes())
    data[-8] ^= 0xFF  # gzip CRC-32
    flair.write_bytes(bytes(data))
    (case / "extra.nii.gz").write_bytes(b"")
    result, errors = _verify(tmp_path / "brats")
    assert result.exit_code == 1
    for text in (bad_label.name, bad_shape.name, flair.name, "extra.nii.gz"):
        assert sum(text in line for line in errors) == 1, (text, result.stderr)
    assert len(errors) == 4, result.stderr
    quick = verify_dataset(tmp_path / "brats", full=False)
    assert [p.path.name for p in quick.problems] == [bad_shape.name]  # headers only: the shape
