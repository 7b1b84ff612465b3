"""The dataset registry across every type: names, detection of each real layout, the protocol
each type fulfils on real data, and a new type added by one module."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import BRATS_TRAIN_CASE, SHARED
from gliomaseg.data import DATASETS, Case, CaseRef, DatasetType, detect_dataset, get_dataset, resolve_dataset
from gliomaseg.data.base import register
from gliomaseg.data.labels import BinaryLabels
from gliomaseg.errors import ConfigError, InputError


def test_registered_types_in_detection_order():
    """Every type is registered, in the order detection asks them: specific layouts first."""
    assert list(DATASETS) == ["brats", "image_folder", "kaggle3m", "dicom", "nifti"]
    with pytest.raises(ConfigError, match="registered: brats, image_folder, kaggle3m, dicom, nifti"):
        get_dataset("lgg_slices")


@pytest.fixture(scope="module")
def layouts(lgg_root, brats_root) -> dict[str, Path]:
    """A real folder of each type."""
    return {"kaggle3m": lgg_root, "brats": brats_root, "image_folder": SHARED / "figshare"}


def test_each_layout_is_detected_as_its_own_type(layouts):
    """Each real layout is recognised by its type and by no type asked before it."""
    for name, folder in layouts.items():
        assert detect_dataset(folder).name == name
        assert resolve_dataset(folder, name).name == name
    assert detect_dataset(layouts["brats"] / BRATS_TRAIN_CASE).name == "brats"  # a single case folder


def test_declared_type_contradicting_the_layout_is_refused(layouts):
    """data.dataset naming another type than the folder holds: one error naming the folder."""
    with pytest.raises(InputError, match="does not hold brats data"):
        resolve_dataset(layouts["kaggle3m"], "brats")


def test_unknown_layout_names_every_known_type(tmp_path):
    """A folder no type recognises: the error lists what each type expects."""
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(InputError) as raised:
        detect_dataset(tmp_path)
    assert all(name in str(raised.value) for name in DATASETS)


def test_every_type_reads_a_case_into_the_one_record(layouts):
    """find + load give a read-only Case with (C, *spatial) images whose channel count matches
    the names, a label map of the spatial shape within the convention's values, and sources."""
    for name, folder in layouts.items():
        dataset = get_dataset(name)
        ref = dataset.find(folder)[0]
        assert isinstance(ref, CaseRef) and ref.labels is not None
        case = dataset.load(ref)
        assert isinstance(case, Case) and case.dataset == name
        assert case.images.ndim == 4 and len(case.channels) == case.images.shape[0]
        assert case.label.shape == case.images.shape[1:] and case.label.dtype == np.uint8
        assert set(np.unique(case.label).tolist()) <= set(case.labels.allowed)
        assert case.sources and all(path.is_file() for path in case.sources)
        assert (case.spacing is not None) == dataset.volumetric
        with pytest.raises(ValueError):
            case.images[(0,) * case.images.ndim] = 1  # immutable record


def test_uncompressed_nifti_is_read_like_gzipped(brats_root, tmp_path):
    """A BraTS case stored as .nii (uncompressed) gives the same case as the .nii.gz original."""
    import nibabel as nib

    source = brats_root / BRATS_TRAIN_CASE
    folder = tmp_path / BRATS_TRAIN_CASE
    folder.mkdir()
    for path in source.glob("*.nii.gz"):
        nib.save(nib.load(str(path)), str(folder / path.name.replace(".nii.gz", ".nii")))
    brats = get_dataset("brats")
    plain, gz = brats.load(brats.find(folder)[0]), brats.load(brats.find(source)[0])
    assert all(p.suffix == ".nii" for p in plain.sources)
    assert np.array_equal(plain.images, gz.images) and np.array_equal(plain.label, gz.label)
    assert plain.spacing == gz.spacing


def test_a_new_type_is_one_class(tmp_path, monkeypatch):
    """Registering a DatasetType subclass makes detection and get_dataset find it, with no
    other change (the registry is restored afterwards)."""
    monkeypatch.setattr("gliomaseg.data.base.DATASETS", dict(DATASETS))
    from gliomaseg.data import base

    @register
    class Numpy(DatasetType):
        name = "npy_slices"
        description = "a folder of .npy slices"
        channels = ("grey",)
        labels = BinaryLabels()

        def detect(self, path: Path) -> bool:
            return path.is_dir() and any(path.glob("*.npy"))

    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((4, 4)))
    assert base.detect_dataset(folder).name == "npy_slices"
    assert base.get_dataset("npy_slices").description == "a folder of .npy slices"
    with pytest.raises(ValueError, match="registered twice"):
        register(Numpy)
    shutil.rmtree(folder)
