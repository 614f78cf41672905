"""One tidy table of every training run (results/metrics.csv) and its per-entry summary.

Reads only the files each run leaves in its run directory (metrics.json, history.csv, and y_true/y_pred
of predictions.npz), so it needs neither TensorFlow nor the trained models. The intervals, tests and
verdicts come from mnist3d.results.stats, whose docstring explains every statistics column. Runs and entries
are ranked in one place: `ranked_runs`, `ranked_entries` and `best_run` below.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnist3d.atomic import atomic_path
from mnist3d.results import stats
from mnist3d.results.runfiles import MEASURED_STATUSES, read_history, read_metrics, read_predictions

# The notebook's bar charts average its curves "with the first 5 values skipped by default".
SKIPPED_EPOCHS = 5

IDENTITY_COLUMNS = ["run", "entry", "sweep", "replicate", "status", "error", "seed"]
MEASURE_COLUMNS = [
    "parameter_count",
    "training_seconds",
    "samples_per_second",
    "epochs_run",
    "best_epoch",
    "final_val_accuracy",
    "best_val_accuracy",
    "mean_val_accuracy_after_5",
    "mean_val_loss_after_5",
    "test_accuracy",
    "test_samples",
    "test_accuracy_ci_low",
    "test_accuracy_ci_high",
    "test_loss",
    "test_accuracy_unrotated",
    "test_accuracy_rotated",
]
ENVIRONMENT_COLUMNS = ["dataset", "device", "gpu_slot"]
ENTRY_COLUMNS = ["entry_replicates_ok", "entry_test_accuracy_mean", "entry_test_accuracy_std"]

# Counts: written as whole numbers, empty for a failed run.
INTEGER_MEASURES = ["parameter_count", "epochs_run", "best_epoch", "test_samples"]

# Measures summarised per entry across its replicates in the entry table.
SUMMARISED_MEASURES = [
    "test_accuracy",
    "test_accuracy_unrotated",
    "test_accuracy_rotated",
    "test_loss",
    "best_val_accuracy",
    "mean_val_accuracy_after_5",
    "mean_val_loss_after_5",
    "training_seconds",
    "epochs_run",
]


def history_frame(path: str | Path) -> pd.DataFrame:
    """history.csv (runfiles.read_history) as a frame; a run that failed before its first epoch may
    leave only the header."""
    return pd.DataFrame(read_history(path))


def flatten_value(value):
    """A parameter as one table cell: lists become '16-32-64' (nested lists '3x3x3'), the rest as is."""
    if isinstance(value, (list, tuple)):
        return "-".join(
            "x".join(str(part) for part in item) if isinstance(item, (list, tuple)) else str(item) for item in value
        )
    return value


def flatten_params(params: dict, prefix: str = "") -> dict:
    """Nested parameter mappings become 'outer.inner' keys."""
    flat = {}
    for key, value in (params or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = flatten_value(value)
    return flat


def mean_after(values, skip: int = SKIPPED_EPOCHS) -> float:
    """Mean of a per-epoch curve after its first `skip` epochs, as the notebook's bar charts.

    A run with `skip` epochs or fewer (a short test run, or one that stopped early) is averaged over all
    its epochs rather than reported as empty; a run with no epochs gives NaN.
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan
    tail = values[skip:] if values.size > skip else values
    return float(tail.mean())


def _number(value) -> float:
    return math.nan if value is None else float(value)


# A run's test predictions, as the paired test needs them: (y_true, y_pred).
Predictions = tuple[np.ndarray, np.ndarray]


def run_row(metrics: dict, history: pd.DataFrame, test_samples: int | None = None, sweep: str = "") -> dict:
    """One table row: identity, parameters and measures of a run; a failed run keeps its numbers empty.

    `test_samples` is the size of the test set its accuracy was measured on (for its Wilson interval).
    """
    # A run a halving decision stopped has its numbers at the epoch it stopped; it is no failure, but
    # never compared as if complete (`finished` keeps to "ok").
    ok = metrics.get("status") in MEASURED_STATUSES
    params = dict(metrics.get("params") or {})
    row = {
        "run": metrics["run"],
        "entry": metrics["entry"],
        "sweep": sweep,
        "replicate": int(metrics["replicate"]),
        "status": metrics.get("status", "failed"),
        "error": metrics.get("error") or metrics.get("stopped") or "",
        "seed": metrics.get("seed", params.get("seed")),
    }
    for key, value in flatten_params(params).items():
        if key not in row:
            row[key] = value

    val_accuracy = history["val_accuracy"].to_numpy(dtype=float) if ok else np.array([])
    val_loss = history["val_loss"].to_numpy(dtype=float) if ok else np.array([])
    accuracy = _number(metrics.get("test_accuracy"))
    low, high = stats.wilson_interval(accuracy, test_samples)
    measures = {
        "parameter_count": metrics.get("parameter_count"),
        "training_seconds": metrics.get("training_seconds"),
        "samples_per_second": metrics.get("samples_per_second"),
        "epochs_run": metrics.get("epochs_run"),
        "best_epoch": metrics.get("best_epoch"),
        "final_val_accuracy": val_accuracy[-1] if val_accuracy.size else None,
        "best_val_accuracy": np.nanmax(val_accuracy) if val_accuracy.size else None,
        "mean_val_accuracy_after_5": mean_after(val_accuracy),
        "mean_val_loss_after_5": mean_after(val_loss),
        "test_accuracy": accuracy,
        "test_samples": test_samples,
        "test_accuracy_ci_low": low,
        "test_accuracy_ci_high": high,
        "test_loss": metrics.get("test_loss"),
        "test_accuracy_unrotated": metrics.get("test_accuracy_unrotated"),
        "test_accuracy_rotated": metrics.get("test_accuracy_rotated"),
    }
    for key, value in measures.items():
        row[key] = _number(value) if ok else math.nan
    row["dataset"] = metrics.get("dataset") or ""
    row["device"] = metrics.get("device") or ""
    row["gpu_slot"] = metrics.get("gpu_slot") or ""
    return row


def _param_columns(rows: list[dict]) -> list[str]:
    fixed = set(IDENTITY_COLUMNS + MEASURE_COLUMNS + ENVIRONMENT_COLUMNS)
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in fixed and key not in columns:
                columns.append(key)
    return columns


def _test_samples(metrics: dict, predictions: dict[str, Predictions] | None) -> int | None:
    if predictions is None or metrics.get("status") not in MEASURED_STATUSES:
        return None
    samples = len(predictions[metrics["run"]][0])
    if samples == 0:
        raise ValueError(f"run {metrics['run']} finished but its predictions.npz holds no test grids (y_true)")
    return samples


def runs_table(
    runs: list[tuple[dict, pd.DataFrame]],
    predictions: dict[str, Predictions] | None = None,
    sweeps: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per run, in the order given, with the entry's replicate mean and std of test accuracy.

    `predictions` (run id -> y_true, y_pred) give the test set's size and so the Wilson intervals
    (empty without them); `sweeps` maps an entry to the sweep it was expanded from.
    """
    rows = [
        run_row(metrics, history, _test_samples(metrics, predictions), (sweeps or {}).get(metrics["entry"], ""))
        for metrics, history in runs
    ]
    columns = IDENTITY_COLUMNS + _param_columns(rows) + MEASURE_COLUMNS + ENVIRONMENT_COLUMNS
    table = pd.DataFrame(rows, columns=columns)
    for column in MEASURE_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    for column in INTEGER_MEASURES:
        table[column] = table[column].round().astype("Int64")
    table["replicate"] = table["replicate"].astype(int)

    grouped = table.groupby("entry", sort=False)["test_accuracy"]
    table["entry_replicates_ok"] = _finished_mask(table).groupby(table["entry"], sort=False).transform("sum").astype(int)
    table["entry_test_accuracy_mean"] = grouped.transform("mean")
    table["entry_test_accuracy_std"] = grouped.transform(lambda values: values.std(ddof=1))
    return table


def load_runs_table(metrics_paths, history_paths, predictions_paths=None, sweeps=None) -> pd.DataFrame:
    """The table from each run's metrics.json, history.csv and (optional) predictions.npz, lists in
    the same run order; see `runs_table` for `sweeps`."""
    return _load(metrics_paths, history_paths, predictions_paths, sweeps)[0]


def _load(metrics_paths, history_paths, predictions_paths, sweeps):
    metrics_paths, history_paths = list(metrics_paths), list(history_paths)
    if len(metrics_paths) != len(history_paths):
        raise ValueError(f"{len(metrics_paths)} metrics files but {len(history_paths)} histories")
    runs = [(read_metrics(m), history_frame(h)) for m, h in zip(metrics_paths, history_paths)]
    predictions = None
    if predictions_paths is not None:
        predictions_paths = list(predictions_paths)
        if len(predictions_paths) != len(metrics_paths):
            raise ValueError(f"{len(metrics_paths)} metrics files but {len(predictions_paths)} predictions files")
        predictions = {record["run"]: read_predictions(path) for (record, _), path in zip(runs, predictions_paths)}
    return runs_table(runs, predictions, sweeps), predictions


def _finished_mask(table: pd.DataFrame) -> pd.Series:
    # Stopped runs (halving) have a test accuracy too, at the epoch they stopped: not finished.
    return (table["status"] == "ok") & table["test_accuracy"].notna()


def _finished(table: pd.DataFrame) -> pd.DataFrame:
    return table[_finished_mask(table)]


def ranked_runs(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table best first: finished runs by test accuracy (ties: lower test loss, then table
    order), then every other run in table order."""
    finished = _finished(table)
    return pd.concat([stats.rank(finished, "test_accuracy", "test_loss"), table.drop(index=finished.index)])


def ranked_entries(table: pd.DataFrame) -> list[str]:
    """Entry names best first: by mean test accuracy over finished replicates (ties: lower mean test
    loss, then first appearance in the table); entries with no finished run last, in table order.
    Takes the runs table (metrics.csv); the first entry is the best entry of the statistics columns."""
    finished = _finished(table)
    grouped = table[["entry"]].assign(
        accuracy=finished["test_accuracy"].astype(float), loss=finished["test_loss"].astype(float)
    ).groupby("entry", sort=False)
    return [str(entry) for entry in stats.rank(grouped.mean(), "accuracy", "loss").index]


def entry_best_runs(table: pd.DataFrame) -> dict[str, str]:
    """Entry -> its best finished run (same ranking as `ranked_runs`); entries with none are absent."""
    best = {}
    for _, row in ranked_runs(_finished(table)).iterrows():
        best.setdefault(str(row["entry"]), str(row["run"]))
    return best


def best_run(table: pd.DataFrame) -> str | None:
    """Id of the best entry's best run, or None when no run finished.

    With replicates this need not be the single highest test accuracy: an entry whose replicates
    average lower is not made best by one lucky seed."""
    entries = ranked_entries(table)
    return entry_best_runs(table).get(entries[0]) if entries else None


def entry_table(table: pd.DataFrame, predictions: dict[str, Predictions] | None = None) -> pd.DataFrame:
    """Per entry: its sweep, replicates (all, finished: status ok with a test accuracy) and mean, std
    (ddof=1), min and max of each summarised measure, the 95 % interval of the mean test accuracy and
    the comparison with the best entry (mnist3d.results.stats; `predictions` as in `runs_table`, needed for
    McNemar's test).

    An entry with one finished replicate has an empty std; one with none has empty measures.
    """
    grouped = table.astype({measure: float for measure in SUMMARISED_MEASURES}).groupby("entry", sort=False)
    summary = pd.DataFrame(
        {
            "sweep": grouped["sweep"].first() if "sweep" in table else "",
            "replicates": grouped.size(),
            "replicates_ok": _finished_mask(table).groupby(table["entry"], sort=False).sum(),
        }
    )
    for measure in SUMMARISED_MEASURES:
        values = grouped[measure]
        summary[f"{measure}_mean"] = values.mean()
        summary[f"{measure}_std"] = values.std(ddof=1)
        summary[f"{measure}_min"] = values.min()
        summary[f"{measure}_max"] = values.max()
        if measure == "test_accuracy":  # its interval and verdict beside its mean
            _add_statistics(summary, table, predictions)
    return summary.reset_index()


def _add_statistics(summary: pd.DataFrame, table: pd.DataFrame, predictions: dict[str, Predictions] | None) -> None:
    accuracies = {
        entry: rows["test_accuracy"].to_numpy(dtype=float) for entry, rows in _finished(table).groupby("entry")
    }
    best_runs = entry_best_runs(table)
    rows = table.set_index("run")
    ranked = ranked_entries(table)
    best = ranked[0] if ranked and ranked[0] in best_runs else None
    paired = {entry: (predictions or {}).get(run) for entry, run in best_runs.items()}
    intervals = {}
    for entry in summary.index:
        single = best_runs.get(entry)
        single_interval = (
            (rows.at[single, "test_accuracy_ci_low"], rows.at[single, "test_accuracy_ci_high"]) if single else None
        )
        intervals[entry] = stats.entry_interval(accuracies.get(entry, []), single_interval)
    comparisons = stats.compare_all(best, accuracies, paired, entries=summary.index)
    summary["test_accuracy_ci_low"] = [intervals[entry][0] for entry in summary.index]
    summary["test_accuracy_ci_high"] = [intervals[entry][1] for entry in summary.index]
    for column in stats.COMPARISON_COLUMNS:
        summary[column] = [comparisons[entry][column] for entry in summary.index]


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    """CSV with empty cells for missing numbers, replacing `path` only once fully written."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, na_rep="", float_format="%.6g")


# Text columns: read as written, a missing one as "".
RUN_TEXT_COLUMNS = ("run", "entry", "sweep", "status", "error", "gpu_slot")
ENTRY_TEXT_COLUMNS = ("entry", "sweep", "vs_best_test", "verdict")


def read_table(path: str | Path) -> pd.DataFrame:
    """results/metrics.csv back as written: empty cells are NaN, except in text columns ('')."""
    return _read_csv(path, RUN_TEXT_COLUMNS)


def read_entry_table(path: str | Path) -> pd.DataFrame:
    """results/metrics_by_entry.csv back as written."""
    return _read_csv(path, ENTRY_TEXT_COLUMNS)


def _read_csv(path: str | Path, text_columns: tuple[str, ...]) -> pd.DataFrame:
    # Only empty cells are missing, and names stay text: entries called "064", "1e-3", "None" or
    # "NA" are valid run names, which pandas would otherwise read as 64, 0.001 or NaN.
    table = pd.read_csv(path, dtype={column: str for column in text_columns}, keep_default_na=False, na_values=[""])
    for column in text_columns:
        if column in table and column not in ("run", "entry"):
            table[column] = table[column].fillna("")
    return table


def aggregate(
    metrics_paths, history_paths, predictions_paths, table_path: str | Path, entries_path: str | Path, sweeps=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write results/metrics.csv (one row per run) and the per-entry summary beside it.

    The three path lists name each run's metrics.json, history.csv and predictions.npz in the same
    order; `sweeps` maps entries expanded from a sweep to its name. Returns (runs, entries) tables.
    """
    table, predictions = _load(metrics_paths, history_paths, predictions_paths, sweeps)
    entries = entry_table(table, predictions)
    write_csv(table, table_path)
    write_csv(entries, entries_path)
    return table, entries
