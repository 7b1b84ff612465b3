"""Patient-level splits on the real 90 LGG patient ids."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import REPO, SHARED

from gliomaseg.data.splits import load_split, make_split
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
