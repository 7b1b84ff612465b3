"""FLAIR-copy augmentation on real 2.5D batches: LGG slice stacks get FLAIR in place of the
pre- and post-contrast sequences in every stacked slice alike, and BraTS stacks (four
sequences) are left alone."""

from __future__ import annotations

import pytest
import torch

from conftest import BRATS_TRAIN_CASE, TRAIN_PATIENTS
from gliomaseg.config import AugmentConfig, Config
from gliomaseg.data.augment import ELASTIC_GRID, elastic_displacements, trained_mirror_axes
from gliomaseg.data.base import get_dataset
from gliomaseg.inference.tta import tta_transforms
from gliomaseg.training.trainer import prepare

COPY_ALWAYS = AugmentConfig(flip=False, rotate_degrees=0, scale=(1.0, 1.0), intensity=0, flair_copy=1.0)
NO_AUGMENT = AugmentConfig(flip=False, rotate_degrees=0, scale=(1.0, 1.0), intensity=0, flair_copy=0.0)


def bank(dataset: str, root, cases: list[str], **data):
    config = Config.from_dict({"model": {"in_channels": 9 if dataset == "kaggle3m" else 12},
                               "data": {"dataset": dataset, "context_slices": 1, **data}})
    return prepare(get_dataset(dataset), root, {"train": cases, "val": []}, config)[0]


@pytest.mark.parametrize("probability", [1.0, 0.5])
def test_flair_copies_fill_every_stacked_lgg_slice(lgg_root, probability):
    """With 3 sequences x 3 slices, a sample chosen for a copy has FLAIR (channels 1, 4, 7) in
    place of the chosen sequence in all three slices; FLAIR itself is never changed, and with
    probability 1/2 some samples keep their own sequences."""
    slices = bank("kaggle3m", lgg_root, TRAIN_PATIENTS[:1], image_size=64, crop_to_brain=True)
    rows = slices.sample(32, 1.0, torch.Generator().manual_seed(0))
    plain, _ = slices.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    copied, _ = slices.batch(rows, AugmentConfig(**{**vars(COPY_ALWAYS), "flair_copy": probability}),
                             torch.Generator().manual_seed(1))
    assert copied.shape == plain.shape == (32, 9, 64, 64)
    flair = plain[:, 1::3]
    assert torch.equal(copied[:, 1::3], flair)
    for channel in (0, 2):
        replaced = (copied[:, channel::3] == flair).flatten(1).all(1)
        own = (copied[:, channel::3] == plain[:, channel::3]).flatten(1).all(1)
        assert bool((replaced | own).all())  # per sample, all three slices alike
        if probability == 1.0:
            assert bool(replaced.all())
        else:
            differs = ~(plain[:, channel::3] == flair).flatten(1).all(1)
            assert 0 < int((replaced & differs).sum()) < int(differs.sum())


def test_brats_stacks_get_no_flair_copy(brats_root):
    """Four sequences x 3 slices is not an LGG stack: the copy leaves the batch as it was."""
    windows = bank("brats", brats_root, [BRATS_TRAIN_CASE], patch_size=[64, 64, 1])
    rows = windows.sample(8, 1.0, torch.Generator().manual_seed(0))
    plain, _ = windows.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    copied, _ = windows.batch(rows, COPY_ALWAYS, torch.Generator().manual_seed(1))
    assert plain.shape == (8, 12, 64, 64) and torch.equal(copied, plain)


def test_flip_height_mirrors_brats_windows_left_right(brats_root):
    """``flip_height`` alone (no other transform): every real BraTS window and its mask come out
    as they were or mirrored along axis 0 (the x axis of the case, left-right in its L, P, S
    orientation), both within one batch; with ``flip`` as well, the saved mirror axes for flip
    TTA are both in-plane axes."""
    windows = bank("brats", brats_root, [BRATS_TRAIN_CASE], patch_size=[64, 64, 1])
    rows = windows.sample(16, 1.0, torch.Generator().manual_seed(0))
    plain, plain_masks = windows.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    flipped, masks = windows.batch(rows, AugmentConfig(**{**vars(NO_AUGMENT), "flip_height": True}),
                                   torch.Generator().manual_seed(1))
    assert get_dataset("brats").orientation[0] == "L"
    mirrored = []
    for k in range(16):
        same = torch.allclose(flipped[k], plain[k], atol=1e-4) and torch.equal(masks[k], plain_masks[k])
        mirror = (torch.allclose(flipped[k], plain[k].flip(-2), atol=1e-4)
                  and torch.equal(masks[k], plain_masks[k].flip(-2)))
        assert same or mirror, k
        mirrored.append(mirror and not same)
    assert 0 < sum(mirrored) < 16
    both = AugmentConfig(flip=True, flip_height=True)
    assert trained_mirror_axes(both, 2) == (0, 1) and trained_mirror_axes(AugmentConfig(), 2) == (1,)
    assert trained_mirror_axes(both, 3) == (0, 1, 2)
    assert len(tta_transforms("flip", trained_mirror_axes(both, 2), 2)) == 4


def test_bias_fields_are_numpys_legendre_series():
    """The log bias field of each sample is numpy's Legendre series with the same coefficients
    (``leggrid2d``/``leggrid3d``, terms of total degree at most 3), on a non-square grid."""
    import itertools

    import numpy as np

    from gliomaseg.data.augment import bias_fields

    for spatial, grid in (((24, 40), np.polynomial.legendre.leggrid2d), ((12, 16, 8), np.polynomial.legendre.leggrid3d)):
        orders = [o for o in itertools.product(range(4), repeat=len(spatial)) if sum(o) <= 3]
        assert len(orders) == (10 if len(spatial) == 2 else 20)
        coefficients = torch.randn(3, len(orders), generator=torch.Generator().manual_seed(len(spatial)))
        fields = bias_fields(coefficients, spatial)
        assert fields.shape == (3, 1, *spatial)
        coords = [np.linspace(-1.0, 1.0, side) for side in spatial]
        for sample in range(3):
            matrix = np.zeros((4,) * len(spatial))
            for order, value in zip(orders, coefficients[sample].tolist()):
                matrix[order] = value
            np.testing.assert_allclose(fields[sample, 0].numpy(), grid(*coords, matrix), atol=1e-4)


def test_gamma_transform_is_monais_adjust_contrast_inside_the_brain(lgg_root):
    """On real LGG slice stacks (background 0), each sample's gamma transform equals MONAI's
    AdjustContrast with that gamma; gamma 1 leaves a sample as it was."""
    from monai.transforms import AdjustContrast

    from gliomaseg.data.augment import gamma_transform

    slices = bank("kaggle3m", lgg_root, TRAIN_PATIENTS[:1], image_size=64, crop_to_brain=True)
    images, _ = slices.batch(slices.sample(4, 1.0, torch.Generator().manual_seed(0)), NO_AUGMENT,
                             torch.Generator().manual_seed(1))
    gammas = torch.tensor([0.7, 1.0, 1.3, 1.5])
    out = gamma_transform(images, gammas)
    torch.testing.assert_close(out[1], images[1], atol=1e-6, rtol=1e-6)
    for sample, gamma in enumerate(gammas.tolist()):
        expected = AdjustContrast(gamma)(images[sample])
        torch.testing.assert_close(out[sample], torch.as_tensor(expected).float(), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out[0], images[0])


def test_bias_field_and_gamma_keep_geometry_and_background(brats_root):
    """On real z-scored BraTS stacks (brain voxels below 0, so the sample minimum is not the
    background): with both transforms always on, the masks and the zero background are those of
    the same draw without them, and every sample's brain changes."""
    windows = bank("brats", brats_root, [BRATS_TRAIN_CASE], patch_size=[64, 64, 1])
    rows = windows.sample(8, 1.0, torch.Generator().manual_seed(0))
    plain_config = AugmentConfig(intensity=0)
    plain, plain_masks = windows.batch(rows, plain_config, torch.Generator().manual_seed(1))
    both = AugmentConfig(**{**vars(plain_config), "gamma": 1.0, "bias_field": 1.0})
    changed, masks = windows.batch(rows, both, torch.Generator().manual_seed(1))
    assert torch.equal(masks, plain_masks)
    assert torch.equal(changed == 0, plain == 0)
    assert bool(((changed - plain).abs().flatten(1).amax(1) > 1e-3).all())
    assert bool((plain < 0).any())


@pytest.mark.parametrize("probability", [0.0, 0.5])
def test_gamma_and_bias_field_probabilities(lgg_root, probability):
    """With probability 0 the batch is the plain draw exactly; with 1/2 some samples change and
    some do not (per sample, not per batch)."""
    slices = bank("kaggle3m", lgg_root, TRAIN_PATIENTS[:1], image_size=64, crop_to_brain=True)
    rows = slices.sample(32, 1.0, torch.Generator().manual_seed(0))
    plain, _ = slices.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    config = AugmentConfig(**{**vars(NO_AUGMENT), "gamma": probability, "bias_field": probability})
    changed, _ = slices.batch(rows, config, torch.Generator().manual_seed(1))
    same = (changed == plain).flatten(1).all(1)
    if probability == 0:
        assert bool(same.all())
    else:
        assert 0 < int(same.sum()) < 32


def test_elastic_control_points_move_by_sigma_pixels():
    """At the 3x3 control points the displacement, back in pixels, has the standard deviation
    asked for (10 px; 256 samples x 9 points x 2 axes) and mean 0; between them it is smooth
    (neighbouring pixels move alike: within a tenth of the largest displacement, for control
    points 32 and 48 px apart); unchosen samples do not move."""
    height, width = 96, 64
    field = elastic_displacements(torch.Size([256, 3, height, width]), 1.0, 10.0, torch.Generator().manual_seed(0))
    assert field.shape == (256, height, width, 2)
    pixels = field * torch.tensor([width, height]) / 2  # normalised [-1, 1] -> pixels
    rows = torch.linspace(0, height - 1, ELASTIC_GRID).long()
    cols = torch.linspace(0, width - 1, ELASTIC_GRID).long()
    points = pixels[:, rows][:, :, cols]
    assert abs(float(points.std()) - 10.0) < 0.5 and abs(float(points.mean())) < 0.5
    largest = float(pixels.abs().max())
    assert float((pixels[:, 1:] - pixels[:, :-1]).abs().max()) < largest / 10
    assert float((pixels[:, :, 1:] - pixels[:, :, :-1]).abs().max()) < largest / 10
    none = elastic_displacements(torch.Size([8, 3, height, width]), 0.0, 10.0, torch.Generator().manual_seed(0))
    assert torch.equal(none, torch.zeros_like(none))


@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_elastic_deformation_of_real_lgg_slices(lgg_root, probability):
    """Elastic deformation alone on real tumor slices: off, the batch is the plain draw exactly;
    at 1/2, some samples move and some not; at 1, every one moves; images and masks move alike
    (masks stay in {0, 1}, the lesion area changes by less than half, its centre by less than
    3 sigma)."""
    slices = bank("kaggle3m", lgg_root, TRAIN_PATIENTS[:1], image_size=64, crop_to_brain=True)
    rows = slices.sample(32, 1.0, torch.Generator().manual_seed(0))
    plain, plain_masks = slices.batch(rows, NO_AUGMENT, torch.Generator().manual_seed(1))
    config = AugmentConfig(**{**vars(NO_AUGMENT), "elastic": probability, "elastic_sigma": 3.0})
    moved, masks = slices.batch(rows, config, torch.Generator().manual_seed(1))
    same = (moved == plain).flatten(1).all(1) & (masks == plain_masks).flatten(1).all(1)
    unmoved = int(same.sum())
    if probability == 0.0:
        assert unmoved == 32
    elif probability == 1.0:
        assert unmoved == 0
    else:
        assert 0 < unmoved < 32, unmoved
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    area, plain_area = masks.sum((1, 2, 3)), plain_masks.sum((1, 2, 3))
    lesion = plain_area > 20
    assert bool(lesion.any()) and bool(((area[lesion] / plain_area[lesion] - 1).abs() < 0.5).all())
    grid = torch.stack(torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij"))
    centre = lambda m: (m[:, :1] * grid).sum((2, 3)) / m[:, 0].sum((1, 2))[:, None]  # (B, 2) pixels
    shift = (centre(masks[lesion]) - centre(plain_masks[lesion])).norm(dim=1)
    assert float(shift.max()) < 9.0, shift
