"""One tidy table of every training run (results/metrics.csv) and its per-entry summary.

Reads only the files each run leaves in its run directory (metrics.json, history.csv), so it needs
neither TensorFlow nor the trained models.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnist3d.atomic import atomic_path

# The seed notebook's bar charts average its curves "with the first 5 values skipped by default".
SKIPPED_EPOCHS = 5

IDENTITY_COLUMNS = ["run", "entry", "replicate", "status", "error", "seed"]
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
    "test_loss",
    "test_accuracy_unrotated",
    "test_accuracy_rotated",
]
ENVIRONMENT_COLUMNS = ["dataset", "device"]
ENTRY_COLUMNS = ["entry_replicates_ok", "entry_test_accuracy_mean", "entry_test_accuracy_std"]

# Counts: written as whole numbers, empty for a failed run.
INTEGER_MEASURES = ["parameter_count", "epochs_run", "best_epoch"]

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

HISTORY_COLUMNS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate"]


def read_metrics(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def read_history(path: str | Path) -> pd.DataFrame:
    """history.csv as a frame; a run that failed before its first epoch may leave only the header."""
    path = Path(path)
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    history = pd.read_csv(path)
    for column in HISTORY_COLUMNS:
        if column not in history:
            history[column] = np.nan
    return history.sort_values("epoch").reset_index(drop=True)


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
    """Mean of a per-epoch curve after its first `skip` epochs, as the seed's bar charts.

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


def run_row(metrics: dict, history: pd.DataFrame) -> dict:
    """One table row: identity, parameters and measures of a run; a failed run keeps its numbers empty."""
    ok = metrics.get("status") == "ok"
    params = dict(metrics.get("params") or {})
    row = {
        "run": metrics["run"],
        "entry": metrics["entry"],
        "replicate": int(metrics["replicate"]),
        "status": metrics.get("status", "failed"),
        "error": metrics.get("error") or "",
        "seed": metrics.get("seed", params.get("seed")),
    }
    for key, value in flatten_params(params).items():
        if key not in row:
            row[key] = value

    val_accuracy = history["val_accuracy"].to_numpy(dtype=float) if ok else np.array([])
    val_loss = history["val_loss"].to_numpy(dtype=float) if ok else np.array([])
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
        "test_accuracy": metrics.get("test_accuracy"),
        "test_loss": metrics.get("test_loss"),
        "test_accuracy_unrotated": metrics.get("test_accuracy_unrotated"),
        "test_accuracy_rotated": metrics.get("test_accuracy_rotated"),
    }
    for key, value in measures.items():
        row[key] = _number(value) if ok else math.nan
    row["dataset"] = metrics.get("dataset") or ""
    row["device"] = metrics.get("device") or ""
    return row


def _param_columns(rows: list[dict]) -> list[str]:
    fixed = set(IDENTITY_COLUMNS + MEASURE_COLUMNS + ENVIRONMENT_COLUMNS)
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in fixed and key not in columns:
                columns.append(key)
    return columns


def runs_table(runs: list[tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
    """One row per run, in the order given, with the entry's replicate mean and std of test accuracy."""
    rows = [run_row(metrics, history) for metrics, history in runs]
    columns = IDENTITY_COLUMNS + _param_columns(rows) + MEASURE_COLUMNS + ENVIRONMENT_COLUMNS
    table = pd.DataFrame(rows, columns=columns)
    for column in MEASURE_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    for column in INTEGER_MEASURES:
        table[column] = table[column].round().astype("Int64")
    table["replicate"] = table["replicate"].astype(int)

    grouped = table.groupby("entry", sort=False)["test_accuracy"]
    table["entry_replicates_ok"] = grouped.transform("count").astype(int)
    table["entry_test_accuracy_mean"] = grouped.transform("mean")
    table["entry_test_accuracy_std"] = grouped.transform(lambda values: values.std(ddof=1))
    return table


def load_runs_table(metrics_paths, history_paths) -> pd.DataFrame:
    """The table from each run's metrics.json and history.csv (two lists in the same run order)."""
    metrics_paths, history_paths = list(metrics_paths), list(history_paths)
    if len(metrics_paths) != len(history_paths):
        raise ValueError(f"{len(metrics_paths)} metrics files but {len(history_paths)} histories")
    return runs_table([(read_metrics(m), read_history(h)) for m, h in zip(metrics_paths, history_paths)])


def entry_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per entry: replicates (all, ok) and mean, std (ddof=1), min and max of each summarised measure.

    An entry with one successful replicate has an empty std; one with none has empty measures.
    """
    grouped = table.astype({measure: float for measure in SUMMARISED_MEASURES}).groupby("entry", sort=False)
    summary = pd.DataFrame(
        {
            "replicates": grouped.size(),
            "replicates_ok": grouped["status"].apply(lambda status: int((status == "ok").sum())),
        }
    )
    for measure in SUMMARISED_MEASURES:
        values = grouped[measure]
        summary[f"{measure}_mean"] = values.mean()
        summary[f"{measure}_std"] = values.std(ddof=1)
        summary[f"{measure}_min"] = values.min()
        summary[f"{measure}_max"] = values.max()
    return summary.reset_index()


def best_run(table: pd.DataFrame) -> str | None:
    """Id of the successful run with the highest test accuracy (ties: lower test loss, then table order)."""
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    if ok.empty:
        return None
    ranked = ok.assign(_order=range(len(ok))).sort_values(
        ["test_accuracy", "test_loss", "_order"], ascending=[False, True, True], na_position="last"
    )
    return str(ranked.iloc[0]["run"])


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    """CSV with empty cells for missing numbers, replacing `path` only once fully written."""
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, na_rep="", float_format="%.6g")


def read_table(path: str | Path) -> pd.DataFrame:
    """results/metrics.csv back as written: empty cells are NaN, except the error text ('')."""
    table = _read_csv(path, ("run", "entry", "status", "error"))
    table["error"] = table["error"].fillna("")
    return table


def read_entry_table(path: str | Path) -> pd.DataFrame:
    """results/metrics_by_entry.csv back as written."""
    return _read_csv(path, ("entry",))


def _read_csv(path: str | Path, text_columns: tuple[str, ...]) -> pd.DataFrame:
    # Only empty cells are missing, and names stay text: entries called "064", "1e-3", "None" or
    # "NA" are valid run names, which pandas would otherwise read as 64, 0.001 or NaN.
    return pd.read_csv(path, dtype={column: str for column in text_columns}, keep_default_na=False,
                       na_values=[""])


def aggregate(metrics_paths, history_paths, table_path: str | Path, entries_path: str | Path) -> pd.DataFrame:
    """Write results/metrics.csv (one row per run) and the per-entry summary beside it."""
    table = load_runs_table(metrics_paths, history_paths)
    write_csv(table, table_path)
    write_csv(entry_table(table), entries_path)
    return table
