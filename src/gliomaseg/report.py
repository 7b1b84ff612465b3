"""Human-facing output: result tables on the terminal (rich)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table


def _fmt(value: float | str | None) -> str:
    if isinstance(value, str):
        return value
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def print_table(title: str, columns: list[str], rows: list[list], console: Console | None = None) -> None:
    """Print one table: a first column of row names (metrics), then ``columns``; numbers with
    four decimals, NaN as ``-``. Every evaluation summary comes through here
    (:meth:`gliomaseg.evaluation.Evaluation.table`)."""
    console = console or Console()
    table = Table(title=title)
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right")
    for name, *values in rows:
        table.add_row(str(name), *(_fmt(v) for v in values))
    console.print(table)
