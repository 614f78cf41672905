"""Charts that compare every run: ranked bars, time against accuracy, and test accuracy per entry
with its interval (rule plot_comparison; the curve overlays are in mnist3d.plots.overlay)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from mnist3d.plots.cost import cost_figure
from mnist3d.plots.overlay import RunCurves, curves_overlay
from mnist3d.plots.style import (
    ACCURACY_COLOUR,
    FAILED_COLOUR,
    INK,
    LOSS_COLOUR,
    MUTED,
    ROTATED_COLOUR,
    TIME_COLOUR,
    UNROTATED_COLOUR,
    entry_colours,
    figure_title,
    label_size,
    message_figure,
    new_figure,
    save_all,
    styled,
)
from mnist3d.results.metrics import best_run, ranked_entries, ranked_runs, read_entry_table, read_table
from mnist3d.results.runfiles import read_history, read_metrics

# Bars of entries by verdict: the best, those the tests cannot tell from it, and the rest.
BEST_BAR, TIED_BAR, OTHER_BAR = ACCURACY_COLOUR, "#8fb9a3", "#cfd6d2"


def _bar_height(count: int) -> float:
    return max(2.6, 0.27 * count + 1.5)


def _run_labels(axis, labels, best: str | None, failed: set[str], size: float) -> None:
    axis.set_yticks(range(len(labels)))
    axis.set_yticklabels(labels, fontsize=size)
    for tick, label in zip(axis.get_yticklabels(), labels):
        if label == best:
            tick.set_fontweight("bold")
            tick.set_color(INK)
        if label in failed:
            tick.set_color(FAILED_COLOUR)


def _annotate_bars(axis, positions, values, text, size):
    # Value labels stay inside the axes (its x range leaves room for them), so they are left out of
    # the layout: the layout engine would otherwise measure each of them, twice, on every save.
    span = axis.get_xlim()[1]
    for position, value in zip(positions, values):
        if np.isfinite(value):
            axis.text(
                value + span * 0.01, position, text(value), va="center", fontsize=size - 0.5, color=INK, in_layout=False
            )


@styled
def measure_bars(table: pd.DataFrame, best: str | None = None) -> Figure:
    """Training time, mean validation accuracy and mean validation loss after epoch 5, one row per run.

    Rows are ranked by test accuracy (best on top); failed runs are listed last, marked 'failed'.
    """
    ranked = ranked_runs(table)
    labels = ranked["run"].tolist()
    failed = set(ranked.loc[ranked["status"] != "ok", "run"])
    count = len(labels)
    size = label_size(count)
    figure = new_figure(12.0, _bar_height(count))
    positions = np.arange(count)
    panels = (
        ("training_seconds", "training time (s)", TIME_COLOUR, lambda v: f"{v:,.0f}"),
        ("mean_val_accuracy_after_5", "mean validation accuracy\nafter epoch 5", ACCURACY_COLOUR, lambda v: f"{v:.3f}"),
        ("mean_val_loss_after_5", "mean validation loss\nafter epoch 5", LOSS_COLOUR, lambda v: f"{v:.3f}"),
    )
    axes = figure.subplots(1, 3, sharey=True)
    for axis, (column, title, colour, text) in zip(axes, panels):
        values = ranked[column].to_numpy(dtype=float)
        colours = [colour if run != best else INK for run in labels]
        axis.barh(positions, np.nan_to_num(values), color=colours, height=0.7)
        finite = values[np.isfinite(values)]
        axis.set_xlim(0, (finite.max() if finite.size else 1) * 1.22)
        _annotate_bars(axis, positions, values, text, size)
        for position, run in zip(positions, labels):
            if run in failed:
                axis.text(
                    axis.get_xlim()[1] * 0.01,
                    position,
                    "failed",
                    va="center",
                    fontsize=size - 0.5,
                    color=FAILED_COLOUR,
                    style="italic",
                    in_layout=False,
                )
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", visible=False)
    axes[0].set_ylim(count - 0.4, -0.6)
    _run_labels(axes[0], labels, best, failed, size)
    figure_title(figure, "Runs ranked by test accuracy (best on top, in black)")
    return figure


@styled
def grouped_by_time(table: pd.DataFrame, best: str | None = None) -> Figure:
    """The notebook's grouped chart done legibly: per run, training time (top axis, seconds) beside mean
    validation accuracy and loss after epoch 5 (bottom axis), runs sorted from fastest to slowest."""
    ranked = table[table["status"] == "ok"].sort_values("training_seconds", kind="stable")
    if ranked.empty:
        return message_figure("Time, accuracy and loss", "No run finished training.")
    labels = ranked["run"].tolist()
    count = len(labels)
    size = label_size(count)
    figure = new_figure(10.5, max(3.2, (0.5 if count <= 12 else 0.34) * count + 1.8))
    axis = figure.add_subplot()
    time_axis = axis.twiny()
    positions = np.arange(count)
    height = 0.27
    seconds = ranked["training_seconds"].to_numpy(dtype=float)
    accuracy = ranked["mean_val_accuracy_after_5"].to_numpy(dtype=float)
    loss = ranked["mean_val_loss_after_5"].to_numpy(dtype=float)
    time_axis.barh(
        positions - height, np.nan_to_num(seconds), height, color=TIME_COLOUR, label="training time (s, top axis)"
    )
    axis.barh(
        positions,
        np.nan_to_num(accuracy),
        height,
        color=ACCURACY_COLOUR,
        label="mean validation accuracy after epoch 5",
    )
    axis.barh(
        positions + height, np.nan_to_num(loss), height, color=LOSS_COLOUR, label="mean validation loss after epoch 5"
    )
    unit_max = np.nanmax(np.concatenate([accuracy, loss, [1.0]]))
    axis.set_xlim(0, unit_max * 1.18)
    time_axis.set_xlim(0, np.nanmax(np.append(seconds, 1.0)) * 1.18)
    small = size - 1
    for position, value in zip(positions, seconds):
        if np.isfinite(value):
            # Out of the layout, as in _annotate_bars: the x range leaves room for them.
            time_axis.text(
                value, position - height, f" {value:,.0f} s", va="center", fontsize=small, color=INK, in_layout=False
            )
    for offset, values in ((0, accuracy), (height, loss)):
        for position, value in zip(positions, values):
            if np.isfinite(value):
                axis.text(
                    value, position + offset, f" {value:.3f}", va="center", fontsize=small, color=INK, in_layout=False
                )
    axis.set_xlabel("accuracy / loss (after epoch 5)")
    time_axis.set_xlabel("training time (s)", color=TIME_COLOUR)
    time_axis.tick_params(axis="x", colors=TIME_COLOUR)
    time_axis.grid(False)
    time_axis.spines["top"].set_visible(True)
    axis.grid(axis="y", visible=False)
    _run_labels(axis, labels, best, set(), size)
    axis.set_ylim(count - 0.4, -0.6)
    handles = [
        Patch(color=TIME_COLOUR, label="training time (top axis)"),
        Patch(color=ACCURACY_COLOUR, label="mean validation accuracy after epoch 5"),
        Patch(color=LOSS_COLOUR, label="mean validation loss after epoch 5"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8.5)
    figure_title(figure, "Runs from fastest to slowest to train")
    return figure


def _is_true(value) -> bool:
    # tied_with_best read back from CSV: a bool, or text where the column has blanks.
    return value is True or value is np.True_ or str(value) == "True"


@styled
def test_accuracy_by_entry(table: pd.DataFrame, entries: pd.DataFrame | None = None) -> Figure:
    """Test accuracy of each entry, best on top: the mean as a bar with its 95 % interval, a dot per
    replicate, the unrotated and rotated halves as triangles where the data marks them.

    With the entry table's verdicts the bars say which entries the tests cannot tell from the best.
    """
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    if ok.empty:
        return message_figure("Test accuracy per entry", "No run has a test accuracy.")
    order = [entry for entry in ranked_entries(table) if entry in set(ok["entry"])]
    stats = (
        ok.groupby("entry", sort=False)
        .agg(
            mean=("test_accuracy", "mean"),
            n=("test_accuracy", "count"),
            unrotated=("test_accuracy_unrotated", "mean"),
            rotated=("test_accuracy_rotated", "mean"),
        )
        .reindex(order)
    )
    known = entries is not None and "test_accuracy_ci_low" in entries
    if known:
        summary = entries.set_index("entry").reindex(order)
        stats["low"], stats["high"] = summary["test_accuracy_ci_low"], summary["test_accuracy_ci_high"]
        verdicts = summary["verdict"].fillna("").astype(str)
        tied = [_is_true(value) for value in summary["tied_with_best"]]
        colours = [BEST_BAR if v == "best" else TIED_BAR if t else OTHER_BAR for v, t in zip(verdicts, tied)]
    else:
        stats["low"] = stats["high"] = math.nan
        colours = [BEST_BAR] + [TIED_BAR] * (len(order) - 1)
    failed_entries = [entry for entry in table["entry"].unique() if entry not in stats.index]
    count = len(order)
    size = label_size(count)
    figure = new_figure(10.5, _bar_height(count))
    axis = figure.add_subplot()
    positions = np.arange(count)
    axis.barh(positions, stats["mean"], height=0.62, color=colours)
    has_interval = stats["low"].notna().any()
    if has_interval:
        spans = np.vstack([stats["mean"] - stats["low"], stats["high"] - stats["mean"]]).clip(min=0)
        axis.errorbar(stats["mean"], positions, xerr=spans, fmt="none", ecolor=INK, elinewidth=1.6, capsize=3, zorder=4)
    for position, entry in zip(positions, order):
        values = ok.loc[ok["entry"] == entry, "test_accuracy"].to_numpy(dtype=float)
        axis.scatter(
            values, np.full(values.size, position), s=14, color="white", edgecolor=INK, linewidth=0.7, zorder=5
        )
    has_split = stats["rotated"].notna().any()
    if has_split:
        axis.scatter(stats["unrotated"], positions, marker="^", s=36, color=UNROTATED_COLOUR, zorder=6)
        axis.scatter(stats["rotated"], positions, marker="v", s=36, color=ROTATED_COLOUR, zorder=6)
    columns = ["mean", "high"] + (["unrotated"] if has_split else [])
    top = np.nanmax(stats[columns].to_numpy(dtype=float))
    top = max(top, float(ok["test_accuracy"].max()))
    axis.set_xlim(0, min(1.0, top * 1.05) if top > 0 else 1)
    for position, (_, row) in zip(positions, stats.iterrows()):
        text = f"{row['mean']:.3f}"
        if np.isfinite(row["low"]):
            text += f"  [{row['low']:.3f}, {row['high']:.3f}]"
        text += f"  n={int(row['n'])}"
        axis.text(
            1.01,
            position,
            text,
            va="center",
            ha="left",
            fontsize=size - 0.5,
            color=INK,
            transform=axis.get_yaxis_transform(),
        )
    axis.set_yticks(positions)
    axis.set_yticklabels(order, fontsize=size)
    axis.get_yticklabels()[0].set_fontweight("bold")
    axis.set_ylim(count - 0.4, -0.6)
    axis.grid(axis="y", visible=False)
    axis.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.set_xlabel("test accuracy")
    handles = [Patch(color=BEST_BAR, label="best entry (mean)")]
    if known:
        handles += [
            Patch(color=TIED_BAR, label="tied with the best"),
            Patch(color=OTHER_BAR, label="below the best or untested"),
        ]
    if has_interval:
        handles.append(Line2D([], [], color=INK, linewidth=1.6, label="95 % interval"))
    handles.append(Line2D([], [], color=INK, marker="o", markerfacecolor="white", linestyle="", label="each replicate"))
    if has_split:
        handles += [
            Line2D([], [], color=UNROTATED_COLOUR, marker="^", linestyle="", label="unrotated test digits"),
            Line2D([], [], color=ROTATED_COLOUR, marker="v", linestyle="", label="rotated test digits"),
        ]
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8.5)
    title = "Test accuracy per entry (best on top)"
    if failed_entries:
        title += f"; failed entirely: {', '.join(failed_entries[:6])}" + (" ..." if len(failed_entries) > 6 else "")
    figure_title(figure, title)
    return figure


@styled
def time_vs_accuracy(table: pd.DataFrame, best: str | None = None) -> Figure:
    """Test accuracy against training time, one dot per run: the runs on the upper-left edge are the
    ones worth their time. The fastest-to-best frontier is drawn and its runs are named."""
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna() & table["training_seconds"].notna()]
    if ok.empty:
        return message_figure("Time against accuracy", "No run has both a training time and a test accuracy.")
    entries = list(dict.fromkeys(ok.sort_values("test_accuracy", ascending=False)["entry"]))
    colours = entry_colours(entries)
    figure = new_figure(9.5, 5.0)
    axis = figure.add_subplot()
    for entry in entries:
        rows = ok[ok["entry"] == entry]
        axis.scatter(
            rows["training_seconds"],
            rows["test_accuracy"],
            s=38,
            color=colours[entry],
            edgecolor="white",
            linewidth=0.6,
            zorder=3,
        )
    ordered = ok.sort_values(["training_seconds", "test_accuracy"], ascending=[True, False])
    frontier, highest = [], -np.inf
    for _, row in ordered.iterrows():
        if row["test_accuracy"] > highest:
            frontier.append(row)
            highest = row["test_accuracy"]
    frontier = pd.DataFrame(frontier)
    axis.step(
        frontier["training_seconds"],
        frontier["test_accuracy"],
        where="post",
        color=MUTED,
        linewidth=1,
        linestyle="--",
        zorder=2,
    )
    named = ok if len(ok) <= 8 else (frontier if len(frontier) <= 8 else frontier.tail(8))
    for _, row in named.iterrows():
        axis.annotate(
            row["run"],
            (row["training_seconds"], row["test_accuracy"]),
            xytext=(6, -4),
            textcoords="offset points",
            fontsize=8.5,
            fontweight="bold" if row["run"] == best else "normal",
            color=INK,
        )
    axis.set_xlabel("training time (s)")
    axis.set_ylabel("test accuracy")
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.margins(x=0.12, y=0.1)
    axis.set_title("Test accuracy against training time (dashed: best accuracy reached so far)")
    return figure


def comparison_figures(
    table: pd.DataFrame, runs: list[RunCurves], entries: pd.DataFrame | None = None
) -> dict[str, Figure]:
    """The comparison charts, by their names in the table of figures (mnist3d.report.figures)."""
    best = best_run(table)
    order = ranked_entries(table)
    return {
        "accuracy_curves": curves_overlay(runs, "accuracy", order),
        "loss_curves": curves_overlay(runs, "loss", order),
        "measure_bars": measure_bars(table, best),
        "grouped_by_time": grouped_by_time(table, best),
        "test_accuracy": test_accuracy_by_entry(table, entries),
        "time_vs_accuracy": time_vs_accuracy(table, best),
        # Per entry, so it needs the entry table; the report rule always passes it.
        **({"cost": cost_figure(table, entries)} if entries is not None else {}),
    }


def plot_comparison_files(table_path, metrics_paths, history_paths, outputs: dict, entries_path=None) -> None:
    """The comparison charts from results/metrics.csv, every run's history and, when given,
    results/metrics_by_entry.csv (for the intervals and verdicts of the test accuracy chart)."""
    table = read_table(table_path)
    entries = read_entry_table(entries_path) if entries_path else None
    runs = []
    for metrics_path, history_path in zip(metrics_paths, history_paths):
        record = read_metrics(metrics_path)
        accuracy = record.get("test_accuracy")
        runs.append(
            RunCurves(
                run=record["run"],
                entry=record["entry"],
                history=read_history(history_path),
                ok=record.get("status") == "ok",
                test_accuracy=math.nan if accuracy is None else float(accuracy),
            )
        )
    save_all(comparison_figures(table, runs, entries), outputs)
