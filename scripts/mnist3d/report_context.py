"""Everything results/report.html shows, as plain strings, lists and dicts (no HTML): testable
without rendering. The headline and the verdicts come from mnist3d.stats; the ranking of runs and
entries from mnist3d.metrics, so the page, the tables and the charts agree on who is best."""

from __future__ import annotations

import datetime as _datetime
from pathlib import Path

import pandas as pd

from mnist3d import stats
from mnist3d.metrics import best_run, ranked_entries, ranked_runs
from mnist3d.report_data import data_context, environment_context
from mnist3d.report_format import (
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
from mnist3d.report_sections import REPLICATE_PARAMS, ReportImages, sections, sweep_sections

COMPARISON_FIGURES = (
    (
        "test_accuracy",
        "Test accuracy per entry",
        "Bars: mean over replicates with its 95 % interval (dark green the best entry, light green the entries "
        "tied with it, grey the rest); dots: each replicate; triangles: the unrotated and rotated halves of the "
        "test set, where the data marks them.",
    ),
    (
        "accuracy_curves",
        "Accuracy curves of every run",
        "Validation solid, training dashed; the best entries in colour, named in the legend with their mean test "
        "accuracy, every other run a faint grey validation curve.",
    ),
    (
        "loss_curves",
        "Loss curves of every run",
        "As the accuracy curves; the axis is cut at the 98th percentile so one diverging run does not flatten "
        "the rest.",
    ),
    (
        "measure_bars",
        "Time, validation accuracy and validation loss",
        "Averages over the epochs after the fifth (all epochs for runs of 5 or fewer), as in the notebook's bar "
        "charts; runs ranked as in the results table.",
    ),
    (
        "grouped_by_time",
        "The same measures, fastest run first",
        "The notebook's grouped chart: does a longer training buy accuracy?",
    ),
    (
        "time_vs_accuracy",
        "Test accuracy against training time",
        "Runs on the dashed edge are the best accuracy available for their training time.",
    ),
)
DIGIT_FIGURES = (("examples", "What the data looks like"), ("misclassified", "What the best run gets wrong"))


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
        accuracy = row["test_accuracy"]
        rows.append(
            {
                "rank": rank if ok else "",
                "run": run,
                "anchor": anchors.get(run, ""),
                "entry": row["entry"],
                "best": run == best,
                "ok": ok,
                "status": row["status"],
                "error": row["error"] if not missing(row["error"]) else "",
                "test_accuracy": fmt_accuracy(accuracy),
                "interval": fmt_interval(row.get("test_accuracy_ci_low"), row.get("test_accuracy_ci_high")),
                "bar_width": f"{100 * accuracy / top:.1f}" if ok and not missing(accuracy) else "0",
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


def _verdict_class(row: pd.Series) -> str:
    verdict = str(row.get("verdict") or "")
    if verdict == "best":
        return "best"
    if verdict == "no finished run":
        return "failed"
    return "tied" if str(row.get("tied_with_best")) == "True" else "other"


def entry_rows(table: pd.DataFrame, entries: pd.DataFrame, anchors: dict[str, str]) -> list[dict]:
    """The entry table in the tables' ranking: mean test accuracy with its interval, and the verdict
    of the test against the best entry."""
    summary = entries.set_index("entry")
    rows = []
    for rank, entry in enumerate(ranked_entries(table), start=1):
        if entry not in summary.index:
            continue
        row = summary.loc[entry]
        finished = not missing(row["test_accuracy_mean"])
        p_value = row.get("vs_best_p_value")
        rows.append(
            {
                "rank": rank if finished else "",
                "entry": entry,
                "anchor": anchors.get(entry, ""),
                "sweep": "" if missing(row.get("sweep")) else str(row.get("sweep")),
                "replicates": f"{fmt_count(row['replicates_ok'])} / {fmt_count(row['replicates'])}",
                "mean": fmt_accuracy(row["test_accuracy_mean"]),
                "std": fmt_accuracy(row["test_accuracy_std"]),
                "interval": fmt_interval(row.get("test_accuracy_ci_low"), row.get("test_accuracy_ci_high")),
                "p_value": "" if missing(p_value) else stats.format_p(float(p_value)).removeprefix("p ").lstrip("= "),
                "test": stats.TEST_NAMES.get(str(row.get("vs_best_test") or ""), ""),
                "verdict": str(row.get("verdict") or ""),
                "class": _verdict_class(row),
                "sort": {
                    "rank": str(rank) if finished else "",
                    "replicates": sort_key(row["replicates_ok"]),
                    **_row_keys(
                        row, ["test_accuracy_mean", "test_accuracy_std", "test_accuracy_ci_low", "vs_best_p_value"]
                    ),
                },
            }
        )
    return rows


TEST_USE = {
    stats.WELCH: "Welch's t-test on the replicates' test accuracies (entries with 3 or more finished replicates)",
    stats.MCNEMAR: "McNemar's exact test on the paired test predictions of the entries' best runs",
}


def _names(items: list[dict], limit: int = 8) -> str:
    shown = [f"{item['entry']} ({stats.format_p(item['p_value'])}, {stats.TEST_NAMES[item['test']]})" for item in items]
    extra = f" and {len(shown) - limit} more (see the entry table)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + extra


def headline(table: pd.DataFrame, entries: pd.DataFrame, best: str | None, data: dict) -> dict:
    """The answer first: the best entry with its interval, the entries the tests cannot tell from it,
    the tests used, and the best run's own numbers."""
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    failed = table[table["status"] != "ok"]
    facts = stats.headline(entries)
    summary = {
        "runs": len(table),
        "ok": len(ok),
        "failed": len(failed),
        "failed_runs": failed["run"].tolist(),
        "best": best,
        "best_entry": facts["best_entry"],
        "tied": [item["entry"] for item in facts["tied"]],
        "tests": [stats.TEST_NAMES[test] for test in facts["tests"]],
        "captions": facts["captions"],
        "sentences": [],
    }
    if best is None or facts["best_entry"] is None:
        summary["sentences"].append("No run finished training, so there is no model to recommend yet.")
        return summary
    row = table.set_index("run").loc[best]
    replicates = facts["best_replicates"]
    summary.update(
        {
            "mean": fmt_accuracy(facts["best_mean"]),
            "interval": fmt_interval(facts["best_ci_low"], facts["best_ci_high"]),
            "replicates": replicates,
            "test_accuracy": fmt_accuracy(row["test_accuracy"]),
            "unrotated": fmt_accuracy(row["test_accuracy_unrotated"]),
            "rotated": fmt_accuracy(row["test_accuracy_rotated"]),
            "training_time": fmt_seconds(row["training_seconds"]),
        }
    )
    what = "mean test accuracy" if replicates > 1 else "test accuracy"
    sentences = [
        f"{facts['best_entry']} has the highest {what}: {summary['mean']} (95 % interval {summary['interval']}, "
        f"{replicates} finished replicate{'s' if replicates != 1 else ''})."
    ]
    if facts["tied"]:
        count = len(facts["tied"])
        sentences.append(
            f"The tests cannot tell it apart from {count} other entr{'y' if count == 1 else 'ies'}: "
            f"{_names(facts['tied'])}. Treat {'these' if count > 1 else 'both'} as equally good on this test set."
        )
    elif facts["below"]:
        sentences.append("Every other entry tested is below it (p < 0.05).")
    if facts["above"]:
        sentences.append(
            f"Best runs that beat its best run although their entry's mean is lower: {_names(facts['above'])}."
        )
    if facts["tests"]:
        sentences.append(
            "Compared with "
            + " and with ".join(TEST_USE[test] for test in facts["tests"])
            + "; the note under the entry table says what each assumes."
        )
    untested = [item["entry"] for item in facts["not_compared"]]
    if untested:
        sentences.append(f"Not compared with it: {', '.join(untested)} (see their verdicts).")
    halves = ""
    if not missing(row["test_accuracy_rotated"]):
        halves = f" ({summary['unrotated']} on the unrotated half, {summary['rotated']} on the rotated noisy half)"
    sentences.append(f"Its best run, {best}, scores {summary['test_accuracy']} on the test set{halves}.")
    total = table["training_seconds"].sum(min_count=1)
    sentences.append(
        f"{len(ok)} of {len(table)} runs finished"
        + (f" ({len(failed)} failed, listed below)" if len(failed) else "")
        + (f"; training took {fmt_seconds(total)} in total" if not missing(total) else "")
        + f", on the {data.get('source', 'unknown')} data set."
    )
    summary["sentences"] = sentences
    return summary


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
) -> dict:
    """Everything the report shows.

    `table` and `entries` are results/metrics.csv and results/metrics_by_entry.csv as read by
    mnist3d.metrics, `runs` the runs' metrics.json records in the models file's order,
    `data_summary` results/data/summary.json, `images.sweeps` each sweep's spec with its figure.
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
        "entries": entry_rows(table, entries, entry_anchors),
        "failed": [
            {"run": run["run"], "anchor": anchors[run["run"]], "error": run.get("error") or "no error message recorded"}
            for run in runs
            if run.get("status") != "ok"
        ],
        "comparison": [
            {"name": name, "title": title_, "caption": caption, "uri": data_uri(images.comparison[name])}
            for name, title_, caption in COMPARISON_FIGURES
            if name in images.comparison
        ],
        "digits": {
            name: {"title": title_, "uri": data_uri(images.digits[name])}
            for name, title_ in DIGIT_FIGURES
            if name in images.digits
        },
        "sweeps": sweep_sections(images, entries, ranked_entries(table), entry_anchors),
        "data": data,
        "sections": blocks,
        "environment": environment_context(runs),
        "metrics_csv_uri": data_uri(metrics_csv, "text/csv") if metrics_csv else "",
        "entries_csv_uri": data_uri(entries_csv, "text/csv") if entries_csv else "",
    }
