"""Mean test accuracy against cost, one dot per entry (rule plot_comparison): against training time
and against parameter count, the Pareto-optimal entries ringed and joined, so the reader sees which
tied entry is cheapest. The numbers are mnist3d.plots.frontier's, as the report's summary states them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from mnist3d.plots.frontier import COSTS, entry_costs
from mnist3d.plots.style import ACCURACY_COLOUR, INK, figure_title, label_size, message_figure, new_figure, styled

# Dots by verdict, as the sweep figures' markers.
BEST, TIED, OTHER = ACCURACY_COLOUR, "#6fae8c", "#9a9a9a"
# Names beside the dots: the Pareto-optimal entries only (up to this many), the others are in the tables.
NAMED = 8
AXIS_LABELS = {"seconds": "mean training time (s)", "parameters": "parameters"}


def short_name(entry: str, sweep: str) -> str:
    """A sweep's entry without its sweep's name ("dropout-0.25.learning_rate-0.001"): the values are
    what tells the sweep's entries apart."""
    return entry.removeprefix(f"{sweep}.") if sweep else entry


def _colour(row) -> str:
    return BEST if row["verdict"] == "best" else TIED if row["tied"] else OTHER


def _cost_panel(axis, frame: pd.DataFrame, cost: str, size: float) -> None:
    known = frame[np.isfinite(frame[cost]) & np.isfinite(frame["mean"])]
    # The best and its ties drawn last, so they stay on top of the rest.
    for _, row in known.sort_values("tied", kind="stable").iterrows():
        colour = _colour(row)
        if np.isfinite(row["low"]):
            axis.plot([row[cost]] * 2, [row["low"], row["high"]], color=colour, linewidth=1.4, alpha=0.8, zorder=2)
        axis.scatter([row[cost]], [row["mean"]], s=60 if row["verdict"] == "best" else 32, color=colour, zorder=3)
    optimal = known[known[f"pareto_{cost}"]].sort_values(cost)
    axis.step(optimal[cost], optimal["mean"], where="post", color=INK, linewidth=0.9, linestyle="--", zorder=1)
    axis.scatter(optimal[cost], optimal["mean"], s=120, facecolor="none", edgecolor=INK, linewidth=1.1, zorder=4)
    for _, row in optimal.head(NAMED).iterrows():
        axis.annotate(
            short_name(row["entry"], row["sweep"]),
            (row[cost], row["mean"]),
            xytext=(7, 4),
            textcoords="offset points",
            fontsize=size,
            fontweight="bold" if row["verdict"] == "best" else "normal",
            color=INK,
        )
    spread = known[cost].max() / max(known[cost].min(), 1e-9)
    if spread > 20:  # costs over orders of magnitude: a log axis keeps the cheap entries apart
        axis.set_xscale("log")
    axis.margins(x=0.18, y=0.12)
    axis.set_xlabel(AXIS_LABELS[cost])
    axis.set_ylabel("mean test accuracy")
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.set_title(f"against {COSTS[cost]}")


@styled
def cost_figure(table: pd.DataFrame, entries: pd.DataFrame) -> Figure:
    """Mean test accuracy (with its 95 % interval) of each entry against its mean training time and
    its parameter count; Pareto-optimal entries (no other entry both as cheap and as accurate) ringed
    and joined by a dashed step."""
    frame = entry_costs(table, entries)
    if frame.empty:
        return message_figure("Test accuracy against cost", "No run has both a test accuracy and a cost.")
    figure = new_figure(11.5, 4.6)
    axes = figure.subplots(1, len(COSTS), sharey=True)
    size = label_size(len(frame)) - 1
    for axis, cost in zip(axes, COSTS):
        if np.isfinite(frame[cost]).any():
            _cost_panel(axis, frame, cost, size)
        else:
            axis.set_axis_off()
            axis.text(0.5, 0.5, f"no {COSTS[cost]} recorded", ha="center", transform=axis.transAxes)
    handles = [
        Line2D([], [], color=BEST, marker="o", markersize=7, linewidth=1.4, label="best entry, 95 % interval"),
        Line2D([], [], color=TIED, marker="o", markersize=5, linewidth=1.4, label="tied with the best"),
        Line2D([], [], color=OTHER, marker="o", markersize=5, linewidth=1.4, label="below the best / untested"),
        Line2D(
            [], [], color=INK, marker="o", markerfacecolor="none", markersize=9, linestyle="--", label="Pareto-optimal"
        ),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5)
    figure_title(figure, "Test accuracy against cost: up and to the left is better")
    return figure
