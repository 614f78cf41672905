"""The digits of a 3D figure as data for the report's rotatable views (rules plot_examples and
plot_misclassified write it beside their PNG, so the page turns exactly the digits the image shows).

A views file is JSON: {"title": str, "views": [{"group": str, "label": str, "cells": str}]}, where
`cells` is base64 of the grid's 4096 densities as bytes (0-255, scaled to the grid's maximum, cells
below the figure's threshold 0), flat index x + 16y + 256z as in the Kaggle file. Dense bytes, not a
point list: about 5.5 kB a digit, 30 digits well under 200 kB of the page, and the page's script
decodes them with atob alone.
"""

from __future__ import annotations

import base64

import numpy as np

from mnist3d.atomic import write_json
from mnist3d.grid import GRID_SHAPE, VOXELS

# The static figures leave cells below this share of a grid's maximum empty (mnist3d.plots.digits).
THRESHOLD = 0.12


def encode_cells(grid, threshold: float = THRESHOLD) -> str:
    """A (16, 16, 16[, 1]) grid indexed [z, y, x] as base64 of 4096 bytes (see the module's docstring)."""
    grid = np.asarray(grid, dtype=float).reshape(GRID_SHAPE)
    maximum = grid.max()
    scaled = grid / maximum if maximum > 0 else grid
    scaled = np.where(scaled > threshold, scaled, 0.0)
    # Filled cells are at least 1, so a faint cell kept by the threshold never rounds away.
    levels = np.where(scaled > 0, np.clip(np.rint(scaled * 255), 1, 255), 0).astype(np.uint8)
    return base64.b64encode(levels.reshape(VOXELS).tobytes()).decode("ascii")


def decode_cells(text: str) -> np.ndarray:
    """The [z, y, x] grid of `encode_cells` as bytes 0-255 (what the page's script reads)."""
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(GRID_SHAPE)


def view(grid, group: str, label: str) -> dict:
    return {"group": group, "label": label, "cells": encode_cells(grid)}


def write_views(path, title: str, views: list[dict]) -> None:
    """A views file (written whole or not at all); `views` as `view` makes them, possibly none."""
    write_json(path, {"title": title, "views": views})
