"""Command conventions: --version, choices checked by the parser, distinct exit statuses."""

from __future__ import annotations

import pytest

from cli_helpers import assert_no_traceback, assert_one_error_per_file, error_lines, run_cli
from gliomaseg import __version__
from gliomaseg.errors import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE


def test_version():
    """`gliomaseg --version` prints the package version and exits 0."""
    result = run_cli("--version")
    assert result.returncode == EXIT_OK
    assert result.stdout.strip() == f"gliomaseg {__version__}"


def test_exit_statuses_are_distinct():
    """Done, fatal error, usage error and partial success never share a code."""
    assert len({EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL}) == 4


@pytest.mark.parametrize("args, choices", [
    (["segment", "x.tif", "--out", "o", "--tta", "mirror"], ["none", "flip", "flip+rot90"]),
    (["segment", "x.tif", "--out", "o", "--backend", "tensorrt"], ["torch", "onnxruntime"]),
    (["evaluate", "data", "--out", "o", "--subset", "training"], ["train", "val", "test"]),
    (["export", "--out", "m.onnx", "--format", "tflite"], ["onnx"]),
    (["segment", "x.tif", "--out", "o", "--postprocess", "min-size:big"], ["none", "largest-3d", "min-size:N"]),
    (["evaluate", "data", "--out", "o", "--postprocess", "biggest"], ["none", "largest-3d", "min-size:N"]),
    (["segment", "x.nii.gz", "--out", "o", "--sequence", "dwi=x.nii.gz"], ["flair", "t1", "t1ce", "t2"]),
    (["segment", "x.nii.gz", "--out", "o", "--sequence", "flair"], ["NAME=PATH_OR_SERIES_UID"]),
])
def test_bad_choices_are_usage_errors_listing_the_choices(args, choices, tmp_path):
    """A value outside an option's choices is refused by the parser (exit 2, nothing read or
    written), and the message lists the allowed values."""
    result = run_cli(*args, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == EXIT_USAGE, result.stderr
    for choice in choices:
        assert choice in result.stderr, (choice, result.stderr)
    assert list(tmp_path.iterdir()) == []


def test_all_inputs_failing_is_a_fatal_error_not_partial(tmp_path):
    """When no input of a batch can be used, segment exits 1 (not 3), one error line per input."""
    bad = [tmp_path / "text.tif", tmp_path / "empty.tif"]
    bad[0].write_text("not an image\n")
    bad[1].write_bytes(b"")
    result = run_cli("segment", *bad, "--out", tmp_path / "out")
    assert_no_traceback(result)
    assert result.returncode == EXIT_ERROR, result.stderr
    assert_one_error_per_file(result, [p.name for p in bad])


def test_usage_error_for_missing_argument(tmp_path):
    """A missing required option is a usage error (2), not a fatal error, and no `error:` line
    of gliomaseg's own."""
    result = run_cli("segment", tmp_path, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert error_lines(result) == []
