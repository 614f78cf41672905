"""The confusion matrix of a test set and what is read from it: the one per-class accuracy.

NumPy only, so training, plotting and reporting can all import it without the start-up cost of
scikit-learn (several seconds on 2 cores); tests check it against sklearn's confusion_matrix and
recall_score.
"""

from __future__ import annotations

import numpy as np

from mnist3d.grid import CLASSES


def confusion_counts(y_true, y_pred, classes: int = CLASSES) -> np.ndarray:
    """counts[true, predicted] over the rows given."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return counts


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row as shares of its total (NaN for a class with no rows)."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)


def per_class_accuracy(y_true, y_pred, mask=None, classes: int = CLASSES) -> np.ndarray:
    """Share of each true class predicted correctly (recall), NaN for a class absent from the rows."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if mask is not None:
        y_true, y_pred = y_true[np.asarray(mask, dtype=bool)], y_pred[np.asarray(mask, dtype=bool)]
    return np.diagonal(row_normalised(confusion_counts(y_true, y_pred, classes))).copy()


def rotation_known(test_rotated) -> bool:
    """Whether the test set marks its rotated copies (1) apart from the upright digits (0)."""
    rotated = np.asarray(test_rotated)
    return rotated.size > 0 and bool(np.all(rotated >= 0)) and np.unique(rotated).size > 1


def accuracy_where(y_true, y_pred, mask) -> float | None:
    """Share of the rows under `mask` predicted correctly; None when the mask selects none."""
    mask = np.asarray(mask, dtype=bool)
    return float(np.mean(np.asarray(y_true)[mask] == np.asarray(y_pred)[mask])) if mask.any() else None


def evaluation_metrics(y_true, y_pred, test_rotated) -> dict:
    """The test measures metrics.json records: accuracy overall, on the unrotated and rotated halves
    where the data tells them apart (else None), and per class (None for a class absent)."""
    y_true, y_pred, test_rotated = np.asarray(y_true), np.asarray(y_pred), np.asarray(test_rotated)
    return {
        "test_accuracy": float(np.mean(y_true == y_pred)),
        "test_accuracy_unrotated": accuracy_where(y_true, y_pred, test_rotated == 0),
        "test_accuracy_rotated": accuracy_where(y_true, y_pred, test_rotated == 1),
        "per_class_accuracy": [None if np.isnan(value) else float(value)
                               for value in per_class_accuracy(y_true, y_pred)],
    }
