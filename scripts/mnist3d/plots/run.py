"""Figures of one run: learning curves, confusion matrix and accuracy per digit (rule plot_run)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from mnist3d.grid import CLASSES
from mnist3d.plots.style import (
    ACCURACY_COLOUR,
    INK,
    LOSS_COLOUR,
    MUTED,
    ROTATED_COLOUR,
    UNROTATED_COLOUR,
    failed_figure,
    figure_title,
    measure_axis,
    message_figure,
    new_figure,
    plot_curve,
    save_all,
    styled,
)
from mnist3d.results.confusion import confusion_counts, per_class_accuracy, rotation_known, row_normalised
from mnist3d.results.runfiles import MEASURED_STATUSES, read_history, read_metrics, read_prediction_arrays

# One run's figures are looked at one at a time and there are three per run: a lower resolution
# keeps a 60-run report, with all 180 of them embedded, well under 10 MB.
RUN_DPI = 90


@styled
def run_curves(history, run: str, test_accuracy=None, test_loss=None, best_epoch=None) -> Figure:
    """Accuracy (left) and loss (right) per epoch of a history (mnist3d.results.runfiles.read_history):
    training dashed, validation solid.

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
        plot_curve(axis, history, train, color=colour, linestyle="--", linewidth=1.6, alpha=0.75, label="training")
        plot_curve(axis, history, validation, color=colour, linewidth=2.2, label="validation")
        if test is not None and np.isfinite(test):
            axis.axhline(test, color=INK, linestyle=":", linewidth=1.2, label=f"test {test:.3f}")
        if best_epoch is not None and np.isfinite(best_epoch) and len(history) and best_epoch < history["epoch"].max():
            axis.axvline(best_epoch, color=MUTED, linewidth=1, alpha=0.7, label=f"kept epoch {int(best_epoch)}")
        measure_axis(axis, name, title=name)
        axis.legend(loc="lower right" if name == "accuracy" else "upper right", fontsize=8.5)
    return figure


def _matrix(axis, values, labels, title, colour_max):
    image = axis.imshow(values, cmap="Blues", vmin=0, vmax=colour_max)
    for (row, column), value in np.ndenumerate(labels):
        shade = values[row, column]
        dark = np.isfinite(shade) and shade > 0.55 * colour_max
        # Out of the layout: each lies inside its cell, and the layout engine would otherwise
        # measure all 200 of them, twice, on every save.
        axis.text(
            column, row, value, ha="center", va="center", fontsize=7.5, color="white" if dark else INK, in_layout=False
        )
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


def run_figures(metrics: dict, history, predictions) -> dict[str, Figure]:
    """The per-run figures by name ('curves', 'confusion', 'per_class'); placeholders for a failed run."""
    run = metrics["run"]
    if metrics.get("status") not in MEASURED_STATUSES:  # a run stopped by halving is drawn as it stood
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


def plot_run_files(metrics_path, history_path, predictions_path, outputs: dict) -> None:
    """The per-run figures ('curves', 'confusion', 'per_class') of one run directory."""
    record = read_metrics(metrics_path)
    arrays = read_prediction_arrays(predictions_path)
    save_all(run_figures(record, read_history(history_path), arrays), outputs, dpi=RUN_DPI)
