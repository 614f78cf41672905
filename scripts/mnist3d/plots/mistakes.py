"""What the best model gets wrong: its most confident mistakes on the test set, as 3D digits
(rule plot_misclassified). Apart from mnist3d.plots.digits because it reads the metrics table:
the examples, drawn from the data alone, stay clear of the tables' code.
"""

from __future__ import annotations

import numpy as np

from mnist3d.plots.digits import draw_digit, read_test_set
from mnist3d.plots.style import FAILED_COLOUR, message_figure, new_figure, save, styled
from mnist3d.plots.views import view, write_views
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


def mistakes(x_test, predictions, run: str | None, count: int = 10) -> tuple[str, list[tuple[int, str]]]:
    """The best run's most confident mistakes: a heading, and per mistake its test row and a title
    'true -> predicted' with its confidence; no mistakes and the heading says why."""
    if run is None:
        return "No run finished, so there is no model to inspect.", []
    y_true, y_pred = predictions["y_true"], predictions["y_pred"]
    if len(y_true) != len(x_test):
        return f"{run} has {len(y_true)} predictions for {len(x_test)} test digits; they cannot be matched.", []
    chosen = misclassified_indices(y_true, y_pred, predictions["probabilities"], count)
    if not chosen:
        return "The run classified every test digit correctly.", []
    rotated = np.asarray(predictions["test_rotated"])
    known = rotation_known(rotated)
    probabilities = np.asarray(predictions["probabilities"])
    titled = []
    for index in chosen:
        true, predicted = int(y_true[index]), int(y_pred[index])
        details = [f"{probabilities[index, predicted]:.0%} sure"] if probabilities.size else []
        details.append(("rotated" if rotated[index] == 1 else "unrotated") if known else f"test row {index}")
        titled.append((index, f"true {true} → predicted {predicted}\n{', '.join(details)}"))
    wrong = int(np.sum(np.asarray(y_true) != np.asarray(y_pred)))
    heading = f"{run}: the {len(chosen)} mistakes it was most sure of ({wrong} of {len(y_true)} test digits are wrong)"
    return heading, titled


@styled
def misclassified_figure(x_test, predictions, run: str | None, count: int = 10):
    """The best run's most confident mistakes, each titled 'true -> predicted (confidence)'."""
    heading, titled = mistakes(x_test, predictions, run, count)
    if not titled:
        return message_figure(f"Misclassified digits of {run}" if run else "Misclassified digits", heading)
    columns = 5
    rows = int(np.ceil(len(titled) / columns))
    figure = new_figure(11.5, 2.6 * rows + 0.6)
    figure.suptitle(heading, x=0.01, ha="left", fontsize=11, fontweight="bold")
    axes = np.atleast_1d(figure.subplots(rows, columns, subplot_kw={"projection": "3d"})).ravel()
    for axis, (index, title) in zip(axes, titled):
        draw_digit(axis, x_test[index], title, FAILED_COLOUR)
    for axis in axes[len(titled) :]:
        axis.set_axis_off()
    return figure


def plot_misclassified_file(
    prepared_path, table_path, run_ids: list[str], predictions_paths, output, views_output=None
) -> str | None:
    """The mistakes of the best run in results/metrics.csv (rule plot_misclassified) and, at
    `views_output`, the same digits as a views file (mnist3d.plots.views); returns the run's id.

    `run_ids` and `predictions_paths` are in the same order (every run of the models file).
    """
    x_test, _, _ = read_test_set(prepared_path)
    best = best_run(read_table(table_path))
    predictions = {}
    if best is not None:
        predictions = read_prediction_arrays(dict(zip(run_ids, predictions_paths))[best])
    save(misclassified_figure(x_test, predictions, best), output)
    if views_output is not None:
        heading, titled = mistakes(x_test, predictions, best)
        write_views(views_output, heading, [view(x_test[index], "", title) for index, title in titled])
    return best
