"""Everything results/report.html shows, as plain strings, lists and dicts (no HTML): testable
without rendering. The verdicts come from mnist3d.results.stats and the headline's words from
mnist3d.report.wording; the ranking of runs and entries from mnist3d.results.metrics, so the page,
the tables and the charts agree on who is best. Figure titles and captions come from
mnist3d.report.figures, the table that the rules' `snakemake --report` captions come from too."""

from __future__ import annotations

import datetime as _datetime
import json
from pathlib import Path

import pandas as pd

from mnist3d.plots.frontier import COSTS, cheapest_tied, entry_costs
from mnist3d.report import figures
from mnist3d.report.data import data_context, environment_context
from mnist3d.report.format import (
    anchor,
    data_uri,
    fmt_accuracy,
    fmt_count,
    fmt_interval,
    fmt_seconds,
    fmt_value,
    missing,
    sort_key,
)
from mnist3d.report.halving import halving_sections
from mnist3d.report.sections import (
    REPLICATE_PARAMS,
    STOPPED,
    ReportImages,
    sections,
    stopped_entries,
    stopped_verdict,
    sweep_sections,
    verdict_class,
)
from mnist3d.report.wording import headline
from mnist3d.results import stats
from mnist3d.results.metrics import best_run, ranked_entries, ranked_runs


def varying_params(runs: list[dict]) -> dict[str, str]:
    """Parameters whose value differs between runs (the levers being compared), each with its most
    common value (the first seen on a tie), in parameter order."""
    names: list[str] = []
    for run in runs:
        for name in run.get("params") or {}:
            if name not in names and name not in REPLICATE_PARAMS:
                names.append(name)
    usual = {}
    for name in names:
        values = [fmt_value((run.get("params") or {}).get(name)) for run in runs]
        if len(set(values)) > 1:
            usual[name] = max(dict.fromkeys(values), key=values.count)
    return usual


def unusual_settings(params: dict, usual: dict[str, str]) -> list[str]:
    """'name=value' for each compared parameter where this run departs from the most common value."""
    shown = []
    for name, common in usual.items():
        value = fmt_value(params.get(name))
        if value != common:
            shown.append(f"{name}={value}")
    return shown


def _row_keys(row: pd.Series, columns: list[str]) -> dict[str, str]:
    return {column: sort_key(row.get(column)) for column in columns}


def table_rows(
    table: pd.DataFrame, runs_by_id: dict[str, dict], usual: dict[str, str], best: str | None, anchors: dict[str, str]
) -> list[dict]:
    """The metrics table in the tables' ranking (failed runs last); numbers formatted, raw values kept
    for sorting, and as settings each parameter where the run departs from the most common value."""
    rows = []
    finite = table["test_accuracy"].dropna()
    top = float(finite.max()) if len(finite) else 1.0
    numbers = [
        "test_accuracy",
        "test_accuracy_ci_low",
        "test_accuracy_unrotated",
        "test_accuracy_rotated",
        "test_loss",
        "best_val_accuracy",
        "mean_val_accuracy_after_5",
        "mean_val_loss_after_5",
        "training_seconds",
        "epochs_run",
        "parameter_count",
    ]
    for rank, (_, row) in enumerate(ranked_runs(table).iterrows(), start=1):
        run = row["run"]
        params = (runs_by_id.get(run) or {}).get("params") or {}
        ok = row["status"] == "ok"
        stopped = row["status"] == STOPPED
        accuracy = row["test_accuracy"]
        rows.append(
            {
                "rank": rank if ok else "",
                "run": run,
                "anchor": anchors.get(run, ""),
                "entry": row["entry"],
                "best": run == best,
                "ok": ok,
                "stopped": stopped,
                "status": row["status"],
                "error": row["error"] if not missing(row["error"]) else "",
                "test_accuracy": fmt_accuracy(accuracy),
                "interval": fmt_interval(row.get("test_accuracy_ci_low"), row.get("test_accuracy_ci_high")),
                "bar_width": f"{100 * accuracy / top:.1f}" if (ok or stopped) and not missing(accuracy) else "0",
                "unrotated": fmt_accuracy(row["test_accuracy_unrotated"]),
                "rotated": fmt_accuracy(row["test_accuracy_rotated"]),
                "test_loss": fmt_accuracy(row["test_loss"]),
                "best_val_accuracy": fmt_accuracy(row["best_val_accuracy"]),
                "mean_val_accuracy_after_5": fmt_accuracy(row["mean_val_accuracy_after_5"]),
                "mean_val_loss_after_5": fmt_accuracy(row["mean_val_loss_after_5"]),
                "training_time": fmt_seconds(row["training_seconds"]),
                "epochs": fmt_count(row["epochs_run"]),
                "parameter_count": fmt_count(row["parameter_count"]),
                "settings": unusual_settings(params, usual),
                "sort": {"rank": str(rank) if ok else "", **_row_keys(row, numbers)},
            }
        )
    return rows


def _p_text(value) -> str:
    return "" if missing(value) else stats.format_p(float(value)).removeprefix("p ").lstrip("= ")


def entry_rows(
    table: pd.DataFrame, entries: pd.DataFrame, anchors: dict[str, str], specs: list[dict] = ()
) -> list[dict]:
    """The entry table in the tables' ranking: mean test accuracy with its interval, and the verdict
    of the test against the best entry. A sweep's entry is shown by its sweep and varied values
    (`values`), which say what its long name says in a third of the width. An entry a halving decision
    stopped is unranked, with none of its replicates finished, and says where it stopped."""
    summary = entries.set_index("entry")
    stopped = stopped_entries(table)
    varied = {entry: (spec["name"], values) for spec in specs for entry, values in spec["entries"].items()}
    rows = []
    for rank, entry in enumerate(ranked_entries(table), start=1):
        if entry not in summary.index:
            continue
        row = summary.loc[entry]
        finished = not missing(row["test_accuracy_mean"]) and entry not in stopped
        sweep, values = varied.get(entry, ("" if missing(row.get("sweep")) else str(row.get("sweep")), {}))
        rows.append(
            {
                "rank": rank if finished else "",
                "entry": entry,
                "anchor": anchors.get(entry, ""),
                "sweep": sweep,
                "values": [f"{name}={value}" for name, value in values.items()],
                "replicates": f"{0 if entry in stopped else fmt_count(row['replicates_ok'])} / "
                f"{fmt_count(row['replicates'])}",
                "mean": fmt_accuracy(row["test_accuracy_mean"]),
                "std": fmt_accuracy(row["test_accuracy_std"]),
                "interval": fmt_interval(row.get("test_accuracy_ci_low"), row.get("test_accuracy_ci_high")),
                "p_value": _p_text(row.get("vs_best_p_value")),
                # Holm-adjusted p (mnist3d.results.stats); absent from tables written before it existed.
                "p_adjusted": _p_text(row.get("vs_best_p_adjusted")),
                "test": stats.TEST_NAMES.get(str(row.get("vs_best_test") or ""), ""),
                "verdict": stopped_verdict(stopped[entry]) if entry in stopped else str(row.get("verdict") or ""),
                "class": STOPPED if entry in stopped else verdict_class(row),
                "sort": {
                    "rank": str(rank) if finished else "",
                    "replicates": sort_key(0 if entry in stopped else row["replicates_ok"]),
                    **_row_keys(
                        row,
                        [
                            "test_accuracy_mean",
                            "test_accuracy_std",
                            "test_accuracy_ci_low",
                            "vs_best_p_value",
                            "vs_best_p_adjusted",
                        ],
                    ),
                },
            }
        )
    return rows


def cost_sentences(table: pd.DataFrame, entries: pd.DataFrame) -> list[str]:
    """The summary's words on cost: the cheapest entry tied with the best, by training time and by
    parameters, and the Pareto-optimal entries (mnist3d.plots.frontier, as the cost figure marks them)."""
    frame = entry_costs(table, entries)
    if len(frame) < 2 or not (frame["verdict"] == "best").any():
        return []
    sentences = []
    for cost, (lead, comparative, best_too, fmt) in {
        "seconds": ("Cheapest", "faster to train", "the fastest to train", fmt_seconds),
        "parameters": ("Smallest", "fewer parameters", "the smallest", fmt_count),
    }.items():
        cheapest = cheapest_tied(frame, cost)
        if cheapest is None or int(frame["tied"].sum()) < 2:
            continue
        ratio = cheapest["ratio"]
        if cheapest["is_best"] or ratio < 1.05:
            sentences.append(f"The best entry is also {best_too} of the entries tied with it.")
            continue
        times = f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"
        sentences.append(
            f"{lead} entry tied with the best: {cheapest['entry']}, {times} {comparative} "
            f"({fmt(cheapest['cost'])} against {fmt(cheapest['best_cost'])})."
        )
    for cost, name in COSTS.items():
        optimal = frame.loc[frame[f"pareto_{cost}"], "entry"].tolist()
        if optimal:
            shown = ", ".join(optimal[:8]) + (f" and {len(optimal) - 8} more" if len(optimal) > 8 else "")
            sentences.append(f"Pareto-optimal on {name} (no other entry both cheaper and more accurate): {shown}.")
    return sentences


def build_context(
    table: pd.DataFrame,
    entries: pd.DataFrame,
    runs: list[dict],
    data_summary: dict,
    images: ReportImages,
    *,
    split_sizes: dict | None = None,
    metrics_csv: str | Path | None = None,
    entries_csv: str | Path | None = None,
    title: str = "3D MNIST: which 3D CNN classifies best",
    now: _datetime.datetime | None = None,
    halving: list[dict] = (),
    decisions: list[dict] = (),
    histories: dict | None = None,
) -> dict:
    """Everything the report shows.

    `table` and `entries` are results/metrics.csv and results/metrics_by_entry.csv as read by
    mnist3d.results.metrics, `runs` the runs' metrics.json records in the models file's order,
    `data_summary` results/data/summary.json, `images.sweeps` each sweep's spec with its figure.
    `halving` has each halving sweep's plan (HalvingPlan.as_param()), `decisions` every decision of
    them (mnist3d.results.halving) and `histories` each run's history by run id (for the time spent).
    """
    best = best_run(table)
    anchors = {run["run"]: anchor("run", run["run"], index) for index, run in enumerate(runs)}
    usual = varying_params(runs)
    runs_by_id = {run["run"]: run for run in runs}
    data = data_context(data_summary, split_sizes)
    blocks = sections(runs, table, entries, images, best, anchors)
    entry_anchors = {block["entry"]: block["anchor"] for block in blocks}
    now = now or _datetime.datetime.now()
    return {
        "title": title,
        "generated": now.strftime("%Y-%m-%d %H:%M"),
        "summary": headline(table, entries, best, data),
        "best": best,
        "best_anchor": anchors.get(best, ""),
        "levers": [{"name": name, "usual": value} for name, value in usual.items()],
        "table": table_rows(table, runs_by_id, usual, best, anchors),
        "entries": entry_rows(table, entries, entry_anchors, [spec for spec, _ in images.sweeps]),
        "adjusted": "vs_best_p_adjusted" in entries,
        "adjustment": getattr(stats, "ADJUSTMENT", ""),
        "cost": cost_sentences(table, entries),
        "failed": [
            {"run": run["run"], "anchor": anchors[run["run"]], "error": run.get("error") or "no error message recorded"}
            for run in runs
            if run.get("status") == "failed"
        ],
        "comparison": [
            {
                "name": figure.name,
                "title": figure.title,
                "caption": figures.caption(figure.key),
                "uri": data_uri(images.comparison[figure.name]),
            }
            for figure in figures.group("comparison")
            if figure.name in images.comparison
        ],
        "digits": {
            figure.name: {
                "title": figure.title,
                "caption": figures.caption(figure.key),
                "uri": data_uri(images.digits[figure.name]),
            }
            for figure in figures.group("digits")
            if figure.name in images.digits
        },
        "sweeps": sweep_sections(images, entries, ranked_entries(table), entry_anchors, table),
        "halving": halving_sections(
            list(halving),
            list(decisions),
            [spec for spec, _ in images.sweeps],
            histories or {},
            table,
            entries,
            entry_anchors,
            images.halving,
        ),
        "views": {name: json.loads(Path(path).read_text()) for name, path in images.views.items()},
        "data": data,
        "sections": blocks,
        "environment": environment_context(runs),
        "metrics_csv_uri": data_uri(metrics_csv, "text/csv") if metrics_csv else "",
        "entries_csv_uri": data_uri(entries_csv, "text/csv") if entries_csv else "",
    }
