"""The report's long parts: a block per entry with a collapsed section per run, and a block per sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mnist3d.config.names import ordered_labels
from mnist3d.report import figures
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
from mnist3d.results import effects
from mnist3d.results.stats import format_p

# The replicate band of an entry, named in its alt text.
BAND_TITLE = figures.figure("entry_replicates").title
PARALLEL = figures.figure("sweep_parallel")
# The status of a run that a halving decision stopped (mnist3d.results.runfiles.MEASURED_STATUSES), and the
# row class of an entry whose runs it stopped.
STOPPED = "stopped"
# Parameters that differ between runs of one entry only by design; not a setting worth comparing.
REPLICATE_PARAMS = {"seed"}
# Above this many entries, entry blocks start collapsed too, so the page is a list to scan, not a scroll.
OPEN_ENTRIES = 6


@dataclass
class ReportImages:
    """Paths of the PNGs the report embeds."""

    # Figures by their names in mnist3d.report.figures, per group.
    runs: dict[str, dict[str, str | Path]] = field(default_factory=dict)  # run id -> "run" figure name -> path
    entries: dict[str, str | Path] = field(default_factory=dict)  # replicated entry -> its "entry" figure
    comparison: dict[str, str | Path] = field(default_factory=dict)  # "comparison" figure name -> path
    digits: dict[str, str | Path] = field(default_factory=dict)  # "digits" figure name -> path
    sweeps: list[tuple[dict, str | Path]] = field(default_factory=list)  # (sweep spec, figure), in spec order
    sweep_parallel: dict[str, str | Path] = field(default_factory=dict)  # sweep name -> its "sweep_parallel" PNG
    # Not a figure: sweep name -> its results/sweeps/SWEEP-effects.csv (mnist3d.results.effects).
    sweep_effects: dict[str, str | Path] = field(default_factory=dict)
    # "digits" figure name -> its digits as a views file (mnist3d.plots.views), for the rotatable views.
    views: dict[str, str | Path] = field(default_factory=dict)
    halving: dict[str, str | Path] = field(default_factory=dict)  # halving sweep -> its "sweep_halving" PNG


def entry_params(entry_runs: list[dict]) -> list[dict]:
    """An entry's settings: the parameters its replicates share (seed shown as a range)."""
    params = entry_runs[0].get("params") or {}
    shown = []
    for name, value in params.items():
        if name in REPLICATE_PARAMS:
            seeds = [run.get("seed", (run.get("params") or {}).get(name)) for run in entry_runs]
            value = f"{min(seeds)}-{max(seeds)}" if len(set(seeds)) > 1 else seeds[0]
        shown.append({"name": name, "value": fmt_value(value)})
    return shown


def _run_facts(run: dict, row: pd.Series) -> list[tuple[str, str]]:
    halves = (fmt_accuracy(row["test_accuracy_unrotated"]), fmt_accuracy(row["test_accuracy_rotated"]))
    kept = f" ({fmt_count(row['best_epoch'])})" if not missing(row["best_epoch"]) else ""
    return [
        ("test accuracy", fmt_accuracy(row["test_accuracy"])),
        ("95 % interval (Wilson)", fmt_interval(row.get("test_accuracy_ci_low"), row.get("test_accuracy_ci_high"))),
        ("unrotated / rotated", " / ".join(value for value in halves if value)),
        ("test loss", fmt_accuracy(row["test_loss"])),
        ("best validation accuracy", fmt_accuracy(row["best_val_accuracy"])),
        ("epochs run (kept)", f"{fmt_count(row['epochs_run'])}{kept}"),
        ("training time", fmt_seconds(row["training_seconds"])),
        ("samples / s", fmt_count(row["samples_per_second"])),
        ("parameters", fmt_count(row["parameter_count"])),
        ("seed", fmt_value(run.get("seed"))),
        ("device", run.get("device") or ""),
    ]


def run_item(run: dict, row: pd.Series, images: ReportImages, best: str | None, anchors: dict[str, str]) -> dict:
    """One run's collapsed section: a one-line summary, its facts and its figures."""
    shown = images.runs.get(run["run"], {})
    run_figures = [
        {"title": figure.title, "uri": data_uri(shown[figure.name])}
        for figure in figures.group("run")
        if figure.name in shown
    ]
    return {
        "run": run["run"],
        "anchor": anchors[run["run"]],
        "ok": run.get("status") == "ok",
        # Stopped by a halving decision: measured where it stopped, never compared as finished.
        "stopped": run.get("stopped", "") if run.get("status") == "stopped" else "",
        "best": run["run"] == best,
        "error": run.get("error") or "",
        "test_accuracy": fmt_accuracy(row["test_accuracy"]),
        "facts": _run_facts(run, row),
        "figures": run_figures,
    }


def sections(
    runs: list[dict],
    table: pd.DataFrame,
    entries: pd.DataFrame,
    images: ReportImages,
    best: str | None,
    anchors: dict[str, str],
) -> list[dict]:
    """A block per entry, in the models file's order, with a collapsed section per run."""
    rows = table.set_index("run")
    summary = entries.set_index("entry")
    by_entry: dict[str, list[dict]] = {}
    for run in runs:
        by_entry.setdefault(run["entry"], []).append(run)
    result = []
    for index, (entry, entry_runs) in enumerate(by_entry.items()):
        stats = summary.loc[entry] if entry in summary.index else None
        band = images.entries.get(entry)
        items = [run_item(run, rows.loc[run["run"]], images, best, anchors) for run in entry_runs]
        replicated = stats is not None and stats["replicates"] > 1
        result.append(
            {
                "entry": entry,
                "anchor": anchor("entry", entry, index),
                "open": len(by_entry) <= OPEN_ENTRIES or any(item["best"] for item in items),
                "params": entry_params(entry_runs),
                "replicates": int(stats["replicates"]) if stats is not None else len(entry_runs),
                "replicates_ok": int(stats["replicates_ok"]) if stats is not None else 0,
                "mean": fmt_accuracy(stats["test_accuracy_mean"]) if replicated else "",
                "std": fmt_accuracy(stats["test_accuracy_std"]) if replicated else "",
                "interval": (
                    fmt_interval(stats.get("test_accuracy_ci_low"), stats.get("test_accuracy_ci_high"))
                    if stats is not None
                    else ""
                ),
                "verdict": str(stats.get("verdict") or "") if stats is not None else "",
                "band_uri": data_uri(band) if band else "",
                "band_alt": f"{entry}: {BAND_TITLE.lower()}",
                "runs": items,
            }
        )
    return result


def sweep_sections(
    images: ReportImages, entries: pd.DataFrame, ranked: list[str], anchors: dict[str, str], table: pd.DataFrame
) -> list[dict]:
    """A block per sweep: its figure, its varied fields with their values, and its entries ranked
    (those a halving decision stopped unranked, with what stopped them)."""
    summary = entries.set_index("entry")
    stopped = stopped_entries(table)
    result = []
    for index, (spec, path) in enumerate(images.sweeps):
        fields = list(spec["fields"])
        members = [entry for entry in ranked if entry in spec["entries"]]
        members += [entry for entry in spec["entries"] if entry not in members]
        rows = []
        for rank, entry in enumerate(members, start=1):
            stats = summary.loc[entry] if entry in summary.index else pd.Series(dtype=object)
            mean = stats.get("test_accuracy_mean")
            rows.append(
                {
                    "rank": rank if not missing(mean) and entry not in stopped else "",
                    "entry": entry,
                    "anchor": anchors.get(entry, ""),
                    "values": [spec["entries"][entry].get(name, "") for name in fields],
                    "mean": fmt_accuracy(mean),
                    "mean_key": sort_key(mean),
                    "interval": fmt_interval(stats.get("test_accuracy_ci_low"), stats.get("test_accuracy_ci_high")),
                    "replicates": f"{fmt_count(stats.get('replicates_ok'))} / {fmt_count(stats.get('replicates'))}",
                    "verdict": stopped_verdict(stopped[entry]) if entry in stopped else str(stats.get("verdict") or ""),
                    "best": stats.get("verdict") == "best",
                    "class": STOPPED if entry in stopped else verdict_class(stats),
                }
            )
        parallel = images.sweep_parallel.get(spec["name"])
        result.append(
            {
                "name": spec["name"],
                "anchor": anchor("sweep", spec["name"], index),
                "table_id": f"sweep-table-{index}",
                "fields": [
                    {"name": name, "values": ordered_labels(values[name] for values in spec["entries"].values())}
                    for name in fields
                ],
                "uri": data_uri(path),
                "rows": rows,
                "parallel_uri": data_uri(parallel) if parallel else "",
                "parallel_title": PARALLEL.title,
                "parallel_caption": figures.caption(PARALLEL.key, sweep=spec["name"]),
                "parallel": parallel_chart(fields, rows, summary),
                "effects": sweep_effects_block(images.sweep_effects.get(spec["name"])),
            }
        )
    return result


def sweep_effects_block(path: str | Path | None) -> dict | None:
    """The sweep's effects table (results/sweeps/SWEEP-effects.csv) as the page shows it: which model,
    each term with its share of the variance or its coefficient, p-value and verdict, and what the test
    assumes; None without the file."""
    if path is None:
        return None
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    models = set(frame["model"].dropna()) - {""}
    rows = [
        {
            "term": str(row["term"]),
            "share": "" if missing(row["share_of_variance"]) else f"{100 * float(row['share_of_variance']):.0f} %",
            "effect": "" if missing(row["coefficient"]) else
            f"{float(row['coefficient']):+.3f} [{float(row['ci_low']):+.3f}, {float(row['ci_high']):+.3f}]",
            "p_value": "" if missing(row["p_value"]) else format_p(float(row["p_value"])).removeprefix("p ").lstrip("= "),
            "verdict": str(row["verdict"]),
        }
        for _, row in frame.iterrows()
    ]
    return {
        "anova": effects.ANOVA in models,
        "model": effects.model_description(models),
        "rows": rows,
        "assumption": effects.ASSUMPTION,
    }


def stopped_entries(table: pd.DataFrame) -> dict[str, str]:
    """Entries none of whose runs finished and some of which a halving decision stopped, each with what
    stopped it ("stopped at epoch 1 (rung 1 of 3)", the runs table's `error` of a stopped run)."""
    found = {}
    for entry, runs in table.groupby("entry", sort=False):
        stopped = runs[runs["status"] == STOPPED]
        if len(stopped) and not (runs["status"] == "ok").any():
            found[str(entry)] = str(stopped["error"].iloc[0])
    return found


def stopped_verdict(text: str) -> str:
    """The verdict shown for a stopped entry: measured where it stopped, never compared."""
    return f"{text}: not compared"


def verdict_class(row: pd.Series) -> str:
    """The row class of an entry by its verdict: "best", "tied" (with the best), "failed" or "other"."""
    verdict = str(row.get("verdict") or "")
    if verdict == "best":
        return "best"
    if verdict == "no finished run":
        return "failed"
    return "tied" if str(row.get("tied_with_best")) == "True" else "other"


def parallel_chart(fields: list[str], rows: list[dict], summary: pd.DataFrame) -> dict:
    """What the page's parallel coordinates draw: the fields with their values in order, and a line
    per finished entry (back to front: the rest, the ties, the best), with what its hover shows."""
    lines = []
    for row in rows:
        if row["mean"] == "" or row["class"] == STOPPED:
            continue
        lines.append(
            {
                "entry": row["entry"],
                "values": row["values"],
                "mean": float(summary.loc[row["entry"], "test_accuracy_mean"]),
                "text": f"{row['mean']}" + (f" (95 % interval {row['interval']})" if row["interval"] else ""),
                "verdict": row["verdict"],
                "layer": row["class"] if row["class"] in ("best", "tied") else "other",
            }
        )
    order = {"other": 0, "tied": 1, "best": 2}
    lines.sort(key=lambda line: (order[line["layer"]], line["mean"]))
    labels = [
        {"name": name, "values": ordered_labels(row["values"][index] for row in rows)}
        for index, name in enumerate(fields)
    ]
    return {"fields": labels, "lines": lines}
