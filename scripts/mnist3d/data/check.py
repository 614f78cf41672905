"""Validates a 3D MNIST HDF5 file and summarises it.

A file that cannot be used is a DataError: one message naming the file and the problem. A file that
can be used but is probably not what the user meant (values outside [0, 1], missing digits, very
unequal class sizes) trains anyway and gets warnings, which the check log and the report show.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from mnist3d.atomic import write_json
from mnist3d.grid import CLASSES, GRID_SHAPE, VOXELS

SPLITS = ("train", "test")
# A split is called unbalanced when its smallest class has fewer than a third of its largest
# class's samples. The generated data is balanced exactly and MNIST's own classes differ by at most
# about 0.8x, so only data the user did not mean (a filtered or truncated file) gets near a third,
# where overall accuracy starts to hide a class the model barely learned.
UNBALANCED_RATIO = 1 / 3


class DataError(ValueError):
    """The data file cannot be used; the message says which file and what is wrong."""


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (N, 4096) float32 grids, flat index x + 16y + 256z
    y: np.ndarray  # (N,) int64 labels 0-9
    rotated: np.ndarray | None  # (N,) int8: 1 for a rotated copy, 0 for an original; None if unrecorded
    groups: np.ndarray | None  # (N,) source digit of each row (copies share it); None if unrecorded


@dataclass(frozen=True)
class DataFile:
    path: Path
    splits: dict[str, Split]
    attributes: dict

    @property
    def source(self) -> str:
        return _kind(self.attributes.get("source"))


def load(path: str | Path) -> DataFile:
    """Every split of the file, checked, read in one opening of the file."""
    path = Path(path)
    with open_h5(path) as handle:
        splits = {split: _read_split(path, handle, split) for split in SPLITS}
        attributes = {key: _plain(value) for key, value in handle.attrs.items()}
    return DataFile(path, splits, attributes)


def write_summary(path: str | Path, summary: dict) -> None:
    """results/data/summary.json, written whole or not at all."""
    write_json(path, summary)


def summarise(path: str | Path) -> dict:
    """Check every split of the file and describe it for the report, warnings included."""
    data = load(path)
    summary = {"file": str(data.path), "splits": {}}
    for name, split in data.splits.items():
        summary["splits"][name] = {
            "samples": len(split.y),
            "class_counts": {str(c): int(n) for c, n in enumerate(np.bincount(split.y, minlength=CLASSES))},
            "nonzero_share": float(np.count_nonzero(split.x) / split.x.size),
            "rotated_samples": None if split.rotated is None else int(split.rotated.sum()),
            "source_digits": None if split.groups is None else int(len(np.unique(split.groups))),
        }
    summary["source"] = data.source
    summary["value_range"] = [
        min(float(split.x.min()) for split in data.splits.values()),
        max(float(split.x.max()) for split in data.splits.values()),
    ]
    summary["attributes"] = data.attributes
    summary["warnings"] = warnings(data)
    return summary


def warnings(data: DataFile) -> list[str]:
    """What in a usable file is probably not what the user meant, one sentence each."""
    found = []
    for name, split in data.splits.items():
        lowest, highest = float(split.x.min()), float(split.x.max())
        if lowest < 0 or highest > 1:
            found.append(
                f"X_{name} values span {lowest:g} to {highest:g}, outside [0, 1]: the networks expect "
                f"voxel occupancy in [0, 1] (scale 0-255 data by 1/255)"
            )
        counts = np.bincount(split.y, minlength=CLASSES)
        present = np.flatnonzero(counts)
        if len(present) < CLASSES:
            missing = ", ".join(str(c) for c in np.flatnonzero(counts == 0))
            effect = ("the model cannot learn the missing digits" if name == "train"
                      else "their test accuracy cannot be measured")
            found.append(f"the {name} split has {len(present)} of the {CLASSES} classes (no {missing}): {effect}")
        if len(present) > 1:
            smallest = present[np.argmin(counts[present])]
            largest = present[np.argmax(counts[present])]
            if counts[smallest] < UNBALANCED_RATIO * counts[largest]:
                found.append(
                    f"the {name} split is unbalanced: class {smallest} has {_samples(counts[smallest])}, "
                    f"class {largest} has {counts[largest]} (the smallest under a third of the largest), "
                    f"so overall accuracy says little about the small classes"
                )
    return found


def _samples(count: int) -> str:
    return "1 sample" if count == 1 else f"{count} samples"


def read_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's (N, 4096) float32 grids and (N,) int64 labels, checked."""
    path = Path(path)
    with open_h5(path) as handle:
        return _grids_and_labels(path, handle, split)


def _kind(source_attribute) -> str:
    """"generated" for the embedded default built by mnist3d.data.recipe, else "real"."""
    return "generated" if source_attribute == "generated" else "real"


@contextlib.contextmanager
def open_h5(path: Path) -> Iterator[h5py.File]:
    """The HDF5 file at `path`, open for reading; DataError naming it when it is missing or unreadable."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    with handle:
        yield handle


def _read_split(path: Path, handle: h5py.File, split: str) -> Split:
    x, y = _grids_and_labels(path, handle, split)
    return Split(x, y, _flags(path, handle, split), _per_row(path, handle, split, f"{split}_digit"))


def _grids_and_labels(path: Path, handle: h5py.File, split: str) -> tuple[np.ndarray, np.ndarray]:
    x_name, y_name = f"X_{split}", f"y_{split}"
    missing = [name for name in (x_name, y_name) if name not in handle]
    if missing:
        raise DataError(f"{path}: missing dataset {', '.join(missing)}; found {', '.join(sorted(handle)) or 'nothing'}")
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


def _grid_vectors(path: Path, name: str, x: np.ndarray) -> np.ndarray:
    if x.ndim == 2 and x.shape[1] == VOXELS:
        return x
    if x.ndim == 4 and x.shape[1:] == GRID_SHAPE:
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
        raise DataError(f"{path}: {name} holds {int(outside.sum())} labels outside 0-9 (e.g. {y[outside][0]!r})")
    return y.astype(np.int64)


def _flags(path: Path, handle: h5py.File, split: str) -> np.ndarray | None:
    flags = _per_row(path, handle, split, f"{split}_rotated")
    if flags is None:
        return None
    if not np.isin(flags, (0, 1)).all():
        raise DataError(f"{path}: {split}_rotated holds values other than 0 (original) and 1 (rotated copy)")
    return flags.astype(np.int8)


def _per_row(path: Path, handle: h5py.File, split: str, name: str) -> np.ndarray | None:
    """An optional dataset with one value per row of the split; None when the file has none."""
    if name not in handle:
        return None
    values, rows = handle[name][()], len(handle[f"y_{split}"])
    if values.shape != (rows,):
        raise DataError(f"{path}: {name} has shape {values.shape}; expected one value per row of y_{split} ({rows},)")
    return values


def _plain(value):
    """HDF5 attributes as JSON-friendly Python values."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
