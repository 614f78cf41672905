"""What the per-run and per-entry plot jobs read from a run directory, without pandas.

There is one plot_run job per run and one plot_entry job per replicated entry, each its own
process: pandas' import (about 0.25 CPU-s on 2 AVX2 cores) would be paid by each of them to read a
CSV of a few dozen lines. mnist3d.metrics reads the same files into frames for the jobs that
gather every run; these readers keep to the same contract (metrics.HISTORY_COLUMNS).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

# The history columns the figures draw; a file without one of them draws it as missing (NaN).
CURVE_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")


def read_metrics(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # an empty cell
        return math.nan


def read_history(path: str | Path) -> np.ndarray:
    """history.csv as a record array sorted by epoch: `history["val_loss"]` is a float array and
    `len(history)` the number of epochs. Every column of the file is kept, plus CURVE_COLUMNS;
    a run that failed before its first epoch may leave only the header, or an empty file."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    names = list(dict.fromkeys([*header, *CURVE_COLUMNS]))
    values = np.full((len(body), len(names)), np.nan)
    for index, row in enumerate(body):
        cells = row[: len(header)]
        values[index, : len(cells)] = [_number(cell) for cell in cells]
    history = np.rec.fromarrays(list(values.T) if body else [np.zeros(0)] * len(names), names=names)
    return history[np.argsort(history["epoch"], kind="stable")]
