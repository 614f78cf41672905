"""Turns a checked data file into training, validation and test arrays shaped for Conv3D."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from mnist3d.atomic import atomic_path
from mnist3d.data import check as datacheck
from mnist3d.grid import INPUT_SHAPE

UNKNOWN = -1


def to_grids(vectors: np.ndarray) -> np.ndarray:
    """(N, 4096) -> (N, 16, 16, 16, 1) float32; flat index x + 16y + 256z, so the axes are [z, y, x]."""
    return vectors.reshape(-1, *INPUT_SHAPE).astype(np.float32, copy=False)


def validation_split(
    labels: np.ndarray, fraction: float, seed: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded (train, validation) row indices.

    Where rows are copies of one source digit (`groups`), a digit's copies stay on one side, so the
    validation accuracy is not inflated by a rotated twin of a training grid.
    """
    rows = np.arange(len(labels))
    if groups is None:
        return train_test_split(rows, test_size=fraction, stratify=labels, random_state=seed)
    digits, first_row = np.unique(groups, return_index=True)
    train_digits, validation_digits = train_test_split(
        digits, test_size=fraction, stratify=labels[first_row], random_state=seed
    )
    in_validation = np.isin(groups, validation_digits)
    return rows[~in_validation], rows[in_validation]


def prepare(path: str | Path, validation_fraction: float, split_seed: int) -> dict[str, np.ndarray]:
    data = datacheck.load(path)
    train, test = data.splits["train"], data.splits["test"]
    train_rows, validation_rows = validation_split(train.y, validation_fraction, split_seed, train.groups)
    test_rotated = test.rotated if test.rotated is not None else np.full(len(test.y), UNKNOWN, dtype=np.int8)
    grids = to_grids(train.x)
    return {
        "x_train": grids[train_rows],
        "y_train": train.y[train_rows],
        "x_val": grids[validation_rows],
        "y_val": train.y[validation_rows],
        "x_test": to_grids(test.x),
        "y_test": test.y,
        "test_rotated": test_rotated,
        "source": np.array(data.source),
    }


def save(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)


def load(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}
