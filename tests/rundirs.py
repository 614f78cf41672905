"""Run directories written in the exact format the training rule leaves them, for tests of the
steps that read them (metrics, plots, report) without training anything."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mnist3d.config.runs import OPTIONAL_DEFAULTS
from mnist3d.results import metrics, runfiles
from mnist3d.results.runfiles import HISTORY_COLUMNS

PARAMS = {
    "filters": [16, 32, 64],
    "kernel_sizes": [3, 3, 3],
    "pool_sizes": [2, 2, 2],
    "dense": 256,
    "dropout": 0.5,
    "learning_rate": 0.001,
    "epochs": 8,
    "batch_size": 64,
    "seed": 1,
    **OPTIONAL_DEFAULTS,
}


def fake_history(epochs: int, level: float, rng: np.random.Generator) -> pd.DataFrame:
    epoch = np.arange(1, epochs + 1)
    accuracy = level + 0.15 - 0.6 * np.exp(-epoch / 2.5) + rng.normal(0, 0.005, epochs)
    val_accuracy = level - 0.55 * np.exp(-epoch / 2.0) + rng.normal(0, 0.01, epochs)
    return pd.DataFrame(
        {
            "epoch": epoch,
            "loss": 0.3 + 2.0 * np.exp(-epoch / 2.5),
            "accuracy": accuracy.clip(0, 1),
            "val_loss": 0.6 + 1.7 * np.exp(-epoch / 2.0) + rng.normal(0, 0.02, epochs),
            "val_accuracy": val_accuracy.clip(0, 1),
            "seconds": rng.uniform(9, 11, epochs),
            "learning_rate": np.full(epochs, 0.001),
        }
    )


def write_run(
    root: Path,
    entry: str,
    replicate: int = 1,
    *,
    history: pd.DataFrame | None = None,
    level: float = 0.75,
    epochs: int = 8,
    failed: str | None = None,
    rotation_known: bool = True,
    test_size: int = 200,
    params: dict | None = None,
    seed: int = 0,
) -> Path:
    """One run directory in the exact contract format; `failed` is the error text of a failed run."""
    rng = np.random.default_rng(seed + 1000 * replicate + sum(map(ord, entry)))
    run_dir = root / "results" / "runs" / entry / f"rep{replicate}"
    run_dir.mkdir(parents=True, exist_ok=True)
    run_params = {**PARAMS, **(params or {}), "seed": PARAMS["seed"] + replicate - 1}
    if failed is None and history is None:
        history = fake_history(epochs, level, rng)
    if failed is not None:
        history = pd.DataFrame(columns=HISTORY_COLUMNS)
    history.to_csv(run_dir / "history.csv", index=False)

    if failed is None:
        y_true = np.repeat(np.arange(10), test_size // 10).astype(np.int64)
        rotated = np.tile([0, 1], test_size // 2).astype(np.int8)
        correct_share = np.where(rotated == 1, level - 0.12, level + 0.12)
        correct = rng.uniform(size=test_size) < correct_share
        y_pred = np.where(correct, y_true, (y_true + rng.integers(1, 10, test_size)) % 10).astype(np.int64)
        probabilities = rng.dirichlet(np.ones(10), test_size).astype(np.float32)
        probabilities[np.arange(test_size), y_pred] += 1.0
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        if not rotation_known:
            rotated = np.full(test_size, -1, dtype=np.int8)
    else:
        y_true = y_pred = np.zeros(0, dtype=np.int64)
        probabilities = np.zeros((0, 10), dtype=np.float32)
        rotated = np.zeros(0, dtype=np.int8)
    np.savez(
        run_dir / "predictions.npz", y_true=y_true, y_pred=y_pred, probabilities=probabilities, test_rotated=rotated
    )

    ok = failed is None
    accuracy = float(np.mean(y_true == y_pred)) if ok else None
    split = ok and rotation_known
    record = {
        "run": f"{entry}/rep{replicate}",
        "entry": entry,
        "replicate": replicate,
        "status": "ok" if ok else "failed",
        "error": failed,
        "params": run_params,
        "seed": run_params["seed"],
        "test_accuracy": accuracy,
        "test_loss": float(1.2 - level) if ok else None,
        "test_accuracy_unrotated": float(np.mean((y_true == y_pred)[rotated == 0])) if split else None,
        "test_accuracy_rotated": float(np.mean((y_true == y_pred)[rotated == 1])) if split else None,
        "per_class_accuracy": [0.7] * 10 if ok else None,
        "training_seconds": float(history["seconds"].sum()) if ok else None,
        "epochs_run": len(history) if ok else None,
        "best_epoch": int(history["val_loss"].idxmin()) + 1 if ok else None,
        "parameter_count": 1234567 if ok else None,
        "samples_per_second": 350.5 if ok else None,
        "device": "CPU (2 cores)",
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"},
        "dataset": "generated",
    }
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2))
    (run_dir / "model.keras").write_bytes(b"" if not ok else b"model")
    return run_dir


def write_runs(root: Path, count: int, *, failed: int = 0, replicates: int = 1) -> list[Path]:
    """`count` runs spread over entries with `replicates` each; the last `failed` runs failed."""
    directories = []
    for index in range(count):
        entry = f"model_{index // replicates:02d}"
        replicate = index % replicates + 1
        error = (
            "ValueError: filters, kernel_sizes and pool_sizes need one value per block"
            if index >= count - failed
            else None
        )
        level = 0.6 + 0.3 * ((index // replicates) * 7 % 11) / 11
        directories.append(
            write_run(
                root,
                entry,
                replicate,
                failed=error,
                level=level,
                epochs=6 + index % 5,
                params={"dense": 64 * (1 + index % 4)},
            )
        )
    return directories


def table_of(directories: list[Path]) -> pd.DataFrame:
    return metrics.load_runs_table(
        [directory / "metrics.json" for directory in directories],
        [directory / "history.csv" for directory in directories],
    )


def history_of(val_accuracy: list[float], val_loss: list[float] | None = None) -> pd.DataFrame:
    epochs = len(val_accuracy)
    val_loss = val_loss if val_loss is not None else [1.0] * epochs
    return pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "loss": [1.0] * epochs,
            "accuracy": [0.5] * epochs,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "seconds": [1.0] * epochs,
            "learning_rate": [0.001] * epochs,
        }
    )


def tables_of(directories: list[Path], sweeps: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """metrics.csv and metrics_by_entry.csv of these runs, statistics columns included, as
    aggregate_metrics computes them (`sweeps`: entry -> sweep name)."""
    paths = [directory / "predictions.npz" for directory in directories]
    table = metrics.load_runs_table(
        [directory / "metrics.json" for directory in directories],
        [directory / "history.csv" for directory in directories],
        paths,
        sweeps,
    )
    predictions = {run: runfiles.read_predictions(path) for run, path in zip(table["run"], paths)}
    return table, metrics.entry_table(table, predictions)


def write_sweep(root: Path, name: str, grid: dict[str, list], replicates: int = 2, **kwargs) -> tuple[list[Path], dict]:
    """Run directories for every combination of a grid (entries named like name__field-value), each
    level nudged by its values so some combinations differ and some tie, and the sweep's spec as
    rule plot_sweep gets it."""
    import itertools

    fields = sorted(grid)
    directories, entries = [], {}
    for combination in itertools.product(*(grid[field] for field in fields)):
        labels = {field: str(value) for field, value in zip(fields, combination)}
        entry = name + "__" + "_".join(f"{field}-{label}" for field, label in labels.items())
        entries[entry] = labels
        level = 0.62 + sum(0.05 * grid[field].index(value) for field, value in zip(fields, combination))
        for replicate in range(1, replicates + 1):
            directories.append(write_run(root, entry, replicate, level=min(level, 0.95), **kwargs))
    return directories, {"name": name, "fields": fields, "entries": entries}


DATA_SUMMARY = {
    "file": "results/data/generated-3dmnist.h5",
    "source": "generated",
    "value_range": [0.0, 1.0],
    "splits": {
        split: {
            "samples": n,
            "class_counts": {str(digit): n // 10 for digit in range(10)},
            "nonzero_share": 0.08,
            "rotated_samples": n // 2,
        }
        for split, n in (("train", 8000), ("test", 2000))
    },
    "attributes": {"source": "generated", "seed": 0},
    "warnings": [],
}


def write_report(
    root: Path,
    directories: list[Path],
    specs: list[dict] = (),
    summary: dict | None = None,
    real_figures: bool = True,
) -> Path:
    """root/results/report.html of these runs through the same functions the workflow's rules call:
    every figure drawn (or one small placeholder PNG for all with real_figures=False), the tables
    with their statistics, and a sweep figure per spec."""
    from mnist3d.plots import comparison as plots_comparison
    from mnist3d.plots import entry as plots_entry
    from mnist3d.plots import run as plots_run
    from mnist3d.plots import style as plotstyle
    from mnist3d.plots import sweep as plots_sweep
    from mnist3d.report import figures
    from mnist3d.report import render as report

    results = root / "results"
    sweeps = {entry: spec["name"] for spec in specs for entry in spec["entries"]}
    table, entries = tables_of(directories, sweeps)
    metrics.write_csv(table, results / "metrics.csv")
    metrics.write_csv(entries, results / "metrics_by_entry.csv")
    runs = [runfiles.read_metrics(directory / "metrics.json") for directory in directories]
    replicated = list(dict.fromkeys(run["entry"] for run in runs if run["replicate"] > 1))
    placeholder = results / "plots" / "placeholder.png"
    if not real_figures:
        plotstyle.save(plotstyle.message_figure("figure", "a placeholder"), placeholder)

    def figure(path: Path, draw) -> Path:
        if not real_figures:
            return placeholder
        draw(path)
        return path

    images = report.ReportImages()
    for run, directory in zip(runs, directories):
        outputs = {name: results / "plots" / "runs" / run["run"] / f"{name}.png" for name in figures.names("run")}
        if real_figures:
            plots_run.plot_run_files(
                directory / "metrics.json", directory / "history.csv", directory / "predictions.npz", outputs
            )
        images.runs[run["run"]] = {name: path if real_figures else placeholder for name, path in outputs.items()}
    for entry in replicated:
        own = [directory for run, directory in zip(runs, directories) if run["entry"] == entry]
        images.entries[entry] = figure(
            results / "plots" / "entries" / f"{entry}.png",
            lambda path, own=own, entry=entry: plots_entry.plot_entry_files(
                entry, [d / "metrics.json" for d in own], [d / "history.csv" for d in own], path
            ),
        )
    comparison = {name: results / "plots" / "comparison" / f"{name}.png" for name in figures.names("comparison")}
    if real_figures:
        plots_comparison.plot_comparison_files(
            results / "metrics.csv",
            [d / "metrics.json" for d in directories],
            [d / "history.csv" for d in directories],
            comparison,
            entries_path=results / "metrics_by_entry.csv",
        )
    images.comparison = {name: path if real_figures else placeholder for name, path in comparison.items()}
    for spec in specs:
        path = figure(
            results / "plots" / "sweeps" / f"{spec['name']}.png",
            lambda path, spec=spec: plots_sweep.plot_sweep_files(
                results / "metrics_by_entry.csv", results / "metrics.csv", spec, path
            ),
        )
        images.sweeps.append((spec, path))
    context = report.build_context(
        metrics.read_table(results / "metrics.csv"),
        metrics.read_entry_table(results / "metrics_by_entry.csv"),
        runs,
        summary if summary is not None else DATA_SUMMARY,
        images,
        split_sizes={"train": 6400, "validation": 1600, "test": 2000},
        metrics_csv=results / "metrics.csv",
        entries_csv=results / "metrics_by_entry.csv",
    )
    report.write_report(results / "report.html", context)
    return results / "report.html"
