"""What the best model gets wrong: its most confident mistakes on the test set, as 3D digits
(rule plot_misclassified). Apart from mnist3d.plots.digits because it reads the metrics table:
the examples, drawn from the data alone, stay clear of the tables' code.
"""

from __future__ import annotations

import numpy as np

from mnist3d.plots.digits import draw_digit, read_test_set
from mnist3d.plots.style import FAILED_COLOUR, message_figure, new_figure, save, styled
from mnist3d.results.confusion import rotation_known
from mnist3d.results.metrics import best_run, read_table
from mnist3d.results.runfiles import read_prediction_arrays


def misclassified_indices(y_true, y_pred, probabilities, count: int) -> list[int]:
    """The `count` wrong predictions the model was most sure of, one per (true, predicted) pair first."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    if wrong.size == 0:
        return []
    probabilities = np.asarray(probabilities)
    confidence = probabilities[wrong, y_pred[wrong]] if probabilities.size else np.zeros(wrong.size)
    ordered = wrong[np.argsort(-confidence, kind="stable")]
    chosen, pairs = [], set()
    for index in ordered:
        pair = (int(y_true[index]), int(y_pred[index]))
        if pair not in pairs:
            chosen.append(int(index))
            pairs.add(pair)
        if len(chosen) == count:
            return chosen
    extra = [int(index) for index in ordered if int(index) not in chosen]
    return chosen + extra[: count - len(chosen)]


@styled
def misclassified_figure(x_test, predictions, run: str | None, count: int = 10):
    """The best run's most confident mistakes, each titled 'true -> predicted (confidence)'."""
    if run is None:
        return message_figure("Misclassified digits", "No run finished, so there is no model to inspect.")
    y_true, y_pred = predictions["y_true"], predictions["y_pred"]
    if len(y_true) != len(x_test):
        return message_figure(
            "Misclassified digits",
            f"{run} has {len(y_true)} predictions for {len(x_test)} test digits; they cannot be matched.",
        )
    chosen = misclassified_indices(y_true, y_pred, predictions["probabilities"], count)
    if not chosen:
        return message_figure(f"Misclassified digits of {run}", "The run classified every test digit correctly.")
    rotated = np.asarray(predictions["test_rotated"])
    known = rotation_known(rotated)
    wrong = int(np.sum(np.asarray(y_true) != np.asarray(y_pred)))
    columns = 5
    rows = int(np.ceil(len(chosen) / columns))
    figure = new_figure(11.5, 2.6 * rows + 0.6)
    figure.suptitle(
        f"{run}: the {len(chosen)} mistakes it was most sure of ({wrong} of {len(y_true)} test digits are wrong)",
        x=0.01,
        ha="left",
        fontsize=11,
        fontweight="bold",
    )
    axes = np.atleast_1d(figure.subplots(rows, columns, subplot_kw={"projection": "3d"})).ravel()
    probabilities = np.asarray(predictions["probabilities"])
    for axis, index in zip(axes, chosen):
        true, predicted = int(y_true[index]), int(y_pred[index])
        details = [f"{probabilities[index, predicted]:.0%} sure"] if probabilities.size else []
        details.append(("rotated" if rotated[index] == 1 else "unrotated") if known else f"test row {index}")
        draw_digit(axis, x_test[index], f"true {true} → predicted {predicted}\n{', '.join(details)}", FAILED_COLOUR)
    for axis in axes[len(chosen) :]:
        axis.set_axis_off()
    return figure


def plot_misclassified_file(prepared_path, table_path, run_ids: list[str], predictions_paths, output) -> str | None:
    """The mistakes of the best run in results/metrics.csv (rule plot_misclassified); returns its id.

    `run_ids` and `predictions_paths` are in the same order (every run of the models file).
    """
    x_test, _, _ = read_test_set(prepared_path)
    best = best_run(read_table(table_path))
    predictions = {}
    if best is not None:
        predictions = read_prediction_arrays(dict(zip(run_ids, predictions_paths))[best])
    save(misclassified_figure(x_test, predictions, best), output)
    return best
