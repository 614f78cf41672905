"""results/metrics.csv from run directories written in the contract's format (tests/rundirs.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from mnist3d import metrics
from rundirs import PARAMS, history_of, table_of, write_run, write_runs


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
