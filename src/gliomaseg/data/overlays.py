"""Pictures of predictions: a mask tinted and outlined over a slice, and a montage of labelled
axial slices of a volume."""

from __future__ import annotations

import numpy as np

FILL_RGB = np.array([255, 40, 40], np.float32)  # tumor tint
CONTOUR_RGB = np.array([255, 255, 0], np.uint8)  # tumor outline
FILL_ALPHA = 0.35


def display_channel(image: np.ndarray) -> np.ndarray:
    """The channel to show under an overlay: FLAIR (channel 1) of a 3-channel LGG slice, else
    the only channel. ``image``: ``(H, W, C)`` uint8; returns ``(H, W)`` uint8."""
    return image[..., 1] if image.shape[-1] == 3 else image[..., 0]


def outline(mask: np.ndarray) -> np.ndarray:
    """The pixels of a ``(H, W)`` bool mask that touch the background or the image border
    (4-neighbourhood): ``mask`` minus its binary erosion by a cross, as
    ``scipy.ndimage.binary_erosion(mask)`` with ``border_value=0`` (checked in the tests)."""
    padded = np.pad(mask, 1)
    interior = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Grey slice with the mask tinted red and outlined in yellow.

    Args:
        image: ``(H, W, C)`` uint8 slice.
        mask: ``(H, W)`` bool.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    grey = display_channel(image).astype(np.float32)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[mask] = (1 - FILL_ALPHA) * rgb[mask] + FILL_ALPHA * FILL_RGB
    rgb = rgb.clip(0, 255).astype(np.uint8)
    rgb[outline(mask)] = CONTOUR_RGB
    return rgb


# BraTS label colours (as in the challenge papers' figures): edema green, necrotic/non-enhancing
# core red, enhancing tumor yellow.
BRATS_COLOURS = {2: (40, 200, 40), 1: (230, 40, 40), "enhancing": (255, 230, 0)}
MONTAGE_COLUMNS = 4


def brats_montage(flair: np.ndarray, label: np.ndarray, enhancing_label: int = 4, tiles: int = 12) -> np.ndarray:
    """Axial slices of a case in a grid, the predicted regions tinted over FLAIR.

    Slices are spread evenly over the predicted whole tumor (over the brain if none), shown with
    anterior up (array axes X, Y transposed and flipped).

    Args:
        flair: ``(X, Y, Z)`` intensities (any scale).
        label: ``(X, Y, Z)`` label map (1 core, 2 edema, ``enhancing_label``).
        tiles: slices shown.

    Returns:
        ``(rows * Y, 4 * X, 3)`` uint8 RGB.
    """
    rows_with = np.flatnonzero(label.any(axis=(0, 1))) if label.any() else np.flatnonzero(flair.any(axis=(0, 1)))
    if rows_with.size == 0:
        rows_with = np.arange(flair.shape[2])
    chosen = np.linspace(rows_with[0], rows_with[-1], tiles).round().astype(int)
    top = float(np.percentile(flair[flair > 0], 99.5)) if (flair > 0).any() else 1.0
    images = []
    for z in chosen:
        grey = np.clip(flair[:, :, z] / top * 255, 0, 255)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        for value, colour in BRATS_COLOURS.items():
            where = label[:, :, z] == (enhancing_label if value == "enhancing" else value)
            rgb[where] = (1 - FILL_ALPHA - 0.25) * rgb[where] + (FILL_ALPHA + 0.25) * np.array(colour, np.float32)
        images.append(np.flipud(rgb.transpose(1, 0, 2)).astype(np.uint8))
    rows = -(-tiles // MONTAGE_COLUMNS)
    images += [np.zeros_like(images[0])] * (rows * MONTAGE_COLUMNS - tiles)
    return np.concatenate([np.concatenate(images[r * MONTAGE_COLUMNS:(r + 1) * MONTAGE_COLUMNS], axis=1) for r in range(rows)])
