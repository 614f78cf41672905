"""Classify a user's own HDF5 file of 16^3 grids with a trained run's model.keras.

The file may hold the grids in the Kaggle layout (an `X_test`-like dataset of N x 4096 vectors, or
N x 16 x 16 x 16 grids). With labels beside them (`y_test` for `X_test`), the CSV also says which
predictions are right. The model is loaded with plain Keras: model.keras holds stock layers only.

Keras is imported inside the functions: this module is importable where only NumPy and h5py are.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import h5py
import numpy as np

from mnist3d.atomic import atomic_path
from mnist3d.data import check as datacheck
from mnist3d.grid import CLASSES, GRID_SHAPE, INPUT_SHAPE, VOXELS
from mnist3d.results.runfiles import read_metrics
from mnist3d.steplog import UserError

BATCH = 512


def _is_grids(dataset) -> bool:
    return isinstance(dataset, h5py.Dataset) and (
        (len(dataset.shape) == 2 and dataset.shape[1] == VOXELS) or dataset.shape[1:] == GRID_SHAPE)


def read_grids(path: str | Path, dataset: str | None = None, log=None) -> tuple[str, np.ndarray, np.ndarray | None]:
    """(dataset name, (N, 16, 16, 16, 1) float32 grids, labels or None) from the HDF5 file `path`.

    Without `dataset`: the file's only dataset of grids, or X_test when there are several. Labels
    that are not one digit 0-9 per grid are left out, with a line to `log` saying why.
    """
    path = Path(path)
    try:
        with datacheck.open_h5(path) as handle:
            dataset, x, label_name, labels = _grids_and_labels(path, handle, dataset)
    except datacheck.DataError as error:
        raise UserError(f"{error} (config classify_file)") from None
    if not len(x):
        raise UserError(f"{path}: {dataset} holds no grids")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: {dataset} holds NaN or infinite values")
    if labels is not None and (problem := label_problem(labels, len(x))):
        if log is not None:
            log(f"{path}: {label_name} left out: {problem}")
        labels = None
    return dataset, x, labels


def label_problem(labels: np.ndarray, count: int) -> str | None:
    """Why `labels` are not one digit 0-9 per grid, or None when they are."""
    if labels.shape != (count,):
        return f"shape {labels.shape} for {count} grids"
    if labels.dtype.kind not in "iuf":  # whole or real numbers: not text, booleans, complex or times
        return f"values of type {labels.dtype}, not numbers"
    with np.errstate(invalid="ignore"):
        if not (np.all(np.isfinite(labels)) and np.all(labels == np.round(labels))
                and np.all((labels >= 0) & (labels <= 9))):
            return "values other than the digits 0-9"
    return None


def _grids_and_labels(path: Path, handle: h5py.File, dataset: str | None):
    candidates = sorted(name for name in handle if _is_grids(handle[name]))
    if dataset is None:
        if len(candidates) == 1 or (len(candidates) > 1 and "X_test" in candidates):
            dataset = candidates[0] if len(candidates) == 1 else "X_test"
        else:
            found = ", ".join(f"{name} {handle[name].shape}" for name in sorted(handle)
                              if isinstance(handle[name], h5py.Dataset)) or "no dataset"
            raise UserError(f"{path}: {'several' if candidates else 'no'} datasets of grids (N x 4096 or "
                            f"N x 16 x 16 x 16); found {found}; name one with config classify_dataset")
    if dataset not in candidates:
        shape = handle[dataset].shape if dataset in handle else "missing"
        raise UserError(f"{path}: dataset {dataset} ({shape}) is not N x 4096 or N x 16 x 16 x 16 grids")
    x = handle[dataset][()].astype(np.float32).reshape(-1, *INPUT_SHAPE)
    label_name = "y" + dataset[1:] if dataset.startswith("X") else None
    present = label_name is not None and isinstance(handle.get(label_name), h5py.Dataset)
    return dataset, x, label_name, handle[label_name][()] if present else None


def predict(model_path: str | Path, grids: np.ndarray) -> np.ndarray:
    """(N, 10) class probabilities from the run's model, loaded with plain Keras.

    With oneDNN's kernels, as the training job evaluates (pipeline.configure_tensorflow), so the
    probabilities equal predictions.npz's to the bit: TensorFlow leaves them off on some CPUs (this
    AVX2-only AMD EPYC), and Eigen's kernels differ in the last bits of float32. Read when
    TensorFlow loads: call this before anything else in the process imports it.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    return np.asarray(model.predict(grids, batch_size=BATCH, verbose=0), dtype=np.float64)


def write_classification(path: str | Path, probabilities: np.ndarray, labels: np.ndarray | None) -> None:
    """One row per grid: its index, predicted class, that class's probability, every class's probability
    and, with labels, the label and whether the prediction is right."""
    header = ["index", "predicted", "confidence", *(f"probability_{c}" for c in range(CLASSES))]
    if labels is not None:
        header += ["label", "correct"]
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for index, row in enumerate(probabilities):
            predicted = int(row.argmax())
            values = [index, predicted, float(row[predicted]), *(float(p) for p in row)]
            if labels is not None:
                values += [int(labels[index]), predicted == int(labels[index])]
            writer.writerow(values)


def classify(model_path: str | Path, grids_path: str | Path, output: str | Path, dataset: str | None = None,
             log=print, metrics_path: str | Path | None = None) -> dict:
    if metrics_path is not None:
        run = read_metrics(metrics_path)
        if run.get("status") != "ok":
            raise UserError(f"{metrics_path}: run {run.get('run')} failed ({run.get('error')}); it has no "
                            "trained model to classify with (python3 scripts/retry_failed.py retries it)")
    name, grids, labels = read_grids(grids_path, dataset, log)
    log(f"{grids_path}: {len(grids)} grids from {name}" + (", with labels" if labels is not None else ""))
    if not Path(model_path).stat().st_size:
        raise UserError(f"{model_path}: empty: this run failed, it has no model")
    probabilities = predict(model_path, grids)
    write_classification(output, probabilities, labels)
    summary = {"grids": len(grids), "dataset": name}
    if labels is not None:
        summary["accuracy"] = float(np.mean(probabilities.argmax(axis=1) == labels))
        log(f"accuracy against {name}'s labels: {summary['accuracy']:.4f}")
    return summary
