"""results/metrics.csv from run directories written in the contract's format.

The helpers `write_run` and `write_runs` are shared with test_plots.py and test_report.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnist3d import metrics
from mnist3d.runconfig import OPTIONAL_DEFAULTS

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
        history = pd.DataFrame(columns=metrics.HISTORY_COLUMNS)
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


def test_mean_after_5_skips_the_first_five_epochs():
    assert metrics.mean_after([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8]) == pytest.approx(0.7)


def test_mean_after_5_uses_every_epoch_of_a_short_run():
    assert metrics.mean_after([0.2, 0.4, 0.6]) == pytest.approx(0.4)
    assert metrics.mean_after([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.3)
    assert math.isnan(metrics.mean_after([]))


def test_row_per_run_with_curve_measures(tmp_path):
    run = write_run(
        tmp_path,
        "seed_example",
        history=history_of([0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.7], val_loss=[2, 2, 2, 2, 2, 0.5, 0.7]),
    )
    table = table_of([run])
    row = table.iloc[0]
    assert row["run"] == "seed_example/rep1"
    assert row["status"] == "ok"
    assert row["final_val_accuracy"] == pytest.approx(0.7)
    assert row["best_val_accuracy"] == pytest.approx(0.9)
    assert row["mean_val_accuracy_after_5"] == pytest.approx(0.8)
    assert row["mean_val_loss_after_5"] == pytest.approx(0.6)
    assert row["epochs_run"] == 7
    assert row["filters"] == "16-32-64"
    assert row["dense"] == 256
    assert row["parameter_count"] == 1234567


def test_columns_are_stable_and_ordered(tmp_path):
    table = table_of(write_runs(tmp_path, 3, failed=1))
    columns = list(table.columns)
    assert columns[:6] == metrics.IDENTITY_COLUMNS
    assert columns[-len(metrics.ENTRY_COLUMNS) :] == metrics.ENTRY_COLUMNS
    for name in metrics.MEASURE_COLUMNS + list(PARAMS):
        assert name in columns
    assert columns.index("lr_schedule") < columns.index("parameter_count")


def test_replicate_mean_and_std(tmp_path):
    directories = [write_run(tmp_path, "wide", replicate, level=0.7 + 0.05 * replicate) for replicate in (1, 2, 3)]
    directories.append(write_run(tmp_path, "single", 1))
    table = table_of(directories)
    wide = table[table["entry"] == "wide"]
    values = wide["test_accuracy"].to_numpy()
    assert wide["entry_test_accuracy_mean"].tolist() == pytest.approx([values.mean()] * 3)
    assert wide["entry_test_accuracy_std"].tolist() == pytest.approx([values.std(ddof=1)] * 3)
    assert (wide["entry_replicates_ok"] == 3).all()
    single = table[table["entry"] == "single"].iloc[0]
    assert math.isnan(single["entry_test_accuracy_std"])

    entries = metrics.entry_table(table).set_index("entry")
    assert entries.loc["wide", "replicates"] == 3
    assert entries.loc["wide", "test_accuracy_mean"] == pytest.approx(values.mean())
    assert entries.loc["wide", "test_accuracy_std"] == pytest.approx(values.std(ddof=1))
    assert entries.loc["wide", "test_accuracy_min"] == pytest.approx(values.min())
    assert math.isnan(entries.loc["single", "test_accuracy_std"])


def test_failed_run_keeps_its_error_and_empty_numbers(tmp_path):
    ok = write_run(tmp_path, "good", 1)
    bad = write_run(tmp_path, "broken", 1, failed="ResourceExhaustedError: out of memory")
    table = table_of([ok, bad])
    row = table.set_index("run").loc["broken/rep1"]
    assert row["status"] == "failed"
    assert row["error"] == "ResourceExhaustedError: out of memory"
    for column in metrics.MEASURE_COLUMNS:
        assert pd.isna(row[column]), column
    assert row["filters"] == "16-32-64"
    assert metrics.best_run(table) == "good/rep1"

    path = tmp_path / "results" / "metrics.csv"
    metrics.write_csv(table, path)
    written = pd.read_csv(path, keep_default_na=False).set_index("run")
    assert written.loc["broken/rep1", "test_accuracy"] == ""
    assert written.loc["broken/rep1", "parameter_count"] == ""
    assert written.loc["good/rep1", "parameter_count"] == "1234567"
    assert written.loc["broken/rep1", "error"] == "ResourceExhaustedError: out of memory"


def test_failed_run_with_a_partial_history_has_no_curve_measures(tmp_path):
    run = write_run(tmp_path, "broken", 1, failed="killed")
    history_of([0.3, 0.4]).to_csv(run / "history.csv", index=False)
    row = table_of([run]).iloc[0]
    assert pd.isna(row["best_val_accuracy"]) and pd.isna(row["mean_val_accuracy_after_5"])


def test_unknown_rotation_leaves_the_split_empty(tmp_path):
    table = table_of([write_run(tmp_path, "real", 1, rotation_known=False)])
    assert pd.isna(table.iloc[0]["test_accuracy_rotated"])
    assert table.iloc[0]["test_accuracy"] > 0


def test_best_run_breaks_ties_on_loss(tmp_path):
    table = table_of(write_runs(tmp_path, 3))
    table["test_accuracy"] = 0.8
    table["test_loss"] = [0.9, 0.5, 0.7]
    assert metrics.best_run(table) == table.iloc[1]["run"]


def test_csv_is_replaced_atomically(tmp_path):
    table = table_of(write_runs(tmp_path, 2))
    path = tmp_path / "metrics.csv"
    path.write_text("old")
    metrics.write_csv(table, path)
    assert pd.read_csv(path)["run"].tolist() == table["run"].tolist()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_entry_names_that_look_like_numbers_or_missing_values_stay_names(tmp_path):
    names = ["064", "None", "1e-3", "NA"]
    table = table_of([write_run(tmp_path, name) for name in names])
    metrics.write_csv(table, tmp_path / "metrics.csv")
    metrics.write_csv(metrics.entry_table(table), tmp_path / "metrics_by_entry.csv")
    read_back = metrics.read_table(tmp_path / "metrics.csv")
    assert read_back["entry"].tolist() == names
    assert read_back["run"].tolist() == [f"{name}/rep1" for name in names]
    assert read_back["error"].tolist() == [""] * 4
    assert sorted(metrics.read_entry_table(tmp_path / "metrics_by_entry.csv")["entry"]) == sorted(names)
    assert read_back["test_accuracy"].notna().all()


def test_flatten_params():
    flat = metrics.flatten_params({"filters": [8, 16], "kernels": [[3, 3, 1]], "schedule": {"kind": "cosine"}})
    assert flat == {"filters": "8-16", "kernels": "3x3x1", "schedule.kind": "cosine"}
