"""Reader for image/mask folders, on the real Figshare slices in ../shared/figshare (RGBA PNG
with grey content, 512x512, masks 0/255); broken variants are built from copies in tmp_path."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

from gliomaseg.data import detect_dataset, image_folder
from gliomaseg.data.image_folder import ImageFolder
from gliomaseg.errors import InputError

FIGSHARE = SHARED / "figshare"
READER = ImageFolder()
FIRST, SECOND, THIRD = "3000", "3002", "3003"  # Figshare slice ids, all with tumor


@pytest.fixture(autouse=True)
def fresh_messages(monkeypatch):
    """Every test starts as a new process would: no conversion said yet."""
    monkeypatch.setattr(image_folder, "_said", set())


def _grey(stem: str) -> np.ndarray:
    """A Figshare image's grey content, ``(512, 512)`` uint8."""
    return np.asarray(Image.open(FIGSHARE / "images" / f"{stem}.png"))[..., 0]


def _tumor(stem: str) -> np.ndarray:
    """A Figshare mask as ``(512, 512)`` bool."""
    return np.asarray(Image.open(FIGSHARE / "masks" / f"{stem}_mask.png"))[..., 0] > 0


def _folder(root: Path, images: dict[str, str], masks: dict[str, str]) -> Path:
    """A dataset folder: ``images`` maps ``images/<name>`` to the Figshare image copied there,
    ``masks`` maps a path under ``root`` to the Figshare mask copied there."""
    (root / "images").mkdir(parents=True)
    for name, stem in images.items():
        shutil.copy(FIGSHARE / "images" / f"{stem}.png", root / "images" / name)
    for rel, stem in masks.items():
        (root / rel).parent.mkdir(exist_ok=True)
        shutil.copy(FIGSHARE / "masks" / f"{stem}_mask.png", root / rel)
    return root


def _pair(root: Path) -> Path:
    """Slices ``2`` and ``10`` with their masks in ``masks/``."""
    return _folder(root, {"2.png": FIRST, "10.png": SECOND}, {"masks/2_mask.png": FIRST, "masks/10_mask.png": SECOND})


def test_detection_figshare_is_image_folder_and_kaggle3m_stays(lgg_root):
    assert detect_dataset(FIGSHARE).name == "image_folder"
    assert detect_dataset(lgg_root).name == "kaggle3m"
    assert not READER.detect(lgg_root)
    assert not READER.detect(FIGSHARE / "images" / f"{FIRST}.png")  # loose files are kaggle3m's


def test_find_figshare_pairs_every_slice_with_its_mask():
    refs = READER.find(FIGSHARE)
    stems = sorted((p.stem for p in (FIGSHARE / "images").glob("*.png")), key=int)
    assert len(refs) == 48 and [r.id for r in refs] == stems
    for ref in refs:
        assert ref.images == (FIGSHARE / "images" / f"{ref.id}.png",)
        assert ref.labels == (FIGSHARE / "masks" / f"{ref.id}_mask.png",)
        assert ref.output == Path(".")


def test_load_figshare_slice_as_grey_and_says_so_once(caplog):
    ref = READER.find(FIGSHARE)[0]
    with caplog.at_level(logging.INFO, logger="gliomaseg"):
        case = READER.load(ref)
        again = READER.load(ref, channels=1)
    assert case.images.shape == (1, 512, 512, 1) and case.images.dtype == np.uint8
    assert case.channels == ("grey",) and case.dataset == "image_folder" and case.spacing is None
    np.testing.assert_array_equal(case.images[0, ..., 0], _grey(ref.id))
    np.testing.assert_array_equal(again.images, case.images)
    assert case.label.shape == (512, 512, 1) and case.label.dtype == np.uint8
    assert set(np.unique(case.label)) == {0, 1}
    np.testing.assert_array_equal(case.label[..., 0], _tumor(ref.id))
    assert [r.getMessage() for r in caplog.records] == [
        f"{FIGSHARE / 'images'}: RGBA PNG with grey content read as 1 channel (alpha dropped)"]


def test_load_grey_for_a_three_channel_model_replicates_it():
    case = READER.load(READER.find(FIGSHARE)[0], channels=3)
    assert case.images.shape == (3, 512, 512, 1) and case.channels == ("red", "green", "blue")
    assert all(np.array_equal(case.images[c], case.images[0]) for c in (1, 2))
    np.testing.assert_array_equal(case.images[0, ..., 0], _grey(FIRST))


@pytest.mark.parametrize("masks", [
    {"masks/2.png": FIRST, "masks/10.png": SECOND},
    {"masks/2_mask.png": FIRST, "masks/10_mask.png": SECOND},
    {"images/2_mask.png": FIRST, "images/10_mask.png": SECOND},
], ids=["same-stem", "stem_mask-in-masks", "stem_mask-in-images"])
def test_mask_matching_rules_in_natural_order(tmp_path, masks):
    root = _folder(tmp_path, {"10.png": SECOND, "2.png": FIRST}, masks)
    refs = READER.find(root)
    assert [r.id for r in refs] == ["2", "10"]  # numeric, not "10" < "2"
    assert [r.labels for r in refs] == [(root / m,) for m in masks]
    np.testing.assert_array_equal(READER.load(refs[1]).label[..., 0], _tumor(SECOND))


def test_segment_needs_only_images(tmp_path):
    root = _folder(tmp_path, {"2.png": FIRST, "2_mask.png": FIRST}, {})
    assert READER.detect(root)
    refs = READER.inputs(root, [])
    assert [(r.id, r.labels) for r in refs] == [("2", None)]  # the _mask file is no image
    assert READER.load(refs[0]).label is None
    with pytest.raises(InputError, match="no masks"):
        READER.find(_folder(tmp_path / "bare", {"2.png": FIRST}, {}))


def test_jpeg_mask_is_not_binary(tmp_path):
    root = _folder(tmp_path, {"2.png": FIRST}, {})
    (root / "masks").mkdir()
    jpeg = root / "masks" / "2_mask.jpg"
    Image.fromarray(_tumor(FIRST).astype(np.uint8) * 255).save(jpeg, quality=75)
    with pytest.raises(InputError, match=r"mask values \[0, .*\] .*are not binary \(0/255 or 0/1\)") as error:
        READER.load(READER.find(root)[0])
    assert error.value.path == jpeg


def test_zero_one_mask_accepted(tmp_path):
    root = _folder(tmp_path, {"2.png": FIRST}, {})
    (root / "masks").mkdir()
    Image.fromarray(_tumor(FIRST).astype(np.uint8)).save(root / "masks" / "2.png")
    np.testing.assert_array_equal(READER.load(READER.find(root)[0]).label[..., 0], _tumor(FIRST))


def test_image_without_mask_named_and_skipped_in_batches(tmp_path):
    root = _pair(tmp_path)
    shutil.copy(FIGSHARE / "images" / f"{THIRD}.png", root / "images" / "5.png")
    with pytest.raises(InputError, match="image without its mask") as error:
        READER.find(root)
    assert error.value.path == root / "images" / "5.png"
    problems = []
    assert [r.id for r in READER.find(root, problems=problems)] == ["2", "10"]
    assert [p.path for p in problems] == [root / "images" / "5.png"]


def test_mask_without_image_and_two_masks_for_one_image(tmp_path):
    root = _pair(tmp_path)
    shutil.copy(FIGSHARE / "masks" / f"{THIRD}_mask.png", root / "masks" / "7_mask.png")
    with pytest.raises(InputError, match="mask without its image") as error:
        READER.find(root)
    assert error.value.path == root / "masks" / "7_mask.png"
    (root / "masks" / "7_mask.png").unlink()
    shutil.copy(FIGSHARE / "masks" / f"{FIRST}_mask.png", root / "images" / "2_mask.png")
    with pytest.raises(InputError, match="2 masks match this image") as error:
        READER.find(root)
    assert error.value.path == root / "images" / "2.png"


def test_mask_of_another_size(tmp_path):
    root = _pair(tmp_path)
    small = Image.fromarray(_tumor(FIRST).astype(np.uint8) * 255).resize((256, 256), Image.NEAREST)
    small.save(root / "masks" / "2_mask.png")
    with pytest.raises(InputError, match=r"mask of size \(256, 256\) does not match its image's \(512, 512\)") as error:
        READER.load(READER.find(root)[0])
    assert error.value.path == root / "masks" / "2_mask.png"


def test_colour_image_for_a_grey_model_is_luminance(tmp_path, caplog):
    root = _folder(tmp_path, {}, {"masks/2_mask.png": FIRST})
    grey = _grey(FIRST)
    colour = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    Image.fromarray(colour).save(root / "images" / "2.png")
    ref = READER.find(root)[0]
    own = READER.load(ref)
    assert own.channels == ("red", "green", "blue")
    np.testing.assert_array_equal(own.images[..., 0].transpose(1, 2, 0), colour)
    with caplog.at_level(logging.INFO, logger="gliomaseg"):
        case = READER.load(ref, channels=1)
    expected = np.asarray(Image.open(root / "images" / "2.png").convert("L"))
    np.testing.assert_array_equal(case.images[0, ..., 0], expected)
    assert "RGB PNG with colour content read as 1 channel (luminance, ITU-R 601-2)" in caplog.text


def test_bmp_image(tmp_path):
    root = _folder(tmp_path, {}, {"masks/2_mask.png": FIRST})
    Image.fromarray(_grey(FIRST)).save(root / "images" / "2.bmp")
    case = READER.load(READER.find(root)[0])
    assert case.sources == (root / "images" / "2.bmp",)
    np.testing.assert_array_equal(case.images[0, ..., 0], _grey(FIRST))


def test_patient_pattern_groups_slices_in_slice_order(tmp_path):
    images = {"P1_10.png": THIRD, "P1_2.png": SECOND, "P1_1.png": FIRST, "P2_1.png": SECOND}
    root = _folder(tmp_path, images, {f"masks/{name}": stem for name, stem in images.items()})
    (root / "dataset.yaml").write_text("patient_pattern: '(?P<patient>P\\d+)_(?P<slice>\\d+)'\n")
    p1, p2 = READER.find(root)
    assert (p1.id, p2.id, p1.output) == ("P1", "P2", Path("P1"))
    assert [f.name for f in p1.images] == ["P1_1.png", "P1_2.png", "P1_10.png"]
    assert [f.name for f in p1.labels] == ["P1_1.png", "P1_2.png", "P1_10.png"]
    case = READER.load(p1)
    assert case.images.shape == (1, 512, 512, 3) and case.label.shape == (512, 512, 3)
    for index, stem in enumerate((FIRST, SECOND, THIRD)):
        np.testing.assert_array_equal(case.images[0, ..., index], _grey(stem))
        np.testing.assert_array_equal(case.label[..., index], _tumor(stem))


def test_patient_pattern_errors(tmp_path):
    root = _pair(tmp_path)
    config = root / "dataset.yaml"
    config.write_text("patient_pattern: '(P\\d+'\n")
    with pytest.raises(InputError, match="not a valid regular expression") as error:
        READER.find(root)
    assert error.value.path == config
    config.write_text("patient_pattern: '(\\d)(?P<slice>\\d+)'\n")  # "2" is too short to match
    with pytest.raises(InputError, match="does not match the patient_pattern") as error:
        READER.find(root)
    assert error.value.path == root / "images" / "2.png"
    problems = []
    assert [(r.id, [f.name for f in r.images]) for r in READER.find(root, problems=problems)] == [("1", ["10.png"])]
    assert [p.path for p in problems] == [root / "images" / "2.png"]


def test_patient_slices_of_another_size_or_the_same_number(tmp_path):
    root = _folder(tmp_path, {"P1_1.png": FIRST, "P1_2.png": SECOND}, {})
    (root / "dataset.yaml").write_text("patient_pattern: '(?P<patient>P\\d+)_(?P<slice>\\d+)'\n")
    Image.fromarray(_grey(SECOND)[:256]).save(root / "images" / "P1_2.png")
    with pytest.raises(InputError, match=r"slice of size \(256, 512\) in a patient whose first slice is \(512, 512\)") as error:
        READER.load(READER.find(root, require_labels=False)[0])
    assert error.value.path == root / "images" / "P1_2.png"
    shutil.copy(FIGSHARE / "images" / f"{THIRD}.png", root / "images" / "P1_02.png")
    with pytest.raises(InputError, match="slice 2 of patient P1 again") as error:
        READER.find(root, require_labels=False)
    assert error.value.path == root / "images" / "P1_2.png"  # the second in file-name order
