"""Per-region thresholds chosen by cross-validation (`gliomaseg thresholds`): Dice per region
against the formula on a real BraTS case, the choice and its nested estimate on the fold models
of the ``cv`` fixture (2 folds of real LGG patients), and the command's files and errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from cli_helpers import assert_no_traceback, error_lines, run_cli
from conftest import BRATS_TRAIN_CASE, CV_FOLDS

from gliomaseg.data.brats import load_case, scan_case
from gliomaseg.errors import ConfigError
from gliomaseg.thresholds import best, choose_thresholds, region_dice


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    return 2 * np.count_nonzero(pred & truth) / (np.count_nonzero(pred) + np.count_nonzero(truth))


@pytest.fixture(scope="module")
def brats_case(brats_root):
    return load_case(scan_case(brats_root / BRATS_TRAIN_CASE))


def test_region_dice_thresholds_each_region_on_its_own(brats_case):
    """Probabilities 0.25 on the true WT, 0.45 on TC, 0.65 on ET: thresholds under each give
    Dice 1 everywhere. Raising only WT's above 0.25 leaves the label map's WT to the predicted
    TC (a TC voxel is a WT voxel); post-processing that keeps TC and ET inside the cleaned WT
    then empties all three. Raising TC's and ET's empties those two and leaves WT whole."""
    truth = brats_case.labels.to_regions(brats_case.label)
    probabilities = np.stack([truth[0] * 0.25, truth[1] * 0.45, truth[2] * 0.65]).astype(np.float32)
    assert region_dice(brats_case, probabilities, (0.2, 0.4, 0.6), "none").tolist() == [1.0, 1.0, 1.0]
    core_only = _dice(truth[1], truth[0])
    assert 0 < core_only < 1
    assert region_dice(brats_case, probabilities, (0.3, 0.4, 0.6), "none") == pytest.approx([core_only, 1.0, 1.0], abs=1e-12)
    assert region_dice(brats_case, probabilities, (0.3, 0.4, 0.6), "min-size:1").tolist() == [0.0, 0.0, 0.0]
    assert region_dice(brats_case, probabilities, (0.2, 0.5, 0.7), "none").tolist() == [1.0, 0.0, 0.0]


def test_region_dice_matches_the_formula_on_noisy_probabilities(brats_case):
    """Uniform noise, raised by 0.4 inside each true region: each region's Dice is
    2|P & T| / (|P| + |T|) computed here with numpy, where the predicted TC is the voxels at or
    above TC's threshold or ET's, and WT those at or above any of the three (the label map nests
    them)."""
    truth = brats_case.labels.to_regions(brats_case.label)
    rng = np.random.default_rng(0)
    probabilities = (rng.random(truth.shape, dtype=np.float32) * 0.6 + 0.4 * truth).astype(np.float32)
    thresholds = (0.3, 0.5, 0.7)
    above = [probabilities[r] >= t for r, t in enumerate(thresholds)]
    predicted = [above[0] | above[1] | above[2], above[1] | above[2], above[2]]
    got = region_dice(brats_case, probabilities, thresholds, "none")
    assert got == pytest.approx([_dice(p, t) for p, t in zip(predicted, truth)], abs=1e-12)
    assert 0 < min(got) < max(got) < 1


def test_best_takes_the_highest_mean_and_breaks_ties_towards_the_models_threshold():
    """Region 0 peaks at 0.3; region 1 ties at 0.2 and 0.6, 0.6 is nearer the own 0.5."""
    table = np.array([[[0.1, 0.9, 0.5], [0.7, 0.1, 0.7]],
                      [[0.3, 0.7, 0.6], [0.5, 0.2, 0.5]]])
    assert best(table, (0.2, 0.3, 0.6), (0.5, 0.5)) == (0.3, 0.6)


@pytest.fixture(scope="module")
def choice(cv, lgg_root, folds_file):
    out, _, _ = cv
    return choose_thresholds(lgg_root, folds_file, out, candidates=(0.5, 0.1, 0.3, 0.7))


def test_at_the_models_threshold_the_choice_reproduces_the_cv_figures(cv, choice):
    """Candidates are sorted; at the models' own 0.5 each patient's Dice is the one the cv
    pooled evaluation gave it (same fold model, same post-processing)."""
    _, (evaluation, _), _ = cv
    assert choice["candidates"] == [0.1, 0.3, 0.5, 0.7] and choice["own"] == [0.5]
    pooled = {row["patient"]: row["dice"] for row in evaluation.per_case}
    rows = {row["case"]: row for row in choice["rows"]}
    assert sorted(rows) == sorted(pooled)
    for pid, dice in pooled.items():
        assert rows[pid]["tumor_dice_at_0.5"] == pytest.approx(dice, abs=1e-9)
        assert rows[pid]["tumor_dice_own"] == pytest.approx(dice, abs=1e-9)
        assert pid in CV_FOLDS[rows[pid]["fold"]]


def test_the_choice_is_the_best_mean_and_nested_choices_ignore_their_fold(choice):
    """chosen: the candidate of highest mean Dice over all rows; nested[k]: the best over the
    rows of the other fold only, and fold k's rows are scored at it."""
    rows = choice["rows"]
    means = {t: np.mean([row[f"tumor_dice_at_{t:g}"] for row in rows]) for t in choice["candidates"]}
    assert choice["mean_dice"]["tumor"] == pytest.approx({f"{t:g}": m for t, m in means.items()})
    assert means[choice["chosen"][0]] == max(means.values())
    for k in (0, 1):
        others = [row for row in rows if row["fold"] != k]
        other_means = {t: np.mean([row[f"tumor_dice_at_{t:g}"] for row in others]) for t in choice["candidates"]}
        nested = choice["nested"][str(k)][0]
        assert other_means[nested] == max(other_means.values())
        for row in rows:
            if row["fold"] == k:
                assert row["tumor_dice_nested"] == pytest.approx(row[f"tumor_dice_at_{nested:g}"], abs=1e-9)
    assert choice["dice"]["tumor"]["chosen"] == pytest.approx(means[choice["chosen"][0]])


def test_candidates_outside_zero_to_one_are_refused(cv, lgg_root, folds_file):
    out, _, _ = cv
    with pytest.raises(ConfigError, match=r"\(0, 1\)"):
        choose_thresholds(lgg_root, folds_file, out, candidates=(0.3, 1.0))


def test_thresholds_command_writes_the_choice_and_refuses_to_overwrite(cv, lgg_root, folds_file, tmp_path):
    """`gliomaseg thresholds` writes thresholds.json and per_case.csv and prints the choice as
    a --threshold value; a second run without --overwrite, a folder without fold models and a
    bad candidate each give one error line and no traceback."""
    out, _, _ = cv
    target = tmp_path / "choice"
    args = ["thresholds", lgg_root, "--model", out, "--split", folds_file, "--candidates", "0.3,0.5", "--out", target]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    saved = json.loads((target / "thresholds.json").read_text())
    assert saved["candidates"] == [0.3, 0.5] and saved["regions"] == ["tumor"]
    assert f"--threshold {saved['chosen'][0]:g}" in result.stdout
    with (target / "per_case.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(map(len, CV_FOLDS)) and saved["own"] == [0.5]
    started = run_cli(*args[:-2], "--threshold", "0.3", "--out", tmp_path / "from0.3")
    assert started.returncode == 0, started.stderr
    assert json.loads((tmp_path / "from0.3" / "thresholds.json").read_text())["own"] == [0.3]
    with (tmp_path / "from0.3" / "per_case.csv").open() as handle:
        for row in csv.DictReader(handle):  # the start is scored as "own": the sweep's figure at 0.3
            assert float(row["tumor_dice_own"]) == pytest.approx(float(row["tumor_dice_at_0.3"]), abs=1e-9)
    for bad, says in ((args, "--overwrite"),
                      ([*args[:-2], "--threshold", "0.3,0.4", "--out", tmp_path / "z"], "threshold"),
                      (["thresholds", lgg_root, "--model", tmp_path, "--split", folds_file, "--out", tmp_path / "x"], "no fold models"),
                      ([*args[:-4], "--candidates", "0.3,one", "--out", tmp_path / "y"], "threshold")):
        refused = run_cli(*bad)
        assert refused.returncode == 1, refused.stderr
        assert len(error_lines(refused)) == 1 and says in refused.stderr, refused.stderr
        assert_no_traceback(refused)
