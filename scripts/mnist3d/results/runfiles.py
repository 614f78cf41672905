"""The files a run leaves in its run directory, each written and read in one place.

- history.csv: one row per epoch in HISTORY_COLUMNS (Keras' CSVLogger writes it during training);
- predictions.npz: y_true, y_pred, the class probabilities and which test grids are rotated;
- metrics.json: the run's identity, parameters, environment and test measures.

NumPy and the standard library only: one plot job per run reads these, and pandas' import (about
0.25 CPU-s on 2 AVX2 cores) would cost each of them more than the reading. mnist3d.results.metrics
turns the same records into frames for the jobs that gather every run.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from mnist3d.atomic import atomic_path, write_json
from mnist3d.grid import CLASSES

# What Keras logs each epoch; the history adds the epoch (from 1), its wall time and its learning rate.
# Runs with test numbers: finished, or stopped at a rung of a halving sweep ("stopped at epoch E ...").
MEASURED_STATUSES = ("ok", "stopped")
KERAS_MEASURES = ("loss", "accuracy", "val_loss", "val_accuracy")
HISTORY_COLUMNS = ("epoch", *KERAS_MEASURES, "seconds", "learning_rate")


def read_metrics(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write_metrics(path: str | Path, metrics: dict) -> None:
    write_json(path, metrics)


def write_history(path: str | Path, rows: list[dict]) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # an empty cell
        return math.nan


def read_history(path: str | Path) -> np.ndarray:
    """history.csv as a record array sorted by epoch: `history["val_loss"]` is a float array and
    `len(history)` the number of epochs. Every column of the file is kept, plus HISTORY_COLUMNS;
    a run that failed before its first epoch may leave only the header, or an empty file."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    names = list(dict.fromkeys([*header, *HISTORY_COLUMNS]))
    values = np.full((len(body), len(names)), np.nan)
    for index, row in enumerate(body):
        cells = row[: len(header)]
        values[index, : len(cells)] = [_number(cell) for cell in cells]
    history = np.rec.fromarrays(list(values.T) if body else [np.zeros(0)] * len(names), names=names)
    return history[np.argsort(history["epoch"], kind="stable")]


def write_predictions(path: str | Path, y_true, probabilities, test_rotated) -> None:
    with atomic_path(path) as temporary:
        np.savez(
            temporary,
            y_true=np.asarray(y_true, dtype=np.int64),
            y_pred=np.asarray(probabilities).argmax(axis=1).astype(np.int64),
            probabilities=np.asarray(probabilities, dtype=np.float32).reshape(-1, CLASSES),
            test_rotated=np.asarray(test_rotated, dtype=np.int8),
        )


def read_prediction_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a run's predictions.npz, by name (y_true, y_pred, probabilities, test_rotated)."""
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def read_predictions(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """y_true and y_pred of a run's predictions.npz (the probabilities stay on disk)."""
    with np.load(path) as saved:
        missing = [field for field in ("y_true", "y_pred") if field not in saved.files]
        if missing:
            raise ValueError(f"{path}: no field {', '.join(missing)}")
        y_true, y_pred = saved["y_true"], saved["y_pred"]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{path}: y_true has {y_true.shape[0]} grids but y_pred {y_pred.shape[0]}")
    return y_true, y_pred
