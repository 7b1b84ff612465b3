"""Patient-level splits on the real 90 LGG patient ids."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import REPO, SHARED

from gliomaseg.data.splits import fold_split, load_folds, load_split, make_folds, make_split
from gliomaseg.errors import InputError

SUBSETS = ("train", "val", "test")


@pytest.fixture(scope="module")
def ids() -> list[str]:
    """The real LGG patient ids, one per archive in ../shared/lgg/patients."""
    found = sorted(p.stem for p in (SHARED / "lgg" / "patients").glob("*.tar"))
    assert len(found) == 90
    return found


def _institution(patient_id: str) -> str:
    return patient_id.split("_")[1]  # TCGA_<inst>_<case>_<date>


def _assert_partition(split: dict[str, list[str]], ids: list[str]) -> None:
    assert set(split) == set(SUBSETS)
    members = [pid for name in SUBSETS for pid in split[name]]
    assert len(members) == len(set(members)), "a patient is in two subsets (or twice in one)"
    assert sorted(members) == sorted(ids)


def test_split_is_a_partition(ids):
    """No patient is in two subsets and the subsets together hold every patient once."""
    split = make_split(ids, 0.15, 0.15, 0)
    _assert_partition(split, ids)
    for name in SUBSETS:
        assert split[name] == sorted(split[name])


def test_split_sizes_near_fractions(ids):
    """Val and test hold about 15 % of the patients each, train about 70 %."""
    split = make_split(ids, 0.15, 0.15, 0)
    n = len(ids)
    assert abs(len(split["val"]) - 0.15 * n) <= 1
    assert abs(len(split["test"]) - 0.15 * n) <= 1
    assert abs(len(split["train"]) - 0.70 * n) <= 2


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_large_institution_in_every_subset(ids, seed):
    """Each institution with at least 5 patients has patients in train, val and test."""
    split = make_split(ids, 0.15, 0.15, seed)
    sizes = Counter(_institution(pid) for pid in ids)
    large = sorted(inst for inst, count in sizes.items() if count >= 5)
    assert len(large) >= 3
    for name in SUBSETS:
        present = {_institution(pid) for pid in split[name]}
        assert set(large) <= present, f"{name} lacks {set(large) - present}"


def test_same_seed_same_split(ids):
    """The same ids and seed give the same split, whatever the order the ids come in."""
    assert make_split(ids, 0.15, 0.15, 3) == make_split(list(reversed(ids)), 0.15, 0.15, 3)


def test_different_seed_different_split(ids):
    """Other seeds give other splits."""
    base = make_split(ids, 0.15, 0.15, 0)
    for seed in (1, 2, 3):
        other = make_split(ids, 0.15, 0.15, seed)
        _assert_partition(other, ids)
        assert other["test"] != base["test"]


def test_committed_split_matches_make_split(ids):
    """splits/lgg.json is make_split(ids, 0.15, 0.15, 0) and has no leaks."""
    committed = json.loads((REPO / "splits" / "lgg.json").read_text())
    _assert_partition(committed, ids)
    assert committed == make_split(ids, 0.15, 0.15, 0)
    assert load_split(REPO / "splits" / "lgg.json") == committed


def test_load_split_rejects_patient_in_two_subsets(tmp_path):
    """load_split raises InputError naming the file and the patient found in two subsets."""
    split = json.loads((REPO / "splits" / "lgg.json").read_text())
    leaked = split["train"][0]
    split["test"].append(leaked)
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(split))
    with pytest.raises(InputError) as raised:
        load_split(path)
    assert raised.value.path == path
    assert "leaky.json" in str(raised.value) and leaked in str(raised.value)


# -- cross-validation folds -------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 5, 10])
def test_folds_partition_the_patients_in_near_equal_sizes(ids, k):
    """make_folds deals every patient into exactly one of k folds whose sizes differ by <= 1."""
    folds = make_folds(ids, k, 0)
    assert len(folds) == k
    members = [pid for fold in folds for pid in fold]
    assert sorted(members) == sorted(ids) and len(members) == len(set(members))
    sizes = [len(fold) for fold in folds]
    assert max(sizes) - min(sizes) <= 1


def test_every_large_institution_in_every_fold(ids):
    """An institution with at least 5 patients has patients in each of the 5 folds."""
    folds = make_folds(ids, 5, 0)
    sizes = Counter(_institution(pid) for pid in ids)
    for inst in (inst for inst, count in sizes.items() if count >= 5):
        assert all(any(_institution(pid) == inst for pid in fold) for fold in folds), inst


def test_fold_split_holds_out_one_fold(ids):
    """Fold k trains on every other fold and validates on fold k; together they are everyone."""
    folds = make_folds(ids, 5, 0)
    for k, fold in enumerate(folds):
        split = fold_split(folds, k)
        assert split["val"] == fold and split["test"] == []
        assert not set(split["train"]) & set(fold)
        assert sorted(split["train"] + split["val"]) == sorted(ids)


@pytest.mark.parametrize("name, count", [("lgg_folds.json", 90), ("brats_folds.json", 10)])
def test_committed_folds_match_make_folds(name, count):
    """splits/<dataset>_folds.json is make_folds(its ids, 5, 0) over every shared patient (case)."""
    folds = load_folds(REPO / "splits" / name)
    ids = [pid for fold in folds for pid in fold]
    archives = sorted(p.name.split(".")[0] for p in (SHARED / name.split("_")[0] / ("patients" if count == 90 else "cases")).iterdir())
    assert sorted(ids) == archives and len(ids) == count
    assert folds == make_folds(ids, 5, 0)


def test_load_split_of_a_folds_file_needs_a_fold(tmp_path, ids):
    """A folds file gives fold k's split with fold=k; without a fold, out of range, or a fold of a
    plain split, the error names the file."""
    path = tmp_path / "folds.json"
    path.write_text(json.dumps({"folds": make_folds(ids, 3, 0)}))
    assert load_split(path, 1) == fold_split(make_folds(ids, 3, 0), 1)
    for fold, words in ((None, "--fold 0..2"), (3, "from 0 to 2")):
        with pytest.raises(InputError, match=words) as raised:
            load_split(path, fold)
        assert raised.value.path == path
    with pytest.raises(InputError, match="not cross-validation folds"):
        load_split(REPO / "splits" / "lgg.json", 0)
    with pytest.raises(InputError, match="no cross-validation folds"):
        load_folds(REPO / "splits" / "lgg.json")


def test_load_folds_rejects_patient_in_two_folds(tmp_path, ids):
    """A patient in two folds would be trained on and scored: refused, naming patient and folds."""
    folds = make_folds(ids, 5, 0)
    folds[3].append(folds[0][0])
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps({"folds": folds}))
    with pytest.raises(InputError, match=f"{folds[0][0]} is in both fold 0 and fold 3"):
        load_folds(path)


@pytest.mark.parametrize("k", [1, 91])
def test_make_folds_refuses_impossible_counts(ids, k):
    """Fewer than 2 folds or more folds than patients is a ValueError."""
    with pytest.raises(ValueError, match="--folds"):
        make_folds(ids, k, 0)
