"""Learning curves of every run on one axis, readable at 60 runs: the best few entries in colour,
the rest faint grey behind them (rule plot_comparison)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from mnist3d.plots.style import (
    FAINT,
    accuracy_text,
    entry_colours,
    epoch_axis,
    label_size,
    message_figure,
    new_figure,
    plot_curve,
    styled,
)

# Entries drawn in colour; more than this many distinct hues stop being told apart at a glance.
HIGHLIGHTED = 6


@dataclass
class RunCurves:
    """What the comparison charts need of one run."""

    run: str
    entry: str
    history: np.ndarray  # history.csv as mnist3d.results.runfiles.read_history reads it (or a frame of it)
    ok: bool = True
    test_accuracy: float = math.nan


def highlighted_entries(entries: list[str], count: int = HIGHLIGHTED) -> list[str]:
    """The entries drawn in colour: all of them when a few more would not be worth the grey, else the best `count`."""
    return list(entries) if len(entries) <= count + 2 else list(entries[:count])


@styled
def curves_overlay(runs: list[RunCurves], metric: str, ranked_entries: list[str]) -> Figure:
    """Every finished run's curve of `metric` ('accuracy' or 'loss').

    The best entries (by `ranked_entries`, the tables' ranking) are coloured, validation solid and
    training dashed, and named in the legend with their mean test accuracy; every other run is a faint
    grey validation curve behind them, so 60 runs show the field without hiding the leaders.
    """
    ok = [run for run in runs if run.ok and len(run.history)]
    if not ok:
        return message_figure(
            f"{metric}: no successful run", "No run finished training, so there is no curve to compare."
        )
    present = {run.entry for run in ok}
    entries = [entry for entry in ranked_entries if entry in present]
    entries += sorted(present - set(entries))
    shown = highlighted_entries(entries)
    colours = entry_colours(shown)
    faint = [run for run in ok if run.entry not in colours]
    figure = new_figure(11.0, 5.2)
    axis = figure.add_subplot()
    for run in faint:
        plot_curve(axis, run.history, f"val_{metric}", color=FAINT, linewidth=0.8, alpha=0.7)
    for entry in reversed(shown):  # the best drawn last, on top
        for run in (run for run in ok if run.entry == entry):
            plot_curve(axis, run.history, metric, color=colours[entry], linestyle="--", linewidth=1.2, alpha=0.55)
            plot_curve(axis, run.history, f"val_{metric}", color=colours[entry], linewidth=2.0, alpha=0.9)
    epoch_axis(axis)
    axis.set_ylabel(metric)
    if metric == "accuracy":
        axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        values = np.concatenate(
            [np.asarray(run.history[column], dtype=float) for run in ok for column in (metric, f"val_{metric}")]
        )
        values = values[np.isfinite(values)]
        if values.size:
            axis.set_ylim(0, float(np.percentile(values, 98)) * 1.08 or None)
    axis.set_title(f"{metric} of every run: validation solid, training dashed ({len(ok)} runs)")
    handles = []
    for entry in shown:
        accuracies = [run.test_accuracy for run in ok if run.entry == entry and np.isfinite(run.test_accuracy)]
        mean = float(np.mean(accuracies)) if accuracies else math.nan
        replicates = sum(run.entry == entry for run in ok)
        label = f"{entry}" + (f" ×{replicates}" if replicates > 1 else "") + f"  {accuracy_text(mean)}"
        handles.append(Line2D([], [], color=colours[entry], linewidth=2.2, label=label))
    if faint:
        others = len({run.entry for run in faint})
        handles.append(
            Line2D([], [], color=FAINT, linewidth=1.2, label=f"{len(faint)} other runs ({others} entries), validation")
        )
    size = label_size(len(handles))
    title = "best entries (×replicates), mean test accuracy" if faint else "entry (×replicates), mean test accuracy"
    figure.legend(handles=handles, title=title, title_fontsize=size, fontsize=size, loc="outside right upper")
    return figure
