"""Parallel coordinates of a sweep (rule plot_sweep): one line per entry across the fields it varies
to its mean test accuracy, coloured by verdict, the best and its ties drawn on top.

The report draws the same chart in the page, with names and values on hover, from `parallel_lines`;
this PNG is what a reader without scripts (and `snakemake --report`) sees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mnist3d.config.names import ordered_labels
from mnist3d.plots.style import INK, MUTED, figure_title, message_figure, new_figure, save, styled
from mnist3d.plots.sweep import BEST, OTHER, TIED, sweep_frame
from mnist3d.results.metrics import read_entry_table

# Layers from the back: the rest, then the entries tied with the best, then the best.
LAYER = {"other": 0, "tied": 1, "best": 2}
STROKE = {"other": (OTHER, 1.0, 0.6), "tied": (TIED, 1.8, 0.9), "best": (BEST, 3.0, 1.0)}


def parallel_lines(frame: pd.DataFrame, fields: list[str]) -> tuple[dict, list[dict]]:
    """The chart's axes and lines from `sweep_frame`: axes {field: its labels in order, "accuracy":
    (low, high)}; one line per finished entry, back to front, each {"entry", "values" (labels),
    "y" (0-1 on each axis, accuracy last), "mean", "layer" ("other", "tied" or "best")}."""
    labels = {field: ordered_labels(frame[field]) for field in fields}
    finished = frame[np.isfinite(frame["mean"])]
    low, high = (float(finished["mean"].min()), float(finished["mean"].max())) if len(finished) else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.01, high + 0.01
    lines = []
    for _, row in finished.iterrows():
        layer = "best" if row["verdict"] == "best" else "tied" if row["tied"] else "other"
        heights = [
            labels[field].index(row[field]) / (len(labels[field]) - 1) if len(labels[field]) > 1 else 0.5
            for field in fields
        ]
        lines.append(
            {
                "entry": row["entry"],
                "values": [row[field] for field in fields],
                "y": heights + [(row["mean"] - low) / (high - low)],
                "mean": float(row["mean"]),
                "layer": layer,
            }
        )
    lines.sort(key=lambda line: (LAYER[line["layer"]], line["mean"]))
    return {**labels, "accuracy": (low, high)}, lines


@styled
def parallel_figure(entries_table: pd.DataFrame, spec: dict) -> Figure:
    """A sweep's parallel coordinates: an axis per varied field (its values in order, bottom to top)
    and one for mean test accuracy; a line per finished entry, green the best, light green the
    entries tied with it, grey the rest."""
    fields = list(spec["fields"])
    frame = sweep_frame(entries_table, spec)
    axes_labels, lines = parallel_lines(frame, fields)
    if not lines:
        return message_figure(f"Sweep {spec['name']}", "No run of this sweep finished training.")
    figure = new_figure(float(np.clip(2.6 * (len(fields) + 1), 7.0, 14.0)), 4.4)
    axis = figure.add_subplot()
    positions = range(len(fields) + 1)
    for line in lines:
        colour, width, alpha = STROKE[line["layer"]]
        axis.plot(positions, line["y"], color=colour, linewidth=width, alpha=alpha, solid_capstyle="round")
    for position, field in enumerate(fields):
        axis.axvline(position, color=INK, linewidth=1.0, zorder=0)
        labels = axes_labels[field]
        for index, label in enumerate(labels):
            y = index / (len(labels) - 1) if len(labels) > 1 else 0.5
            axis.text(position - 0.03, y, label, ha="right", va="center", fontsize=8.5, color=INK)
    last = len(fields)
    axis.axvline(last, color=INK, linewidth=1.0, zorder=0)
    low, high = axes_labels["accuracy"]
    for y in np.linspace(0, 1, 5):
        axis.text(last + 0.03, y, f"{low + y * (high - low):.3f}", ha="left", va="center", fontsize=8.5, color=MUTED)
    axis.set_xticks(list(positions))
    axis.set_xticklabels(fields + ["mean test accuracy"])
    axis.set_xlim(-0.45, last + 0.4)
    axis.set_ylim(-0.06, 1.06)
    axis.set_yticks([])
    axis.grid(False)
    for spine in axis.spines.values():
        spine.set_visible(False)
    handles = [
        Line2D([], [], color=BEST, linewidth=3.0, label="best entry"),
        Line2D([], [], color=TIED, linewidth=1.8, label="tied with the best"),
        Line2D([], [], color=OTHER, linewidth=1.0, label="below the best / untested"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8.5)
    left_out = len(frame) - len(lines)
    note = f"; {left_out} without a finished run left out" if left_out else ""
    figure_title(figure, f"Sweep {spec['name']}: each combination across {', '.join(fields)} to its accuracy{note}")
    return figure


def plot_parallel_file(entries_path, spec: dict, output) -> None:
    """A sweep's parallel coordinates from results/metrics_by_entry.csv."""
    save(parallel_figure(read_entry_table(entries_path), spec), output)
