"""Human-facing output: mask overlays and result tables."""

from __future__ import annotations

import math

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import ndimage

FILL_RGB = np.array([255, 40, 40], np.float32)  # tumor tint
CONTOUR_RGB = np.array([255, 255, 0], np.uint8)  # tumor outline
FILL_ALPHA = 0.35


def display_channel(image: np.ndarray) -> np.ndarray:
    """The channel to show under an overlay: FLAIR (channel 1) of a 3-channel LGG slice, else
    the only channel. ``image``: ``(H, W, C)`` uint8; returns ``(H, W)`` uint8."""
    return image[..., 1] if image.shape[-1] == 3 else image[..., 0]


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
    rgb[mask & ~ndimage.binary_erosion(mask)] = CONTOUR_RGB
    return rgb


def _fmt(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def print_summary(summary: dict, console: Console | None = None) -> None:
    """Print the per-patient, per-slice and global metrics of an evaluation summary."""
    console = console or Console()
    table = Table(title=f"{summary['n_patients']} patients, {summary['n_slices']} slices")
    table.add_column("metric")
    for column in ("per-patient mean", "per-patient median", "per-slice mean", "global"):
        table.add_column(column, justify="right")
    for metric, stats in summary["per_patient"].items():
        table.add_row(metric, _fmt(stats["mean"]), _fmt(stats["median"]),
                      _fmt(summary["per_slice"][metric]["mean"]), _fmt(summary["global"].get(metric)))
    console.print(table)
