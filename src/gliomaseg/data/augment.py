"""On-the-fly augmentation of whole batches: flips, small rotations and scaling, elastic
deformation, intensity jitter, and FLAIR copies in place of the other LGG sequences. 3D patches
get mirroring along every axis and the intensity jitter (nnU-Net's cheapest and most useful 3D
transforms). Both may get a smooth bias field and a gamma transform per sample (the forms of
TorchIO's ``RandomBiasField`` and MONAI's ``AdjustContrast``, done on the whole batch at once),
off unless a config asks for them.

The geometry (with the elastic displacements added to the affine grid) is done on the batch
tensor with one ``affine_grid``/``grid_sample`` call, which costs a small fraction of a
training step on the CPU, unlike per-sample pipelines.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from ..config import AugmentConfig


def augment_batch(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator,
                  stack: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transform a batch; image and mask get the same geometry.

    Args:
        images: ``(B, C, H, W)`` (or ``(B, C, X, Y, Z)``) float32 normalised images; for 2.5D
            input, ``stack`` slices of ``C / stack`` channels each (as ``stack_slices`` orders them).
        masks: ``(B, K, H, W)`` (or ``(B, K, X, Y, Z)``) float32 in {0, 1}.
        config: ranges of each transform (rotation, scaling, elastic deformation, ``flip_height`` and FLAIR copies apply to 2D only;
            FLAIR copies only to 3-sequence LGG slices, ``C = 3 * stack``; bias field, gamma and
            intensity jitter to both, in that order).
        generator: random source, for reproducible runs.
        stack: slices stacked as channels (``2 * context_slices + 1``).

    Returns:
        ``(images, masks)`` of the same shapes; masks stay in {0, 1}.
    """
    if images.dim() == 5:
        return _augment_volumes(images, masks, config, generator)
    batch = images.shape[0]

    angle = _uniform(-1, 1, generator, batch) * math.radians(config.rotate_degrees)
    scale = _uniform(*config.scale, generator, batch)
    flip = _mirror_signs(config.flip, generator, batch)
    flip_height = _mirror_signs(config.flip_height, generator, batch)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(batch, 2, 3)  # input (x, y) = rotation @ mirroring @ output (x, y); grid x is the width
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin * flip_height
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos * flip_height
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    if config.elastic > 0:
        grid = grid + elastic_displacements(images.shape, config.elastic, config.elastic_sigma, generator)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = (F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False) >= 0.5).float()
    if config.flair_copy > 0 and images.shape[1] == 3 * stack:
        images = _copy_flair(images, config.flair_copy, generator, stack)
    return _jitter_intensity(_bias_field_and_gamma(images, config, generator), config.intensity, generator), masks


ELASTIC_GRID = 3  # control points per side of the coarse displacement grid (Ronneberger et al. 2015)


def elastic_displacements(shape: torch.Size, probability: float, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Smooth random displacements of a 2D sampling grid, the elastic deformation of U-Net
    (Ronneberger et al. 2015, "U-Net: convolutional networks for biomedical image
    segmentation"): a displacement vector per point of a coarse 3x3 grid, drawn from a Gaussian
    of ``sigma`` pixels' standard deviation, interpolated bicubically to every pixel.

    Args:
        shape: ``(B, C, H, W)`` of the batch.
        probability: chance per sample of a deformation; the others get zero displacement.
        sigma: standard deviation of each control point's displacement, in pixels of the batch.
        generator: random source (draws the choice and the coarse grid for every sample).

    Returns:
        ``(B, H, W, 2)`` float32 displacements in ``grid_sample``'s normalised coordinates
        (x along the width first), to add to an ``affine_grid``.
    """
    batch, _, height, width = shape
    chosen = torch.rand(batch, generator=generator) < probability
    coarse = torch.randn(batch, 2, ELASTIC_GRID, ELASTIC_GRID, generator=generator) * sigma
    coarse = coarse * (2.0 / torch.tensor([width, height], dtype=torch.float32)).view(1, 2, 1, 1)  # pixels -> [-1, 1]
    coarse = coarse * chosen.view(batch, 1, 1, 1)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    return field.permute(0, 2, 3, 1)


def _mirror_signs(on: bool, generator: torch.Generator, batch: int) -> torch.Tensor:
    """``(B,)`` -1 (mirrored) or 1, each with probability 1/2; all 1 when ``on`` is false, then
    drawing nothing, so recipes without a mirroring keep their random streams."""
    return torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0) if on else torch.ones(batch)


def _uniform(low: float, high: float, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=generator)


def _jitter_intensity(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Per-sample, per-channel gain in ``1 +- amount`` and, inside the brain (non-zero), bias in ``+- amount``."""
    if amount <= 0:
        return images
    shape = (*images.shape[:2], *[1] * (images.dim() - 2))
    gain = _uniform(1 - amount, 1 + amount, generator, *shape)
    bias = _uniform(-amount, amount, generator, *shape)
    return images * gain + bias * (images != 0)


def _bias_field_and_gamma(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """With probability ``config.bias_field`` per sample, a bias field of coefficients drawn from
    ``+-config.bias_field_coeff`` (:func:`bias_fields`); then with probability ``config.gamma``
    a gamma transform (:func:`gamma_transform`), gamma below or above 1 with equal chance within
    ``config.gamma_range``, as nnU-Net draws it. Draws nothing from ``generator`` for a transform
    that is off, so recipes without them keep their random streams."""
    batch, spatial = images.shape[0], images.shape[2:]
    if config.bias_field > 0:
        chosen = torch.rand(batch, generator=generator) < config.bias_field
        terms = len(_legendre_terms(len(spatial), BIAS_FIELD_DEGREE))
        coefficients = _uniform(-config.bias_field_coeff, config.bias_field_coeff, generator, batch, terms)
        if chosen.any():
            images = images.clone()
            images[chosen] = images[chosen] * torch.exp(bias_fields(coefficients[chosen], spatial))
    if config.gamma > 0:
        chosen = torch.rand(batch, generator=generator) < config.gamma
        low, high = config.gamma_range
        darker = (torch.rand(batch, generator=generator) < 0.5) & (low < 1)
        gamma = torch.where(darker, _uniform(low, min(high, 1.0), generator, batch),
                            _uniform(max(low, 1.0), high, generator, batch))
        if chosen.any():
            images = images.clone()
            images[chosen] = gamma_transform(images[chosen], gamma[chosen])
    return images


BIAS_FIELD_DEGREE = 3


def _legendre_terms(dims: int, degree: int) -> list[tuple[int, ...]]:
    """Orders ``(i, j[, k])`` of the Legendre products of total degree at most ``degree``."""
    return [orders for orders in itertools.product(range(degree + 1), repeat=dims) if sum(orders) <= degree]


def bias_fields(coefficients: torch.Tensor, spatial: tuple[int, ...] | torch.Size,
                degree: int = BIAS_FIELD_DEGREE) -> torch.Tensor:
    """Log bias fields: per sample, ``sum_t c_t P_i(x) P_j(y) [P_k(z)]`` over the Legendre
    products of total degree at most ``degree`` on a grid of ``[-1, 1]`` along each axis, the
    smooth intensity inhomogeneity model of Van Leemput et al. 1999 (the form of TorchIO's
    ``RandomBiasField``; MONAI's ``RandBiasField`` keeps other products). Multiply images by
    ``exp`` of it.

    Args:
        coefficients: ``(B, T)`` float, ``T`` the number of products, in the order of
            ``itertools.product`` over the orders of each axis (10 for 2D and 20 for 3D at degree 3).
        spatial: the grid, ``(H, W)`` or ``(X, Y, Z)`` in pixels or voxels.

    Returns:
        ``(B, 1, *spatial)`` float32, one field for every channel of a sample.
    """
    axes = [torch.linspace(-1.0, 1.0, side) for side in spatial]
    legendre = []
    for coords in axes:  # Bonnet's recursion: (n + 1) P_{n+1} = (2n + 1) x P_n - n P_{n-1}
        values = [torch.ones_like(coords), coords]
        for n in range(1, degree):
            values.append(((2 * n + 1) * coords * values[n] - n * values[n - 1]) / (n + 1))
        legendre.append(values)
    basis = []
    for orders in _legendre_terms(len(spatial), degree):
        product = legendre[0][orders[0]]
        for axis in range(1, len(spatial)):
            product = product[..., None] * legendre[axis][orders[axis]]
        basis.append(product)
    return torch.einsum("bt,t...->b...", coefficients.float(), torch.stack(basis)).unsqueeze(1)


def gamma_transform(images: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """``x -> min + range * ((x - min) / range) ^ gamma`` per sample over all its channels (the
    contrast transform of nnU-Net and MONAI's ``AdjustContrast``), inside the brain only: the
    background (zeros) stays zero, also on z-scored volumes whose minimum is below it.

    Args:
        images: ``(B, C, *spatial)`` float.
        gamma: ``(B,)`` positive; 1 leaves a sample as it is.

    Returns:
        ``(B, C, *spatial)``, each sample within its own ``[min, max]``.
    """
    shape = (-1, *[1] * (images.dim() - 1))
    low = images.flatten(1).min(1).values.view(shape)
    span = images.flatten(1).max(1).values.view(shape) - low
    adjusted = low + span * ((images - low) / (span + 1e-7)).clamp(min=0) ** gamma.view(shape)
    return torch.where(images != 0, adjusted, images)


def _augment_volumes(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror each sample along each spatial axis with probability 1/2, then the bias field,
    gamma and intensity jitter of slices."""
    if config.flip:
        images, masks = images.clone(), masks.clone()
        for axis in (2, 3, 4):
            chosen = torch.rand(images.shape[0], generator=generator) < 0.5
            images[chosen] = images[chosen].flip(axis - 1)
            masks[chosen] = masks[chosen].flip(axis - 1)
    return _jitter_intensity(_bias_field_and_gamma(images, config, generator), config.intensity, generator), masks


def _copy_flair(images: torch.Tensor, probability: float, generator: torch.Generator, stack: int = 1) -> torch.Tensor:
    """Replace channel 0 (pre-contrast) and channel 2 (post-contrast) by channel 1 (FLAIR), each
    independently with ``probability`` per sample, in every one of the ``stack`` stacked slices
    alike. Some LGG patients ship that way (their missing sequences were filled with FLAIR),
    and a network that never saw it relies on the contrast between sequences and misses their
    tumors."""
    images = images.clone()
    for channel in (0, 2):
        chosen = torch.rand(images.shape[0], generator=generator) < probability
        for first in range(0, 3 * stack, 3):
            images[chosen, first + channel] = images[chosen, first + 1]
    return images


def trained_mirror_axes(config: AugmentConfig, spatial_dims: int) -> tuple[int, ...]:
    """The spatial axes of the network input that :func:`augment_batch` mirrors. Slice networks:
    the width (axis 1 of a ``(H, W)`` slice, ``y`` of an ``(x, y)`` slice) with ``flip``, the
    height (axis 0) with ``flip_height``; 3D networks: every axis with ``flip``, none without.
    Saved with a model, it bounds flip TTA."""
    if spatial_dims == 3:
        return (0, 1, 2) if config.flip else ()
    return tuple(axis for axis, on in ((0, config.flip_height), (1, config.flip)) if on)
