"""Figures from run directories in the contract's format, with 3 runs and with 40."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from rundirs import table_of, tables_of, write_run, write_runs, write_sweep

from mnist3d.plots import comparison as plots_comparison
from mnist3d.plots import cost as plots_cost
from mnist3d.plots import digits, frontier, mistakes
from mnist3d.plots import entry as plots_entry
from mnist3d.plots import overlay as plots_overlay
from mnist3d.plots import parallel as plots_parallel
from mnist3d.plots import run as plots_run
from mnist3d.plots import style as plotstyle
from mnist3d.plots import sweep as plots_sweep
from mnist3d.plots import views as plots_views
from mnist3d.report import figures
from mnist3d.results import confusion, metrics, runfiles


def assert_png(path: Path, min_width: int = 300, min_height: int = 150) -> None:
    assert path.exists() and path.stat().st_size > 2000, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= min_width and height >= min_height, (path, image.size)
        assert len(image.convert("L").getcolors(2**16) or range(300)) > 8, f"{path} looks blank"


def comparison_outputs(directory: Path) -> dict[str, Path]:
    return {name: directory / f"{name}.png" for name in figures.names("comparison")}


@pytest.mark.parametrize("count, replicates, failed", [(3, 1, 1), (60, 3, 2)])
def test_comparison_charts_for_3_and_60_runs(tmp_path, count, replicates, failed):
    directories = write_runs(tmp_path, count, failed=failed, replicates=replicates)
    table_path, entries_path = tmp_path / "results" / "metrics.csv", tmp_path / "results" / "metrics_by_entry.csv"
    table, entries = tables_of(directories)
    metrics.write_csv(table, table_path)
    metrics.write_csv(entries, entries_path)
    outputs = comparison_outputs(tmp_path / "plots")
    plots_comparison.plot_comparison_files(
        table_path,
        [directory / "metrics.json" for directory in directories],
        [directory / "history.csv" for directory in directories],
        outputs,
        entries_path=entries_path,
    )
    for path in outputs.values():
        assert_png(path)
    with Image.open(outputs["measure_bars"]) as image:
        bars_height = image.size[1]
    # one row per run: 60 runs need a taller chart than 3, not squeezed labels
    assert bars_height > (1800 if count == 60 else 250)
    # every chart of a 60-run report together stays small enough to embed
    assert sum(path.stat().st_size for path in outputs.values()) < (1_500_000 if count == 60 else 400_000)


def test_run_figures_of_a_successful_run(tmp_path):
    run = write_run(tmp_path, "seed_example", epochs=12, test_size=2000)
    outputs = {name: tmp_path / f"{name}.png" for name in figures.names("run")}
    plots_run.plot_run_files(run / "metrics.json", run / "history.csv", run / "predictions.npz", outputs)
    for path in outputs.values():
        assert_png(path)
    # 60 runs embed 180 of these in the report: about 55 kB a run keeps it under 10 MB with the rest
    assert sum(path.stat().st_size for path in outputs.values()) < 90_000


def test_a_failed_run_gets_placeholders_that_say_why(tmp_path):
    run = write_run(tmp_path, "broken", failed="ResourceExhaustedError: OOM when allocating tensor")
    outputs = {name: tmp_path / f"{name}.png" for name in figures.names("run")}
    plots_run.plot_run_files(run / "metrics.json", run / "history.csv", run / "predictions.npz", outputs)
    for path in outputs.values():
        assert_png(path, min_height=100)
    figure = plots_run.run_figures(
        runfiles.read_metrics(run / "metrics.json"), runfiles.read_history(run / "history.csv"), {}
    )["curves"]
    texts = " ".join(text.get_text() for axis in figure.axes for text in axis.texts)
    assert "failed" in texts and "ResourceExhaustedError" in texts


def test_entry_band_from_replicates_of_different_lengths(tmp_path):
    directories = [write_run(tmp_path, "wide", replicate, epochs=5 + replicate) for replicate in (1, 2, 3)]
    directories.append(write_run(tmp_path, "wide", 4, failed="killed"))
    output = tmp_path / "wide.png"
    plots_entry.plot_entry_files(
        "wide",
        [directory / "metrics.json" for directory in directories],
        [directory / "history.csv" for directory in directories],
        output,
    )
    assert_png(output)
    band = plots_entry.replicate_band(
        [runfiles.read_history(d / "history.csv") for d in directories[:3]], "val_accuracy"
    )
    assert band["epoch"].tolist() == list(range(1, 9))
    assert band["count"].tolist() == [3] * 6 + [2, 1]
    assert (band["min"] <= band["mean"]).all() and (band["mean"] <= band["max"]).all()
    # the same numbers as pandas' groupby over the replicates' frames
    frames = [metrics.history_frame(d / "history.csv") for d in directories[:3]]
    grouped = pd.concat(frames)[["epoch", "val_accuracy"]].groupby("epoch")["val_accuracy"]
    for name in ("mean", "min", "max", "count"):
        assert band[name] == pytest.approx(getattr(grouped, name)().to_numpy()), name


def test_history_without_pandas_reads_as_the_metrics_table_does(tmp_path):
    run = write_run(tmp_path, "shuffled", epochs=6)
    path = run / "history.csv"
    frame = metrics.history_frame(path)
    # rows out of order and a missing cell: sorted by epoch, the cell NaN
    lines = path.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:-1] + [""])
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    history = runfiles.read_history(path)
    assert len(history) == 6 and history["epoch"].tolist() == list(range(1, 7))
    for column in runfiles.HISTORY_COLUMNS:
        expected = np.array(frame[column], dtype=float)
        if column == "learning_rate":
            expected[1] = np.nan
        np.testing.assert_allclose(history[column], expected, equal_nan=True)
    (tmp_path / "header.csv").write_text("epoch,loss,accuracy\n")
    (tmp_path / "empty.csv").write_text("")
    for name in ("header.csv", "empty.csv"):
        empty = runfiles.read_history(tmp_path / name)
        assert len(empty) == 0 and empty["val_loss"].size == 0


def test_confusion_counts_and_row_shares():
    counts = confusion.confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], classes=3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert confusion.row_normalised(counts)[2].tolist() == pytest.approx([1 / 3, 0, 2 / 3])
    accuracy = confusion.per_class_accuracy([0, 0, 1, 2], [0, 1, 1, 2], classes=4)
    assert accuracy[:3].tolist() == [0.5, 1.0, 1.0] and np.isnan(accuracy[3])


def test_rotation_is_known_only_when_both_halves_are_marked():
    assert confusion.rotation_known(np.array([0, 1, 0, 1]))
    assert not confusion.rotation_known(np.array([-1, -1]))
    assert not confusion.rotation_known(np.array([], dtype=np.int8))


def test_digit_views_from_prepared_test_set_and_best_run(tmp_path):
    directories = write_runs(tmp_path, 3, failed=1)
    table_path = tmp_path / "metrics.csv"
    metrics.write_csv(table_of(directories), table_path)
    rng = np.random.default_rng(0)
    grids = np.zeros((200, 16, 16, 16, 1), dtype=np.float32)
    grids[:, 4:12, 7:9, 3:13, 0] = rng.uniform(0.2, 1.0, size=(200, 8, 2, 10))
    prepared = tmp_path / "prepared.npz"
    np.savez(
        prepared,
        x_test=grids,
        y_test=np.repeat(np.arange(10), 20),
        test_rotated=np.tile([0, 1], 100).astype(np.int8),
    )
    examples, misclassified = tmp_path / "examples.png", tmp_path / "misclassified.png"
    digits.plot_examples_file(prepared, examples, tmp_path / "examples.json")
    best = mistakes.plot_misclassified_file(
        prepared,
        table_path,
        [f"model_0{index}/rep1" for index in range(3)],
        [directory / "predictions.npz" for directory in directories],
        misclassified,
        tmp_path / "misclassified.json",
    )
    for path in (examples, misclassified):
        assert_png(path)
    assert best is not None and best == metrics.best_run(metrics.read_table(table_path))
    # The rotatable views hold the same digits as the figures, in their order.
    shown = json.loads((tmp_path / "examples.json").read_text())["views"]
    assert [(view["group"], view["label"]) for view in shown[:2]] == [
        ("Unrotated test digits", "digit 0"),
        ("Unrotated test digits", "digit 1"),
    ]
    assert len(shown) == 20 and shown[10]["group"] == "Rotated noisy copies"
    first_rotated = int(np.flatnonzero(np.tile([0, 1], 100) == 1)[0])  # digit 0's first rotated row
    assert (plots_views.decode_cells(shown[10]["cells"]) > 0).tolist() == (
        grids[first_rotated, ..., 0] / grids[first_rotated].max() > plots_views.THRESHOLD
    ).tolist()
    wrong = json.loads((tmp_path / "misclassified.json").read_text())
    predictions = runfiles.read_prediction_arrays(tmp_path / "results" / "runs" / best / "predictions.npz")
    first = mistakes.misclassified_indices(
        predictions["y_true"], predictions["y_pred"], predictions["probabilities"], 10
    )[0]
    assert (
        plots_views.decode_cells(wrong["views"][0]["cells"]).tolist()
        == plots_views.decode_cells(plots_views.encode_cells(grids[first])).tolist()
    )
    assert wrong["title"].startswith(f"{best}: the 10 mistakes") and len(wrong["views"]) == 10
    assert all(view["label"].startswith("true ") and "→ predicted" in view["label"] for view in wrong["views"])


def test_a_digit_is_drawn_as_one_square_per_filled_cell_in_its_place():
    grid = np.zeros((16, 16, 16), dtype=np.float32)  # [z, y, x]
    grid[2:14, 7:9, 5] = 1.0  # an upright bar: 12 cells high, 2 deep, at x = 5
    grid[0, 0, 0] = 0.05  # a stray point below the threshold
    figure = plotstyle.new_figure(3, 3)
    axis = figure.add_subplot(projection="3d")
    digits.draw_digit(axis, grid, "bar")
    [points] = axis.collections
    x, y, z = points._offsets3d
    assert len(x) == 24
    assert set(np.asarray(x)) == {5.5} and set(np.asarray(y)) == {7.5, 8.5} and min(z) == 2.5 and max(z) == 13.5
    assert points.get_paths()[0].vertices.shape[0] >= 4  # square markers


def test_most_confident_mistakes_first_one_per_pair():
    y_true = np.array([1, 1, 2, 3, 4])
    y_pred = np.array([7, 7, 2, 8, 9])
    probabilities = np.full((5, 10), 0.01)
    probabilities[0, 7], probabilities[1, 7], probabilities[3, 8], probabilities[4, 9] = 0.9, 0.95, 0.5, 0.6
    assert mistakes.misclassified_indices(y_true, y_pred, probabilities, 3) == [1, 4, 3]
    assert mistakes.misclassified_indices(y_true, y_pred, probabilities, 10) == [1, 4, 3, 0]


def test_png_is_written_atomically(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    plotstyle.save(plotstyle.message_figure("title", "message"), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_confusion_and_per_class_accuracy_agree_with_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.uniform(size=500) < 0.7, y_true, rng.integers(0, 10, 500))
    labels = list(range(10))
    assert (
        confusion.confusion_counts(y_true, y_pred) == sklearn_metrics.confusion_matrix(y_true, y_pred, labels=labels)
    ).all()
    recall = sklearn_metrics.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
    assert confusion.per_class_accuracy(y_true, y_pred) == pytest.approx(recall)
    rotated = np.arange(500) % 2 == 1
    assert confusion.per_class_accuracy(y_true, y_pred, rotated) == pytest.approx(
        sklearn_metrics.recall_score(y_true[rotated], y_pred[rotated], labels=labels, average=None)
    )


def _runs(directories):
    runs = []
    for directory in directories:
        record = metrics.read_metrics(directory / "metrics.json")
        runs.append(
            plots_overlay.RunCurves(
                record["run"],
                record["entry"],
                metrics.history_frame(directory / "history.csv"),
                record["status"] == "ok",
                record["test_accuracy"] or np.nan,
            )
        )
    return runs


def test_curve_overlay_of_60_runs_colours_only_the_best_entries(tmp_path):
    directories = write_runs(tmp_path, 60, replicates=3)
    table = table_of(directories)
    ranked = metrics.ranked_entries(table)
    figure = plots_overlay.curves_overlay(_runs(directories), "accuracy", ranked)
    [axis] = figure.axes
    faint = [line for line in axis.lines if line.get_color() == plotstyle.FAINT]
    coloured = [line for line in axis.lines if line.get_color() != plotstyle.FAINT]
    highlighted = ranked[: plots_overlay.HIGHLIGHTED]
    # the best entries' runs: training and validation curves each; every other run: validation only, grey
    assert len(coloured) == 2 * 3 * len(highlighted)
    assert len(faint) == 60 - 3 * len(highlighted)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert [label.split()[0] for label in labels[:-1]] == highlighted
    assert labels[-1].startswith(f"{len(faint)} other runs")


def test_curve_overlay_of_a_few_entries_colours_all(tmp_path):
    directories = write_runs(tmp_path, 5)
    figure = plots_overlay.curves_overlay(_runs(directories), "loss", metrics.ranked_entries(table_of(directories)))
    assert not [line for line in figure.axes[0].lines if line.get_color() == plotstyle.FAINT]
    assert len(figure.legends[0].get_texts()) == 5


def _sweep_tables(tmp_path, grid, replicates=2):
    directories, spec = write_sweep(tmp_path, "grid", grid, replicates=replicates)
    table, entries = tables_of(directories, {entry: "grid" for entry in spec["entries"]})
    return table, entries, spec


def test_sweep_figure_of_a_two_field_grid_has_a_panel_per_field_and_a_heatmap(tmp_path):
    table, entries, spec = _sweep_tables(tmp_path, {"dense": [64, 128, 256], "dropout": [0.2, 0.5]})
    figure = plots_sweep.sweep_figure(entries, spec, table)
    axes = figure.axes
    assert [axis.get_xlabel() for axis in axes] == ["dense", "dropout", "dropout"]
    assert [tick.get_text() for tick in axes[0].get_xticklabels()] == ["64", "128", "256"]
    assert [tick.get_text() for tick in axes[2].get_yticklabels()] == ["64", "128", "256"]
    assert [tick.get_text() for tick in axes[2].get_xticklabels()] == ["0.2", "0.5"]
    cells = plots_sweep.heatmap_cells(plots_sweep.sweep_frame(entries, spec), spec["fields"])
    means = entries.set_index("entry")["test_accuracy_mean"]
    entry = next(name for name, labels in spec["entries"].items() if labels == {"dense": "128", "dropout": "0.5"})
    assert cells.loc["128", "0.5"] == pytest.approx(means[entry])
    texts = [text.get_text() for text in axes[2].texts]
    assert sum("best" in text for text in texts) == 1 and f"{means[entry]:.3f}" in " ".join(texts)
    path = tmp_path / "sweep.png"
    plotstyle.save(figure, path)
    assert_png(path)


def test_sweep_figure_of_one_field_orders_numbers_and_has_no_heatmap(tmp_path):
    table, entries, spec = _sweep_tables(tmp_path, {"learning_rate": ["1e-2", "1e-4", "1e-3"]})
    figure = plots_sweep.sweep_figure(entries, spec, table)
    assert len(figure.axes) == 1
    assert [tick.get_text() for tick in figure.axes[0].get_xticklabels()] == ["1e-4", "1e-3", "1e-2"]
    failed = entries.assign(test_accuracy_mean=np.nan)
    texts = [text.get_text() for axis in plots_sweep.sweep_figure(failed, spec).axes for text in axis.texts]
    assert any("No run of this sweep finished" in text for text in texts)


def test_plot_sweep_adapter_writes_the_figure(tmp_path):
    table, entries, spec = _sweep_tables(tmp_path, {"dense": [64, 128]})
    metrics.write_csv(table, tmp_path / "metrics.csv")
    metrics.write_csv(entries, tmp_path / "metrics_by_entry.csv")
    output = tmp_path / "plots" / "sweeps" / "grid.png"
    plots_sweep.plot_sweep_files(tmp_path / "metrics_by_entry.csv", tmp_path / "metrics.csv", spec, output)
    assert_png(output)


def test_plot_jobs_do_not_import_scikit_learn_or_scipy():
    # Start-up time is paid by every plotting job (one per run): sklearn or scipy.stats take seconds on 2 cores.
    code = "import sys, mnist3d.plots.run, mnist3d.plots.entry, mnist3d.plots.comparison, mnist3d.plots.sweep; "
    code += "print(sorted(m for m in ('sklearn', 'scipy', 'tensorflow') if m in sys.modules))"
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    result = subprocess.run([sys.executable, "-c", code], cwd=scripts, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_per_run_and_per_entry_plot_jobs_do_not_import_pandas():
    # There is one such job per run or entry: pandas' import would cost each about 0.25 CPU-s.
    code = "import sys, mnist3d.plots.run, mnist3d.plots.entry; print('pandas' in sys.modules)"
    scripts = Path(__file__).resolve().parents[1] / "scripts"
    result = subprocess.run([sys.executable, "-c", code], cwd=scripts, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_examples_and_the_per_run_figures_do_not_depend_on_the_tables_code():
    # Their rules take these files as code inputs (mnist3d.codebase): the examples are drawn while
    # the models train, and one plot job per run would otherwise rerun for every change to the tables.
    from mnist3d import codebase

    for module in ("mnist3d.plots.digits", "mnist3d.plots.run", "mnist3d.plots.entry"):
        names = {path.name for path in codebase.code_files(module)}
        assert not names & {"metrics.py", "stats.py"}, (module, sorted(names))
        assert not [name for name in names if name.endswith((".rst", ".j2"))], (module, sorted(names))


# ----------------------------------------------------------------------------------------------
# Rotatable views, parallel coordinates and accuracy against cost


def test_views_keep_the_figures_cells_and_their_densities():
    grid = np.zeros((16, 16, 16, 1), dtype=np.float32)  # [z, y, x]
    grid[3, 5, 7] = 2.0  # the maximum
    grid[4, 5, 7] = 0.5  # a quarter of it: kept, at 64
    grid[0, 0, 1] = 0.2  # a tenth: below the threshold, left out as the figure leaves it out
    cells = plots_views.decode_cells(plots_views.encode_cells(grid))
    assert cells[3, 5, 7] == 255 and cells[4, 5, 7] == 64 and cells[0, 0, 1] == 0
    assert int((cells > 0).sum()) == 2
    # Flat index x + 16y + 256z, as the page's script reads it.
    flat = np.frombuffer(base64.b64decode(plots_views.encode_cells(grid)), dtype=np.uint8)
    assert flat[7 + 16 * 5 + 256 * 3] == 255
    assert plots_views.decode_cells(plots_views.encode_cells(np.zeros((16, 16, 16)))).sum() == 0


def test_parallel_coordinates_draw_the_best_and_its_ties_on_top(tmp_path):
    _, entries, spec = _sweep_tables(tmp_path, {"dense": [64, 128, 256], "dropout": [0.2, 0.5]})
    frame = plots_sweep.sweep_frame(entries, spec)
    axes, lines = plots_parallel.parallel_lines(frame, spec["fields"])
    assert axes["dense"] == ["64", "128", "256"] and axes["dropout"] == ["0.2", "0.5"]
    assert len(lines) == 6
    layers = [line["layer"] for line in lines]
    assert layers == sorted(layers, key=plots_parallel.LAYER.get) and layers[-1] == "best"
    summary = entries.set_index("entry")
    best = lines[-1]
    assert summary.loc[best["entry"], "verdict"] == "best"
    assert best["y"][-1] == pytest.approx(1.0)  # the highest mean tops the accuracy axis
    assert best["y"][:2] == [axes["dense"].index(best["values"][0]) / 2, axes["dropout"].index(best["values"][1])]
    tied = {entry for entry in summary.index if str(summary.loc[entry, "tied_with_best"]) == "True"} - {best["entry"]}
    assert {line["entry"] for line in lines if line["layer"] == "tied"} == tied
    figure = plots_parallel.parallel_figure(entries, spec)
    [axis] = figure.axes
    assert [tick.get_text() for tick in axis.get_xticklabels()] == ["dense", "dropout", "mean test accuracy"]
    assert len(axis.lines) == 6 + 3  # a line per entry and an axis per field and accuracy
    assert axis.lines[5].get_linewidth() == plots_parallel.STROKE["best"][1]  # drawn last, on top
    entries_path = tmp_path / "metrics_by_entry.csv"
    metrics.write_csv(entries, entries_path)
    plots_parallel.plot_parallel_file(entries_path, spec, tmp_path / "grid-parallel.png")
    assert_png(tmp_path / "grid-parallel.png")
    failed = entries.assign(test_accuracy_mean=np.nan)
    texts = [text.get_text() for axis in plots_parallel.parallel_figure(failed, spec).axes for text in axis.texts]
    assert any("No run of this sweep finished" in text for text in texts)


def test_pareto_optimal_points_are_those_no_other_beats_on_both():
    costs = [10, 20, 30, 15, 40, np.nan, 10]
    accuracies = [0.70, 0.80, 0.85, 0.60, 0.85, 0.99, 0.65]
    # 15 s at 0.60 loses to 10 s at 0.70; 40 s at 0.85 to 30 s at 0.85; 10 s at 0.65 to 10 s at 0.70.
    assert frontier.pareto_optimal(costs, accuracies).tolist() == [True, True, True, False, False, False, False]
    assert frontier.pareto_optimal([5, 5], [0.5, 0.5]).tolist() == [True, True]  # equal points beat neither


def cost_runs(root: Path) -> list[Path]:
    """Three entries of 3 replicates: `big` best and slow, `small` tied with it and 4x faster with a
    tenth of the parameters, `weak` below both and the fastest."""
    directories = []
    for entry, level, seconds, parameters in (
        ("big", 0.83, 400.0, 500_000),
        ("small", 0.81, 100.0, 50_000),
        ("weak", 0.55, 50.0, 40_000),
    ):
        for replicate in (1, 2, 3):
            directory = write_run(root, entry, replicate, level=level, test_size=400)
            record = json.loads((directory / "metrics.json").read_text())
            record.update(training_seconds=seconds + replicate, parameter_count=parameters)
            (directory / "metrics.json").write_text(json.dumps(record))
            directories.append(directory)
    return directories


def test_entry_costs_and_the_cheapest_entry_tied_with_the_best(tmp_path):
    table, entries = tables_of(cost_runs(tmp_path))
    verdicts = entries.set_index("entry")["verdict"]
    assert verdicts["big"] == "best" and verdicts["small"].startswith("tied") and verdicts["weak"].startswith("below")
    frame = frontier.entry_costs(table, entries).set_index("entry")
    assert frame.loc["small", "seconds"] == pytest.approx(102.0) and frame.loc["big", "parameters"] == 500_000
    assert frame.index.tolist() == ["big", "small", "weak"] and frame["tied"].tolist() == [True, True, False]
    # Every entry is Pareto-optimal here: each costlier one is more accurate.
    assert frame["pareto_seconds"].all() and frame["pareto_parameters"].all()
    fast = frontier.cheapest_tied(frontier.entry_costs(table, entries), "seconds")
    assert fast == {
        "entry": "small",
        "cost": 102.0,
        "best_cost": 402.0,
        "ratio": pytest.approx(402 / 102),
        "is_best": False,
    }
    slow = frontier.entry_costs(table, entries).assign(seconds=[100.0, 300.0, 50.0])
    assert frontier.cheapest_tied(slow, "seconds")["is_best"]  # the best is also the cheapest of the ties
    figure = plots_cost.cost_figure(table, entries)
    axes = [axis for axis in figure.axes if axis.get_visible()]
    assert [axis.get_xlabel() for axis in axes] == ["mean training time (s)", "parameters"]
    assert axes[1].get_xscale() == "linear" and axes[0].get_xscale() == "linear"
    named = {text.get_text() for text in axes[0].texts}
    assert named == set(frame.index[frame["pareto_seconds"]])
    path = tmp_path / "cost.png"
    plotstyle.save(figure, path)
    assert_png(path)
    none = table.assign(status="failed", test_accuracy=np.nan)
    texts = [text.get_text() for axis in plots_cost.cost_figure(none, entries).axes for text in axis.texts]
    assert any("No run has both" in text for text in texts)


def test_sweep_entries_are_named_by_their_values_in_the_cost_figure():
    assert plots_cost.short_name("lr-dropout.dropout-0.25.learning_rate-0.001", "lr-dropout") == (
        "dropout-0.25.learning_rate-0.001"
    )
    assert plots_cost.short_name("wide", "") == "wide"
