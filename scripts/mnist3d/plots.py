"""Figures of training runs: per run, per replicated entry, and all runs compared.

Built on matplotlib's object API (no pyplot state), so many figures can be drawn in one process
and nothing depends on a display. Every figure is sized from how many runs it shows, so the same
code stays readable with 3 runs and with 40.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter
from PIL import Image

from mnist3d.atomic import atomic_path
from mnist3d.metrics import best_run, read_history, read_metrics, read_table

CLASSES = 10
DPI = 110
INK = "#222222"
MUTED = "#6b6b6b"
GRID = "#e4e4e4"
# One hue per quantity, shared by every chart: a colour means the same thing everywhere.
TIME_COLOUR = "#d98c2b"
ACCURACY_COLOUR = "#2b8a5a"
LOSS_COLOUR = "#c0473a"
UNROTATED_COLOUR = "#3b6fb6"
ROTATED_COLOUR = "#e0883a"
FAILED_COLOUR = "#b03030"

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelcolor": INK,
    "axes.edgecolor": "#9a9a9a",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": GRID,
    "grid.linewidth": 0.8,
    "axes.axisbelow": True,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
    "figure.facecolor": "white",
}


@dataclass
class RunCurves:
    """What the comparison charts need of one run."""

    run: str
    entry: str
    history: pd.DataFrame
    ok: bool = True
    test_accuracy: float = math.nan


def new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def save(figure: Figure, path: str | Path) -> None:
    """PNG at `path`, written beside it first so a half-written image never looks finished.

    Reduced to a 256-colour palette: charts lose nothing visible and the PNG shrinks about 2.5x,
    which keeps a report of 40 runs, with every image embedded, small enough to e-mail.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor=figure.get_facecolor())
    image = (
        Image.open(buffer)
        .convert("RGB")
        .quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    )
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG", optimize=True)


def styled(function):
    """Run a drawing function with the shared style, so every axis it creates picks it up."""

    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


# ----------------------------------------------------------------------------------------------
# Small helpers


def entry_colours(entries: list[str]) -> dict[str, tuple]:
    """A colour per entry: distinct hues for up to 10, else a perceptual ramp in the given order."""
    unique = list(dict.fromkeys(entries))
    if len(unique) <= 10:
        palette = colormaps["tab10"]
        return {entry: palette(index) for index, entry in enumerate(unique)}
    ramp = colormaps["viridis"]
    return {entry: ramp(0.92 * index / (len(unique) - 1)) for index, entry in enumerate(unique)}


def legend_columns(count: int, per_column: int = 22) -> int:
    return max(1, math.ceil(count / per_column))


def label_size(count: int) -> float:
    """Tick-label font size for a list of `count` names: smaller, but never unreadable, as it grows."""
    return float(np.clip(10.5 - count / 8, 7.0, 9.5))


def figure_title(figure: Figure, text: str) -> None:
    """The house style of a figure's title: bold, left-aligned."""
    figure.suptitle(text, x=0.01, ha="left", fontsize=12, fontweight="bold")


def measure_axis(axis, name: str, title: str) -> None:
    """Title, label and scale of an accuracy (as percent) or loss (from 0) axis over epochs."""
    axis.set_title(title)
    axis.set_ylabel(name)
    epoch_axis(axis)
    if name == "accuracy":
        axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        axis.set_ylim(bottom=0)


def epoch_axis(axis) -> None:
    """Whole epochs on the x axis; a run of a few epochs gets one tick each and some room."""
    axis.set_xlabel("epoch")
    low, high = axis.dataLim.intervalx
    if np.isfinite(low) and high - low < 4:
        axis.set_xlim(low - 0.5, high + 0.5)
        axis.set_xticks(range(int(round(low)), int(round(high)) + 1))
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))


def wrap(text: str, width: int, max_lines: int) -> str:
    lines = []
    for paragraph in str(text).splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width) or [""])
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + ["..."]
    return "\n".join(lines)


def accuracy_text(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


# ----------------------------------------------------------------------------------------------
# Placeholders


@styled
def failed_figure(title: str, error: str, width: float = 8.0, height: float = 2.4) -> Figure:
    """A figure that says plainly that a run failed, and why, in place of the chart it would have had."""
    figure = new_figure(width, height)
    figure.set_facecolor("#fbeeee")
    axis = figure.add_subplot()
    axis.set_axis_off()
    axis.text(0.0, 0.95, title, fontsize=13, fontweight="bold", color=FAILED_COLOUR, va="top", transform=axis.transAxes)
    axis.text(
        0.0,
        0.72,
        wrap(error or "no error message was recorded", width=int(width * 11), max_lines=8),
        fontsize=9,
        family="DejaVu Sans Mono",
        color=INK,
        va="top",
        transform=axis.transAxes,
    )
    return figure


@styled
def message_figure(title: str, message: str, width: float = 8.0, height: float = 2.4) -> Figure:
    """A figure for a chart that has nothing to show (no successful run yet, no misclassified digit)."""
    figure = new_figure(width, height)
    axis = figure.add_subplot()
    axis.set_axis_off()
    axis.text(0.0, 0.9, title, fontsize=12, fontweight="bold", color=INK, va="top", transform=axis.transAxes)
    axis.text(
        0.0, 0.62, wrap(message, int(width * 12), 6), fontsize=10, color=MUTED, va="top", transform=axis.transAxes
    )
    return figure


# ----------------------------------------------------------------------------------------------
# One run


def _curve(axis, history, column, **style):
    epochs = history["epoch"].to_numpy()
    marker = "o" if len(epochs) <= 3 else None
    axis.plot(epochs, history[column].to_numpy(dtype=float), marker=marker, markersize=4, **style)


@styled
def run_curves(history: pd.DataFrame, run: str, test_accuracy=None, test_loss=None, best_epoch=None) -> Figure:
    """Accuracy (left) and loss (right) per epoch: training dashed, validation solid.

    The test-set result is a dotted line, and the epoch whose weights were kept (early stopping)
    a grey vertical line, so the reader sees where the reported model comes from.
    """
    figure = new_figure(10.5, 3.7)
    figure_title(figure, f"{run}: learning curves")
    panels = (
        ("accuracy", "accuracy", "val_accuracy", test_accuracy, ACCURACY_COLOUR),
        ("loss", "loss", "val_loss", test_loss, LOSS_COLOUR),
    )
    for index, (name, train, validation, test, colour) in enumerate(panels):
        axis = figure.add_subplot(1, 2, index + 1)
        _curve(axis, history, train, color=colour, linestyle="--", linewidth=1.6, alpha=0.75, label="training")
        _curve(axis, history, validation, color=colour, linewidth=2.2, label="validation")
        if test is not None and np.isfinite(test):
            axis.axhline(test, color=INK, linestyle=":", linewidth=1.2, label=f"test {test:.3f}")
        if best_epoch is not None and np.isfinite(best_epoch) and len(history) and best_epoch < history["epoch"].max():
            axis.axvline(best_epoch, color=MUTED, linewidth=1, alpha=0.7, label=f"kept epoch {int(best_epoch)}")
        measure_axis(axis, name, title=name)
        axis.legend(loc="lower right" if name == "accuracy" else "upper right", fontsize=8.5)
    return figure


def confusion_counts(y_true, y_pred, classes: int = CLASSES) -> np.ndarray:
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return counts


def row_normalised(counts: np.ndarray) -> np.ndarray:
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)


def _matrix(axis, values, labels, title, colour_max):
    image = axis.imshow(values, cmap="Blues", vmin=0, vmax=colour_max)
    for (row, column), value in np.ndenumerate(labels):
        shade = values[row, column]
        dark = np.isfinite(shade) and shade > 0.55 * colour_max
        axis.text(column, row, value, ha="center", va="center", fontsize=7.5, color="white" if dark else INK)
    axis.set_title(title)
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    axis.set_xticks(range(values.shape[1]))
    axis.set_yticks(range(values.shape[0]))
    axis.grid(False)
    for spine in axis.spines.values():
        spine.set_visible(False)
    return image


@styled
def confusion_figure(y_true, y_pred, run: str) -> Figure:
    """The test-set confusion matrix as counts (left) and as shares of each true digit (right)."""
    counts = confusion_counts(y_true, y_pred)
    shares = row_normalised(counts)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    figure = new_figure(11.0, 5.0)
    figure_title(figure, f"{run}: confusion matrix on the test set ({counts.sum()} digits, accuracy {accuracy:.3f})")
    left = figure.add_subplot(1, 2, 1)
    _matrix(left, counts, counts.astype(str), "counts", max(counts.max(), 1))
    right = figure.add_subplot(1, 2, 2)
    share_labels = np.where(np.isfinite(shares), np.char.mod("%.2f", np.nan_to_num(shares)), "")
    share_labels = np.where(shares == 0, "0", share_labels)
    image = _matrix(right, shares, share_labels, "share of each true digit (rows sum to 1)", 1.0)
    figure.colorbar(image, ax=right, shrink=0.8, format=PercentFormatter(1.0, decimals=0))
    return figure


def per_class_accuracy(y_true, y_pred, mask=None, classes: int = CLASSES) -> np.ndarray:
    """Share of each true class predicted correctly (recall), NaN for a class absent from the rows."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if mask is not None:
        y_true, y_pred = y_true[mask], y_pred[mask]
    correct = np.bincount(y_true[y_true == y_pred], minlength=classes).astype(float)
    total = np.bincount(y_true, minlength=classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


def rotation_known(test_rotated) -> bool:
    rotated = np.asarray(test_rotated)
    return rotated.size > 0 and bool(np.all(rotated >= 0)) and np.unique(rotated).size > 1


@styled
def per_class_figure(y_true, y_pred, test_rotated, run: str) -> Figure:
    """Accuracy per true digit; split into unrotated and rotated test digits when the data says which."""
    overall = per_class_accuracy(y_true, y_pred)
    total = float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else math.nan
    figure = new_figure(8.5, 3.8)
    axis = figure.add_subplot()
    digits = np.arange(CLASSES)
    if rotation_known(test_rotated):
        rotated = np.asarray(test_rotated) == 1
        width = 0.38
        for offset, mask, colour, name in (
            (-width / 2, ~rotated, UNROTATED_COLOUR, "unrotated"),
            (width / 2, rotated, ROTATED_COLOUR, "rotated"),
        ):
            values = per_class_accuracy(y_true, y_pred, mask)
            share = float(np.mean(np.asarray(y_true)[mask] == np.asarray(y_pred)[mask]))
            axis.bar(digits + offset, values, width, color=colour, label=f"{name} test digits ({share:.3f})")
        axis.scatter(digits, overall, marker="_", s=260, linewidths=2.2, color=INK, zorder=3, label="all test digits")
    else:
        axis.bar(digits, overall, 0.65, color=ACCURACY_COLOUR, label="all test digits")
        for digit, value in zip(digits, overall):
            if np.isfinite(value):
                axis.text(digit, value + 0.015, f"{value:.2f}", ha="center", va="bottom", fontsize=8, color=INK)
    axis.axhline(total, color=INK, linestyle=":", linewidth=1.1, label=f"test accuracy {total:.3f}")
    axis.set_xticks(digits)
    axis.set_xlabel("true digit")
    axis.set_ylabel("share predicted correctly")
    axis.set_ylim(0, 1.08)
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.set_title(f"{run}: accuracy per digit on the test set")
    handles, labels = axis.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda index: ("test digits (" not in labels[index], index))
    axis.legend(
        [handles[index] for index in order],
        [labels[index] for index in order],
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=8.5,
    )
    return figure


def run_figures(metrics: dict, history: pd.DataFrame, predictions) -> dict[str, Figure]:
    """The per-run figures by name ('curves', 'confusion', 'per_class'); placeholders for a failed run."""
    run = metrics["run"]
    if metrics.get("status") != "ok":
        error = metrics.get("error") or ""
        return {
            name: failed_figure(f"{run} failed: no {what}", error)
            for name, what in (
                ("curves", "learning curves"),
                ("confusion", "confusion matrix"),
                ("per_class", "per-digit accuracy"),
            )
        }
    figures = {}
    if len(history):
        figures["curves"] = run_curves(
            history,
            run,
            test_accuracy=metrics.get("test_accuracy"),
            test_loss=metrics.get("test_loss"),
            best_epoch=metrics.get("best_epoch"),
        )
    else:
        figures["curves"] = message_figure(f"{run}: no learning curves", "The run recorded no epochs.")
    y_true, y_pred = predictions["y_true"], predictions["y_pred"]
    if len(y_true):
        figures["confusion"] = confusion_figure(y_true, y_pred, run)
        figures["per_class"] = per_class_figure(y_true, y_pred, predictions["test_rotated"], run)
    else:
        for name in ("confusion", "per_class"):
            figures[name] = message_figure(f"{run}: no test predictions", "The run saved no predictions.")
    return figures


# ----------------------------------------------------------------------------------------------
# One replicated entry


def replicate_band(histories: list[pd.DataFrame], column: str) -> pd.DataFrame:
    """Per epoch: mean, min, max and count over the replicates that reached that epoch."""
    stacked = pd.concat(
        [history[["epoch", column]].assign(replicate=index) for index, history in enumerate(histories)],
        ignore_index=True,
    )
    grouped = stacked.groupby("epoch")[column]
    return pd.DataFrame(
        {"mean": grouped.mean(), "min": grouped.min(), "max": grouped.max(), "count": grouped.count()}
    ).reset_index()


@styled
def entry_figure(entry: str, histories: list[pd.DataFrame], test_accuracies: list[float], failed: int = 0) -> Figure:
    """Mean curve across the replicates of one entry with a min-max band, accuracy and loss."""
    histories = [history for history in histories if len(history)]
    if not histories:
        return failed_figure(f"{entry}: every replicate failed", "No replicate recorded an epoch.")
    tests = np.asarray([value for value in test_accuracies if value is not None and np.isfinite(value)])
    spread = f"test accuracy {tests.mean():.3f}" if tests.size else "no test accuracy"
    if tests.size > 1:
        spread += f" ± {tests.std(ddof=1):.3f} (std)"
    note = f", {failed} failed" if failed else ""
    figure = new_figure(10.5, 3.9)
    figure_title(figure, f"{entry}: {len(histories)} replicates{note}, {spread}")
    for index, (name, train, validation, colour) in enumerate(
        (("accuracy", "accuracy", "val_accuracy", ACCURACY_COLOUR), ("loss", "loss", "val_loss", LOSS_COLOUR))
    ):
        axis = figure.add_subplot(1, 2, index + 1)
        for column, dashed, label in ((train, True, "training"), (validation, False, "validation")):
            band = replicate_band(histories, column)
            axis.fill_between(
                band["epoch"], band["min"], band["max"], color=colour, alpha=0.13 if dashed else 0.25, linewidth=0
            )
            if len(band) <= 3:  # too few epochs for a visible band: show the range as error bars
                axis.errorbar(
                    band["epoch"],
                    band["mean"],
                    yerr=[band["mean"] - band["min"], band["max"] - band["mean"]],
                    fmt="none",
                    ecolor=colour,
                    alpha=0.6 if dashed else 1.0,
                    capsize=5,
                )
            axis.plot(
                band["epoch"],
                band["mean"],
                color=colour,
                linestyle="--" if dashed else "-",
                linewidth=1.6 if dashed else 2.2,
                alpha=0.75 if dashed else 1.0,
                marker="o" if len(band) <= 3 else None,
                label=f"{label} mean",
            )
        axis.legend(loc="lower right" if name == "accuracy" else "upper right", fontsize=8.5)
        measure_axis(axis, name, title=f"{name}: mean over replicates, shaded min-max")
    return figure


# ----------------------------------------------------------------------------------------------
# All runs compared


def _ranked(table: pd.DataFrame, by: str = "test_accuracy", ascending: bool = False) -> pd.DataFrame:
    """Successful runs ranked by `by`, failed ones after them in table order."""
    ok = table[table["status"] == "ok"].sort_values(by, ascending=ascending, na_position="last", kind="stable")
    return pd.concat([ok, table[table["status"] != "ok"]])


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


@styled
def curves_overlay(runs: list[RunCurves], metric: str) -> Figure:
    """Every successful run's curve of `metric` ('accuracy' or 'loss'): validation solid, training dashed.

    Replicates of an entry share a colour; the legend, outside the plot, lists entries by their best
    test accuracy so the strongest are found first.
    """
    ok = [run for run in runs if run.ok and len(run.history)]
    if not ok:
        return message_figure(
            f"{metric}: no successful run", "No run finished training, so there is no curve to compare."
        )
    order = sorted(ok, key=lambda run: -np.nan_to_num(run.test_accuracy, nan=-1))
    entries = list(dict.fromkeys(run.entry for run in order))
    colours = entry_colours(entries)
    many = len(ok) > 12
    figure = new_figure(11.0 if len(entries) <= 22 else 13.0, 5.2 if len(entries) <= 30 else 6.5)
    axis = figure.add_subplot()
    for run in reversed(order):  # the best drawn last, on top
        colour = colours[run.entry]
        _curve(
            axis,
            run.history,
            metric,
            color=colour,
            linestyle="--",
            linewidth=0.9 if many else 1.3,
            alpha=0.35 if many else 0.6,
        )
        _curve(axis, run.history, f"val_{metric}", color=colour, linewidth=1.3 if many else 2.0, alpha=0.85)
    epoch_axis(axis)
    axis.set_ylabel(metric)
    if metric == "accuracy":
        axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    else:
        values = np.concatenate([run.history[[metric, f"val_{metric}"]].to_numpy(dtype=float).ravel() for run in ok])
        values = values[np.isfinite(values)]
        if values.size:
            axis.set_ylim(0, float(np.percentile(values, 98)) * 1.08 or None)
    axis.set_title(f"{metric} of every run: validation solid, training dashed ({len(ok)} runs)")
    best_per_entry = {}
    for run in order:
        best_per_entry.setdefault(run.entry, run.test_accuracy)  # order is best first
    replicated = {entry: sum(run.entry == entry for run in ok) for entry in entries}
    handles = [
        Line2D(
            [],
            [],
            color=colours[entry],
            linewidth=2.2,
            label=f"{entry}"
            + (f" ×{replicated[entry]}" if replicated[entry] > 1 else "")
            + f"  {accuracy_text(best_per_entry[entry])}",
        )
        for entry in entries
    ]
    size = label_size(len(entries))
    figure.legend(
        handles=handles,
        title="entry (×replicates), best test accuracy",
        title_fontsize=size,
        fontsize=size,
        loc="outside right upper",
        ncol=legend_columns(len(entries)),
    )
    return figure


def _annotate_bars(axis, positions, values, text, size):
    span = axis.get_xlim()[1]
    for position, value in zip(positions, values):
        if np.isfinite(value):
            axis.text(value + span * 0.01, position, text(value), va="center", fontsize=size - 0.5, color=INK)


@styled
def measure_bars(table: pd.DataFrame, best: str | None = None) -> Figure:
    """Training time, mean validation accuracy and mean validation loss after epoch 5, one row per run.

    Rows are ranked by test accuracy (best on top); failed runs are listed last, marked 'failed'.
    """
    ranked = _ranked(table)
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
                )
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", visible=False)
    axes[0].set_ylim(count - 0.4, -0.6)
    _run_labels(axes[0], labels, best, failed, size)
    figure_title(figure, "Runs ranked by test accuracy (best on top, in black)")
    return figure


@styled
def grouped_by_time(table: pd.DataFrame, best: str | None = None) -> Figure:
    """The seed's grouped chart done legibly: per run, training time (top axis, seconds) beside mean
    validation accuracy and loss after epoch 5 (bottom axis), runs sorted from fastest to slowest."""
    ranked = _ranked(table, by="training_seconds", ascending=True)
    ranked = ranked[ranked["status"] == "ok"]
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
            time_axis.text(value, position - height, f" {value:,.0f} s", va="center", fontsize=small, color=INK)
    for offset, values in ((0, accuracy), (height, loss)):
        for position, value in zip(positions, values):
            if np.isfinite(value):
                axis.text(value, position + offset, f" {value:.3f}", va="center", fontsize=small, color=INK)
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


@styled
def test_accuracy_by_entry(table: pd.DataFrame, best: str | None = None) -> Figure:
    """Test accuracy of each entry: a dot per replicate, the mean as a bar, and the means on the
    unrotated and rotated halves of the test set as markers where the data says which is which."""
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    if ok.empty:
        return message_figure("Test accuracy per entry", "No run has a test accuracy.")
    stats = ok.groupby("entry", sort=False).agg(
        mean=("test_accuracy", "mean"),
        std=("test_accuracy", "std"),
        low=("test_accuracy", "min"),
        high=("test_accuracy", "max"),
        n=("test_accuracy", "count"),
        unrotated=("test_accuracy_unrotated", "mean"),
        rotated=("test_accuracy_rotated", "mean"),
    )
    stats = stats.sort_values("mean", ascending=False, kind="stable")
    failed_entries = [entry for entry in table["entry"].unique() if entry not in stats.index]
    entries = stats.index.tolist()
    count = len(entries)
    size = label_size(count)
    figure = new_figure(10.5, _bar_height(count))
    axis = figure.add_subplot()
    positions = np.arange(count)
    best_entry = table.loc[table["run"] == best, "entry"].iloc[0] if best in set(table["run"]) else None
    colours = ["#8fb9a3" if entry != best_entry else ACCURACY_COLOUR for entry in entries]
    axis.barh(positions, stats["mean"], height=0.62, color=colours, label="mean over replicates")
    for position, entry in zip(positions, entries):
        values = ok.loc[ok["entry"] == entry, "test_accuracy"].to_numpy(dtype=float)
        if values.size > 1:
            axis.plot([values.min(), values.max()], [position, position], color=INK, linewidth=1.2)
        axis.scatter(values, np.full(values.size, position), s=16, color=INK, zorder=3)
    has_split = stats["rotated"].notna().any()
    if has_split:
        axis.scatter(
            stats["unrotated"],
            positions,
            marker="^",
            s=42,
            color=UNROTATED_COLOUR,
            zorder=4,
            label="unrotated test digits",
        )
        axis.scatter(
            stats["rotated"], positions, marker="v", s=42, color=ROTATED_COLOUR, zorder=4, label="rotated test digits"
        )
    top = np.nanmax(stats[["high", "unrotated"]].to_numpy(dtype=float)) if has_split else stats["high"].max()
    axis.set_xlim(0, min(1.0, top) * 1.05 if top > 0 else 1)
    for position, (entry, row) in zip(positions, stats.iterrows()):
        text = f"{row['mean']:.3f}"
        if row["n"] > 1:
            text += f" ± {row['std']:.3f}  (n={int(row['n'])})"
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
    axis.set_yticklabels(entries, fontsize=size)
    for tick, entry in zip(axis.get_yticklabels(), entries):
        if entry == best_entry:
            tick.set_fontweight("bold")
            tick.set_color(INK)
    axis.set_ylim(count - 0.4, -0.6)
    axis.grid(axis="y", visible=False)
    axis.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.set_xlabel("test accuracy")
    handles = [
        Patch(color="#8fb9a3", label="mean over replicates"),
        Line2D([], [], color=INK, marker="o", markersize=4, linewidth=1.2, label="each replicate (line: min-max)"),
    ]
    if has_split:
        handles += [
            Line2D([], [], color=UNROTATED_COLOUR, marker="^", linestyle="", label="unrotated test digits"),
            Line2D([], [], color=ROTATED_COLOUR, marker="v", linestyle="", label="rotated test digits"),
        ]
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8.5)
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


def comparison_figures(table: pd.DataFrame, runs: list[RunCurves], best: str | None) -> dict[str, Figure]:
    """The comparison charts by name."""
    return {
        "accuracy_curves": curves_overlay(runs, "accuracy"),
        "loss_curves": curves_overlay(runs, "loss"),
        "measure_bars": measure_bars(table, best),
        "grouped_by_time": grouped_by_time(table, best),
        "test_accuracy": test_accuracy_by_entry(table, best),
        "time_vs_accuracy": time_vs_accuracy(table, best),
    }


# ----------------------------------------------------------------------------------------------
# From the workflow's files to PNGs (what the Snakemake adapters call)


def _save_all(figures: dict[str, Figure], outputs: dict[str, str | Path]) -> None:
    missing = set(outputs) - set(figures)
    if missing:
        raise KeyError(f"no figure named {sorted(missing)}; known: {sorted(figures)}")
    for name, path in outputs.items():
        save(figures[name], path)


def plot_run_files(metrics_path, history_path, predictions_path, outputs: dict[str, str | Path]) -> None:
    """The per-run figures ('curves', 'confusion', 'per_class') of one run directory."""
    record = read_metrics(metrics_path)
    with np.load(predictions_path) as predictions:
        arrays = {name: predictions[name] for name in predictions.files}
    _save_all(run_figures(record, read_history(history_path), arrays), outputs)


def plot_entry_files(entry: str, metrics_paths, history_paths, output: str | Path) -> None:
    """The replicate band of one entry from its runs' files."""
    records = [read_metrics(path) for path in metrics_paths]
    histories = [read_history(path) for path in history_paths]
    ok = [record.get("status") == "ok" for record in records]
    figure = entry_figure(
        entry,
        [history for history, good in zip(histories, ok) if good],
        [record.get("test_accuracy") for record, good in zip(records, ok) if good],
        failed=ok.count(False),
    )
    save(figure, output)


def plot_comparison_files(table_path, metrics_paths, history_paths, outputs: dict[str, str | Path]) -> None:
    """The comparison charts from results/metrics.csv and every run's history."""
    table = read_table(table_path)
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
    _save_all(comparison_figures(table, runs, best_run(table)), outputs)
