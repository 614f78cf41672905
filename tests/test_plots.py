"""Figures from run directories in the contract's format, with 3 runs and with 40."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist3d import metrics, plots, views3d

sys.path.insert(0, str(Path(__file__).parent))
from rundirs import table_of, write_run, write_runs  # noqa: E402


def assert_png(path: Path, min_width: int = 300, min_height: int = 150) -> None:
    assert path.exists() and path.stat().st_size > 2000, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= min_width and height >= min_height, (path, image.size)
        assert len(image.convert("L").getcolors(2**16) or range(300)) > 8, f"{path} looks blank"


def comparison_outputs(directory: Path) -> dict[str, Path]:
    names = ("test_accuracy", "accuracy_curves", "loss_curves", "measure_bars", "grouped_by_time", "time_vs_accuracy")
    return {name: directory / f"{name}.png" for name in names}


@pytest.mark.parametrize("count, replicates, failed", [(3, 1, 1), (40, 3, 2)])
def test_comparison_charts_for_3_and_40_runs(tmp_path, count, replicates, failed):
    directories = write_runs(tmp_path, count, failed=failed, replicates=replicates)
    table_path = tmp_path / "results" / "metrics.csv"
    metrics.write_csv(table_of(directories), table_path)
    outputs = comparison_outputs(tmp_path / "plots")
    plots.plot_comparison_files(
        table_path,
        [directory / "metrics.json" for directory in directories],
        [directory / "history.csv" for directory in directories],
        outputs,
    )
    for path in outputs.values():
        assert_png(path)
    with Image.open(outputs["measure_bars"]) as image:
        bars_height = image.size[1]
    # one row per run: 40 runs need a taller chart than 3, not squeezed labels
    assert bars_height > (1200 if count == 40 else 250)


def test_run_figures_of_a_successful_run(tmp_path):
    run = write_run(tmp_path, "seed_example", epochs=12)
    outputs = {name: tmp_path / f"{name}.png" for name in ("curves", "confusion", "per_class")}
    plots.plot_run_files(run / "metrics.json", run / "history.csv", run / "predictions.npz", outputs)
    for path in outputs.values():
        assert_png(path)


def test_a_failed_run_gets_placeholders_that_say_why(tmp_path):
    run = write_run(tmp_path, "broken", failed="ResourceExhaustedError: OOM when allocating tensor")
    outputs = {name: tmp_path / f"{name}.png" for name in ("curves", "confusion", "per_class")}
    plots.plot_run_files(run / "metrics.json", run / "history.csv", run / "predictions.npz", outputs)
    for path in outputs.values():
        assert_png(path, min_height=100)
    figure = plots.run_figures(
        metrics.read_metrics(run / "metrics.json"), metrics.read_history(run / "history.csv"), {}
    )["curves"]
    texts = " ".join(text.get_text() for axis in figure.axes for text in axis.texts)
    assert "failed" in texts and "ResourceExhaustedError" in texts


def test_entry_band_from_replicates_of_different_lengths(tmp_path):
    directories = [write_run(tmp_path, "wide", replicate, epochs=5 + replicate) for replicate in (1, 2, 3)]
    directories.append(write_run(tmp_path, "wide", 4, failed="killed"))
    output = tmp_path / "wide.png"
    plots.plot_entry_files(
        "wide",
        [directory / "metrics.json" for directory in directories],
        [directory / "history.csv" for directory in directories],
        output,
    )
    assert_png(output)
    band = plots.replicate_band([metrics.read_history(d / "history.csv") for d in directories[:3]], "val_accuracy")
    assert band["count"].tolist() == [3] * 6 + [2, 1]
    assert (band["min"] <= band["mean"]).all() and (band["mean"] <= band["max"]).all()


def test_confusion_counts_and_row_shares():
    counts = plots.confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], classes=3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert plots.row_normalised(counts)[2].tolist() == pytest.approx([1 / 3, 0, 2 / 3])
    accuracy = plots.per_class_accuracy([0, 0, 1, 2], [0, 1, 1, 2], classes=4)
    assert accuracy[:3].tolist() == [0.5, 1.0, 1.0] and np.isnan(accuracy[3])


def test_rotation_is_known_only_when_both_halves_are_marked():
    assert plots.rotation_known(np.array([0, 1, 0, 1]))
    assert not plots.rotation_known(np.array([-1, -1]))
    assert not plots.rotation_known(np.array([], dtype=np.int8))


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
    outputs = {"examples": tmp_path / "examples.png", "misclassified": tmp_path / "misclassified.png"}
    logged = []
    views3d.plot_digits_files(
        prepared,
        table_path,
        [f"model_0{index}/rep1" for index in range(3)],
        [directory / "predictions.npz" for directory in directories],
        outputs,
        log=logged.append,
    )
    for path in outputs.values():
        assert_png(path)
    best = metrics.best_run(metrics.read_table(table_path))
    assert best is not None and logged[-1].endswith(f"misclassified.png ({best})")


def test_most_confident_mistakes_first_one_per_pair():
    y_true = np.array([1, 1, 2, 3, 4])
    y_pred = np.array([7, 7, 2, 8, 9])
    probabilities = np.full((5, 10), 0.01)
    probabilities[0, 7], probabilities[1, 7], probabilities[3, 8], probabilities[4, 9] = 0.9, 0.95, 0.5, 0.6
    assert views3d.misclassified_indices(y_true, y_pred, probabilities, 3) == [1, 4, 3]
    assert views3d.misclassified_indices(y_true, y_pred, probabilities, 10) == [1, 4, 3, 0]


def test_png_is_written_atomically(tmp_path):
    path = tmp_path / "figure.png"
    path.write_bytes(b"old")
    plots.save(plots.message_figure("title", "message"), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
