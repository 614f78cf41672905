"""What a run's blocks do to the 16^3 grid: its edge after each pooling, and whether the layer lists
fit together. The config checks every run of a models file with it before any job starts, and the
model is built from the same checks; plain Python, so parsing stays free of TensorFlow.

The network levers (mnist3d.config.levers) add no constraint of their own: every `pooling` shrinks the
edge to ceil(edge / pool) ('same' padding; a strided convolution as the poolings), 'same' padding keeps
a residual block's sum in shape, and either head reads any grid, 1 voxel included."""

from __future__ import annotations

import math
from collections import Counter

from mnist3d.grid import EDGE

LAYER_LISTS = ("filters", "kernel_sizes", "pool_sizes")


class LayerError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def spatial_sizes(pool_sizes: list[int], input_edge: int = EDGE) -> list[int]:
    """Grid edge after each pooling block ('same' padding: ceil); raises when a block would pool a
    grid already shrunk to 1 voxel (a pool of 1 there is allowed: it changes nothing)."""
    sizes = []
    edge = input_edge
    for index, pool in enumerate(pool_sizes):
        if edge == 1 and pool > 1:
            raise LayerError(
                "pool_sizes",
                f"pool_sizes {pool_sizes} leave nothing to pool at block {index + 1}: the {input_edge}^3 grid "
                f"is already 1 voxel (product of the pools before it {math.prod(pool_sizes[:index])} >= {input_edge})"
            )
        edge = math.ceil(edge / pool)
        sizes.append(edge)
    return sizes


def check_layers(params: dict) -> None:
    """LayerError naming the field when the run's layer lists cannot make a network."""
    lengths = {name: len(params[name]) for name in LAYER_LISTS}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        counts = Counter(lengths.values())
        odd_one = min(lengths, key=lambda name: counts[lengths[name]])  # the list whose length is rarest
        raise LayerError(odd_one, f"filters, kernel_sizes and pool_sizes need one value per block: {described}")
    spatial_sizes(params["pool_sizes"])
