"""One figure per sweep: test accuracy against each varied field, and a heatmap for two-field grids
(rule plot_sweep).

`spec` is the rule's params.sweep: {"name": str, "fields": [varied fields, sorted],
"entries": {entry: {field: value label}}}. Values are categories (labels as the sweep names them), so
a layer list or a learning rate on a log scale reads the same way.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mnist3d.config.names import ordered_labels
from mnist3d.plots.style import ACCURACY_COLOUR, INK, MUTED, figure_title, message_figure, new_figure, save, styled
from mnist3d.results.metrics import read_entry_table, read_table

# Marker colours by verdict, as the test accuracy chart's bars.
BEST, TIED, OTHER = ACCURACY_COLOUR, "#6fae8c", "#9a9a9a"
# The entry table's verdict of an entry none of whose runs finished (mnist3d.results.stats).
NO_FINISHED_RUN = "no finished run"
# A heatmap of more cells than this per side stops being readable at report width.
HEATMAP_MAX_SIDE = 8


def sweep_frame(entries_table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per entry of the sweep: its field labels, mean test accuracy, interval, replicates and verdict."""
    rows = entries_table.set_index("entry")
    records = []
    for entry, values in spec["entries"].items():
        row = rows.loc[entry] if entry in rows.index else None

        def value(column, default=math.nan):
            return row[column] if row is not None and column in row.index and not pd.isna(row[column]) else default

        # An entry a halving decision stopped has test numbers, but from fewer epochs: not drawn as finished.
        finished = value("verdict", "") != NO_FINISHED_RUN
        records.append(
            {
                "entry": entry,
                **{field: str(values[field]) for field in spec["fields"]},
                "mean": float(value("test_accuracy_mean")) if finished else math.nan,
                "low": float(value("test_accuracy_ci_low")),
                "high": float(value("test_accuracy_ci_high")),
                "replicates_ok": int(value("replicates_ok", 0)),
                "verdict": str(value("verdict", "")),
                "tied": str(value("tied_with_best", "")) == "True",
            }
        )
    return pd.DataFrame(records)


def _colour(row) -> str:
    return BEST if row["verdict"] == "best" else TIED if row["tied"] else OTHER


def _field_panel(axis, frame: pd.DataFrame, field: str, others: list[str], runs: pd.DataFrame | None) -> None:
    labels = ordered_labels(frame[field])
    finished = frame[np.isfinite(frame["mean"])]
    for index, label in enumerate(labels):
        group = finished[finished[field] == label]
        if others:
            group = group.sort_values(others, key=lambda column: column.map(ordered_labels(column).index))
        offsets = np.linspace(-0.28, 0.28, len(group)) if len(group) > 1 else np.zeros(len(group))
        for offset, (_, row) in zip(offsets, group.iterrows()):
            x = index + offset
            if runs is not None:
                values = runs.loc[runs["entry"] == row["entry"], "test_accuracy"].dropna().to_numpy(dtype=float)
                axis.scatter(np.full(values.size, x), values, s=7, color=MUTED, alpha=0.5, linewidth=0, zorder=2)
            if np.isfinite(row["low"]):
                axis.plot([x, x], [row["low"], row["high"]], color=_colour(row), linewidth=1.6, zorder=3)
            axis.scatter(
                [x],
                [row["mean"]],
                s=30 if row["verdict"] != "best" else 60,
                color=_colour(row),
                edgecolor="white",
                linewidth=0.6,
                zorder=4,
            )
        if len(group) > 1:
            axis.plot([index - 0.38, index + 0.38], [group["mean"].mean()] * 2, color=INK, linewidth=1.4, zorder=5)
    crowded = max(map(len, labels)) > 6 or len(labels) > 6  # long or many labels: slanted, to stay apart
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    axis.set_xlim(-0.6, len(labels) - 0.4)
    axis.set_xlabel(field)
    axis.set_ylabel("test accuracy")
    axis.grid(axis="x", visible=False)
    axis.set_title(f"by {field}")


def heatmap_cells(frame: pd.DataFrame, fields: list[str]) -> pd.DataFrame | None:
    """Mean test accuracy with the first field down and the second across, or None when the sweep is
    not a grid of the two (a combination twice) or is too large to read."""
    if len(fields) != 2 or frame.duplicated(fields).any():
        return None
    rows, columns = ordered_labels(frame[fields[0]]), ordered_labels(frame[fields[1]])
    if max(len(rows), len(columns)) > HEATMAP_MAX_SIDE:
        return None
    return frame.pivot(index=fields[0], columns=fields[1], values="mean").reindex(index=rows, columns=columns)


def _heatmap(axis, frame: pd.DataFrame, fields: list[str], cells: pd.DataFrame) -> None:
    values = cells.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    axis.imshow(np.ma.masked_invalid(values), cmap="Greens", vmin=low - 0.25 * (high - low + 1e-9), vmax=high)
    marks = {(row[fields[0]], row[fields[1]]): row for _, row in frame.iterrows()}
    for (i, label_row), (j, label_column) in ((a, b) for a in enumerate(cells.index) for b in enumerate(cells.columns)):
        row = marks.get((label_row, label_column))
        value = values[i, j]
        text = "n/a" if not np.isfinite(value) else f"{value:.3f}"
        if row is not None and row["verdict"] == "best":
            text += "\nbest"
        elif row is not None and row["tied"]:
            text += "\ntied"
        dark = np.isfinite(value) and value > low + 0.6 * (high - low)
        axis.text(
            j,
            i,
            text,
            ha="center",
            va="center",
            fontsize=8,
            color="white" if dark else INK,
            fontweight="bold" if row is not None and row["verdict"] == "best" else "normal",
        )
    axis.set_xticks(range(len(cells.columns)))
    axis.set_xticklabels(cells.columns, rotation=30 if max(map(len, cells.columns)) > 6 else 0)
    axis.set_yticks(range(len(cells.index)))
    axis.set_yticklabels(cells.index)
    axis.set_xlabel(fields[1])
    axis.set_ylabel(fields[0])
    axis.grid(False)
    for spine in axis.spines.values():
        spine.set_visible(False)
    axis.set_title("mean test accuracy")


@styled
def sweep_figure(entries_table: pd.DataFrame, spec: dict, runs_table: pd.DataFrame | None = None) -> Figure:
    """Test accuracy of a sweep's entries against each varied field: a dot per entry (mean, with its
    95 % interval; green best, light green tied with it, grey the rest), a black bar for the mean of
    the entries at that value, and with `runs_table` each replicate as a small grey dot. A two-field
    grid adds a heatmap of mean test accuracy."""
    name, fields = spec["name"], list(spec["fields"])
    frame = sweep_frame(entries_table, spec)
    if frame.empty or not np.isfinite(frame["mean"]).any():
        return message_figure(f"Sweep {name}", "No run of this sweep finished training.")
    cells = heatmap_cells(frame, fields)
    panels = len(fields) + (cells is not None)
    widest = max(len(ordered_labels(frame[field])) for field in fields) if fields else 1
    panel_width = float(np.clip(1.0 + 0.55 * widest, 3.6, 9.0))
    width = float(np.clip(panel_width * panels + 0.6, 8.0, 16.0))
    figure = new_figure(width, 4.2)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    for index, field in enumerate(fields):
        _field_panel(axes[index], frame, field, [other for other in fields if other != field], runs_table)
        if index:
            axes[index].sharey(axes[0])
    if cells is not None:
        _heatmap(axes[-1], frame, fields, cells)
    handles = [
        Line2D([], [], color=BEST, marker="o", markersize=7, linewidth=1.6, label="best entry, 95 % interval"),
        Line2D([], [], color=TIED, marker="o", markersize=5, linewidth=1.6, label="tied with the best"),
        Line2D([], [], color=OTHER, marker="o", markersize=5, linewidth=1.6, label="below the best / untested"),
    ]
    if len(fields) > 1:
        handles.append(Line2D([], [], color=INK, linewidth=1.4, label="mean of the entries at that value"))
    if runs_table is not None:
        handles.append(Line2D([], [], color=MUTED, marker="o", markersize=3, linestyle="", label="each replicate"))
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles) if width > 11 else 3, fontsize=8)
    finished = int(np.isfinite(frame["mean"]).sum())
    figure_title(figure, f"Sweep {name}: {finished} of {len(frame)} combinations finished, varying {', '.join(fields)}")
    return figure


def plot_sweep_files(entries_path, table_path, spec: dict, output) -> None:
    """A sweep's figure from results/metrics_by_entry.csv and results/metrics.csv."""
    save(sweep_figure(read_entry_table(entries_path), spec, read_table(table_path)), output)
