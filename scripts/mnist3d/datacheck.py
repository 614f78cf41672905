"""Validates a 3D MNIST HDF5 file and summarises it; every problem is one message naming the file."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

GRID = (16, 16, 16)
VOXELS = 16**3
SPLITS = ("train", "test")
CLASSES = 10


class DataError(ValueError):
    """The data file cannot be used; the message says which file and what is wrong."""


def _grid_vectors(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    if x.ndim == 2 and x.shape[1] == VOXELS:
        return x
    if x.ndim == 4 and x.shape[1:] == GRID:
        return x.reshape(len(x), VOXELS)
    raise DataError(f"{path}: {name} has shape {x.shape}; expected N x 4096 or N x 16 x 16 x 16")


def _labels(path: Path, name: str, y: np.ndarray) -> np.ndarray:
    if y.ndim != 1:
        raise DataError(f"{path}: {name} has shape {y.shape}; expected one label per sample (N,)")
    if not np.issubdtype(y.dtype, np.number):
        raise DataError(f"{path}: {name} has dtype {y.dtype}; expected integer labels 0-9")
    if not np.all(np.isfinite(y)) or not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"{path}: {name} holds labels that are not whole numbers; expected integers 0-9")
    outside = (y < 0) | (y >= CLASSES)
    if outside.any():
        raise DataError(
            f"{path}: {name} holds {int(outside.sum())} labels outside 0-9 (e.g. {y[outside][0]!r})"
        )
    return y.astype(np.int64)


def read_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's (N, 4096) float32 grids and (N,) int64 labels, checked."""
    path = Path(path)
    x_name, y_name = f"X_{split}", f"y_{split}"
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle:
        missing = [name for name in (x_name, y_name) if name not in handle]
        if missing:
            raise DataError(
                f"{path}: missing dataset {', '.join(missing)}; found {', '.join(sorted(handle)) or 'nothing'}"
            )
        x, y = handle[x_name][()], handle[y_name][()]
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{path}: {x_name} has dtype {x.dtype}; expected numbers")
    x = _grid_vectors(path, x_name, x)
    y = _labels(path, y_name, y)
    if len(x) == 0:
        raise DataError(f"{path}: the {split} split is empty")
    if len(x) != len(y):
        raise DataError(f"{path}: {x_name} has {len(x)} samples but {y_name} has {len(y)} labels")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: {x_name} holds {int((~np.isfinite(x)).sum())} NaN or infinite values")
    return x.astype(np.float32), y


def read_flags(path: str | Path, split: str) -> np.ndarray | None:
    """Which rows are rotated copies (1) or originals (0), where the file records it."""
    flags = _per_row(path, split, f"{split}_rotated")
    if flags is None:
        return None
    if not np.isin(flags, (0, 1)).all():
        raise DataError(f"{path}: {split}_rotated holds values other than 0 (original) and 1 (rotated copy)")
    return flags.astype(np.int8)


def read_groups(path: str | Path, split: str) -> np.ndarray | None:
    """The source digit of each row, where the file records it (copies of one digit share it)."""
    return _per_row(path, split, f"{split}_digit")


def _per_row(path: str | Path, split: str, name: str) -> np.ndarray | None:
    """An optional dataset with one value per row of the split; None when the file has none."""
    with h5py.File(path, "r") as handle:
        if name not in handle:
            return None
        values, rows = handle[name][()], len(handle[f"y_{split}"])
    if values.shape != (rows,):
        raise DataError(f"{path}: {name} has shape {values.shape}; expected one value per row of y_{split} ({rows},)")
    return values


def source(path: str | Path) -> str:
    """"generated" for the embedded default built by mnist3d.recipe, else "real"."""
    with h5py.File(path, "r") as handle:
        return "generated" if _plain(handle.attrs.get("source")) == "generated" else "real"


def summarise(path: str | Path) -> dict:
    """Check every split of the file and describe it for the report."""
    path = Path(path)
    summary = {"file": str(path), "splits": {}}
    lowest, highest = np.inf, -np.inf
    for split in SPLITS:
        x, y = read_split(path, split)
        lowest, highest = min(lowest, float(x.min())), max(highest, float(x.max()))
        rotated = read_flags(path, split)
        groups = read_groups(path, split)
        summary["splits"][split] = {
            "samples": len(y),
            "class_counts": {str(c): int(n) for c, n in enumerate(np.bincount(y, minlength=CLASSES))},
            "nonzero_share": float(np.count_nonzero(x) / x.size),
            "rotated_samples": None if rotated is None else int(rotated.sum()),
            "source_digits": None if groups is None else int(len(np.unique(groups))),
        }
    with h5py.File(path, "r") as handle:
        attributes = {key: _plain(value) for key, value in handle.attrs.items()}
    summary["source"] = source(path)
    summary["value_range"] = [lowest, highest]
    summary["attributes"] = attributes
    return summary


def _plain(value):
    """HDF5 attributes as JSON-friendly Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
