"""The replicate band of one entry: mean curves with the min-max range across its replicates (rule plot_entry)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from mnist3d.plots.style import (
    ACCURACY_COLOUR,
    LOSS_COLOUR,
    failed_figure,
    figure_title,
    measure_axis,
    new_figure,
    save,
    styled,
)
from mnist3d.results.runfiles import read_history, read_metrics


def replicate_band(histories: list, column: str) -> dict[str, np.ndarray]:
    """Per epoch (every epoch any replicate reached, ascending): mean, min, max and count of
    `column` over the replicates that recorded a value there. Histories as read by
    mnist3d.results.runfiles.read_history (or frames)."""
    epochs = np.unique(np.concatenate([np.asarray(history["epoch"], dtype=float) for history in histories]))
    values = np.full((len(histories), epochs.size), np.nan)
    for row, history in zip(values, histories):
        row[np.searchsorted(epochs, np.asarray(history["epoch"], dtype=float))] = np.asarray(
            history[column], dtype=float
        )
    count = np.sum(~np.isnan(values), axis=0)
    with np.errstate(invalid="ignore"):  # an epoch where no replicate has a value: NaN, as it should be
        total = np.nansum(values, axis=0)
        return {
            "epoch": epochs,
            "mean": np.where(count > 0, total / np.maximum(count, 1), np.nan),
            "min": np.fmin.reduce(values, axis=0),
            "max": np.fmax.reduce(values, axis=0),
            "count": count,
        }


@styled
def entry_figure(entry: str, histories: list, test_accuracies: list[float], failed: int = 0) -> Figure:
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
            if len(band["epoch"]) <= 3:  # too few epochs for a visible band: show the range as error bars
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
                marker="o" if len(band["epoch"]) <= 3 else None,
                label=f"{label} mean",
            )
        axis.legend(loc="lower right" if name == "accuracy" else "upper right", fontsize=8.5)
        measure_axis(axis, name, title=f"{name}: mean over replicates, shaded min-max")
    return figure


def plot_entry_files(entry: str, metrics_paths, history_paths, output) -> None:
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
