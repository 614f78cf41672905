"""How the report writes numbers, names and images: the template shows strings only, so every value
is rounded the same way everywhere."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import pandas as pd


def data_uri(path: str | Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


def missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def fmt_accuracy(value) -> str:
    return "" if missing(value) else f"{float(value):.3f}"


def fmt_interval(low, high) -> str:
    """'0.781-0.842', or '' when either end is unknown."""
    return "" if missing(low) or missing(high) else f"{float(low):.3f}-{float(high):.3f}"


def fmt_seconds(value) -> str:
    if missing(value):
        return ""
    seconds = float(value)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_count(value) -> str:
    return "" if missing(value) else f"{int(value):,}"


def fmt_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(item) for item in value)
    return "" if missing(value) else str(value)


def sort_key(value) -> str:
    """The raw number behind a formatted cell, for the table's sort script ('' sorts last)."""
    return "" if missing(value) else repr(float(value))


def anchor(prefix: str, name: str, index: int) -> str:
    """An HTML id from any name: only safe characters, unique through the index."""
    return f"{prefix}-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40]
