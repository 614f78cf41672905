"""results/report.html: one self-contained page that says which model is best, by how much, and why.

`build_context` gathers and formats everything the page shows (testable without rendering);
`render` fills the Jinja2 template (autoescaped); `write_report` writes the file atomically.
Images are embedded as base64 data URIs and the styles are inline, so the page opens from disk or
as an e-mail attachment with no network.
"""

from __future__ import annotations

import base64
import datetime as _datetime
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from mnist3d.atomic import write_text
from mnist3d.metrics import best_run, read_entry_table, read_metrics, read_table

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"

RUN_FIGURES = (
    ("curves", "Learning curves"),
    ("confusion", "Confusion matrix"),
    ("per_class", "Accuracy per digit"),
)
COMPARISON_FIGURES = (
    (
        "test_accuracy",
        "Test accuracy per entry",
        "Bars: mean over replicates; dots: each replicate; triangles: the "
        "unrotated and rotated halves of the test set, where the data marks them.",
    ),
    (
        "accuracy_curves",
        "Accuracy curves of every run",
        "Validation solid, training dashed; one colour per entry, " "legend ordered by test accuracy.",
    ),
    (
        "loss_curves",
        "Loss curves of every run",
        "Validation solid, training dashed; the axis is cut at the 98th "
        "percentile so one diverging run does not flatten the rest.",
    ),
    (
        "measure_bars",
        "Time, validation accuracy and validation loss",
        "Averages over the epochs after the fifth (all "
        "epochs for runs of 5 or fewer), as in the seed notebook's bar charts; runs ranked by test accuracy.",
    ),
    (
        "grouped_by_time",
        "The same measures, fastest run first",
        "The seed notebook's grouped chart: does a longer " "training buy accuracy?",
    ),
    (
        "time_vs_accuracy",
        "Test accuracy against training time",
        "Runs on the dashed edge are the best accuracy " "available for their training time.",
    ),
)
DIGIT_FIGURES = (("examples", "What the data looks like"), ("misclassified", "What the best run gets wrong"))

# Parameters that differ between runs of one entry only by design; not a setting worth comparing.
REPLICATE_PARAMS = {"seed"}


@dataclass
class ReportImages:
    """Paths of the PNGs the report embeds."""

    runs: dict[str, dict[str, str | Path]] = field(default_factory=dict)  # run id -> figure name -> path
    entries: dict[str, str | Path] = field(default_factory=dict)  # replicated entry -> band figure
    comparison: dict[str, str | Path] = field(default_factory=dict)  # COMPARISON_FIGURES name -> path
    digits: dict[str, str | Path] = field(default_factory=dict)  # DIGIT_FIGURES name -> path


def data_uri(path: str | Path, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode('ascii')}"


# ----------------------------------------------------------------------------------------------
# Formatting: the template shows strings only, so every number is rounded the same way everywhere.


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt_accuracy(value) -> str:
    return "" if _missing(value) else f"{float(value):.3f}"


def fmt_points(value) -> str:
    """A difference of accuracies in percentage points."""
    return "" if _missing(value) else f"{100 * float(value):.1f} points"


def fmt_seconds(value) -> str:
    if _missing(value):
        return ""
    seconds = float(value)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def fmt_count(value) -> str:
    return "" if _missing(value) else f"{int(value):,}"


def fmt_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(item) for item in value)
    return "" if _missing(value) else str(value)


def anchor(prefix: str, name: str, index: int) -> str:
    """An HTML id from any name: only safe characters, unique through the index."""
    return f"{prefix}-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40]


# ----------------------------------------------------------------------------------------------
# Pieces of the context


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


def _size_rows(summary: dict, split_sizes: dict | None) -> list[dict]:
    """Sizes as a reader asks for them: what the file holds, and how training used it."""
    splits = summary.get("splits") or {}
    rows = []
    for name in ("train", "test"):
        split = splits.get(name) or {}
        if "samples" not in split:
            continue
        text = fmt_count(split["samples"])
        if split.get("rotated_samples") is not None:
            text += f" (of which {fmt_count(split['rotated_samples'])} rotated copies)"
        if split.get("source_digits") is not None:
            text += f", made from {fmt_count(split['source_digits'])} source digits"
        rows.append({"name": f"{name} grids in the file", "value": text})
        if name == "train" and split_sizes and "validation" in split_sizes:
            rows.append(
                {
                    "name": "used for training / validation",
                    "value": f"{fmt_count(split_sizes['train'])} / {fmt_count(split_sizes['validation'])}",
                }
            )
    return rows


def data_context(summary: dict, split_sizes: dict | None = None) -> dict:
    """The data set section: source, sizes, class balance (as bar widths) and the file's attributes."""
    summary = summary or {}
    splits = summary.get("splits") or {}
    balance = []
    counts = {name: (splits.get(name) or {}).get("class_counts") or {} for name in ("train", "test")}
    largest = max([int(n) for c in counts.values() for n in c.values()] or [1])
    for digit in range(10):
        row = {"digit": digit}
        for name in ("train", "test"):
            count = int(counts[name].get(str(digit), 0))
            row[name] = fmt_count(count)
            row[f"{name}_width"] = f"{100 * count / largest:.1f}"
        balance.append(row)
    value_range = summary.get("value_range") or []
    attributes = summary.get("attributes") or {}
    return {
        "source": summary.get("source", "unknown"),
        "file": summary.get("file", ""),
        "generated": summary.get("source") == "generated",
        "sizes": _size_rows(summary, split_sizes),
        "balance": balance,
        "value_range": " to ".join(f"{float(v):g}" for v in value_range),
        "nonzero_share": {
            name: f"{100 * split['nonzero_share']:.1f}%"
            for name, split in splits.items()
            if split.get("nonzero_share") is not None
        },
        "attributes": [{"name": str(k), "value": fmt_value(v)} for k, v in attributes.items() if k != "source"],
    }


def _ranked_rows(table: pd.DataFrame) -> pd.DataFrame:
    ok = table[table["status"] == "ok"].sort_values(
        ["test_accuracy", "test_loss"], ascending=[False, True], na_position="last", kind="stable"
    )
    return pd.concat([ok, table[table["status"] != "ok"]])


def table_rows(
    table: pd.DataFrame, runs_by_id: dict[str, dict], usual: dict[str, str], best: str | None, anchors: dict[str, str]
) -> list[dict]:
    """The metrics table, best first, failed runs last; numbers formatted, and as settings each
    parameter where the run departs from the most common value ('name=value')."""
    rows = []
    finite = table["test_accuracy"].dropna()
    top = float(finite.max()) if len(finite) else 1.0
    for rank, (_, row) in enumerate(_ranked_rows(table).iterrows(), start=1):
        run = row["run"]
        params = (runs_by_id.get(run) or {}).get("params") or {}
        ok = row["status"] == "ok"
        rows.append(
            {
                "rank": rank if ok else "",
                "run": run,
                "anchor": anchors.get(run, ""),
                "entry": row["entry"],
                "best": run == best,
                "ok": ok,
                "status": row["status"],
                "error": row["error"] if not _missing(row["error"]) else "",
                "test_accuracy": fmt_accuracy(row["test_accuracy"]),
                "bar_width": (
                    f"{100 * row['test_accuracy'] / top:.1f}" if ok and not _missing(row["test_accuracy"]) else "0"
                ),
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
            }
        )
    return rows


def headline(table: pd.DataFrame, entries: pd.DataFrame, best: str | None, data: dict) -> dict:
    """The answer first: the best run, its margin over the next-best entry, and how sure that is."""
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    failed = table[table["status"] != "ok"]
    facts = {
        "runs": len(table),
        "ok": len(ok),
        "failed": len(failed),
        "failed_runs": failed["run"].tolist(),
        "best": best,
        "sentences": [],
    }
    if best is None:
        facts["sentences"].append("No run finished training, so there is no model to recommend yet.")
        return facts
    row = table.set_index("run").loc[best]
    facts.update(
        {
            "best_entry": row["entry"],
            "test_accuracy": fmt_accuracy(row["test_accuracy"]),
            "unrotated": fmt_accuracy(row["test_accuracy_unrotated"]),
            "rotated": fmt_accuracy(row["test_accuracy_rotated"]),
            "training_time": fmt_seconds(row["training_seconds"]),
        }
    )
    sentences = []
    others = ok[ok["entry"] != row["entry"]].sort_values("test_accuracy", ascending=False)
    if len(others):
        runner = others.iloc[0]
        margin = row["test_accuracy"] - runner["test_accuracy"]
        facts["margin"] = fmt_points(margin)
        facts["runner_up"] = runner["run"]
        facts["runner_up_accuracy"] = fmt_accuracy(runner["test_accuracy"])
        weakest = ok.sort_values("test_accuracy").iloc[0]
        sentence = (
            f"{best} has the highest test accuracy, {fmt_accuracy(row['test_accuracy'])}: "
            f"{fmt_points(margin)} above the best run of any other entry ({runner['run']}, "
            f"{fmt_accuracy(runner['test_accuracy'])})"
        )
        if weakest["entry"] != runner["entry"]:
            sentence += (
                f" and {fmt_points(row['test_accuracy'] - weakest['test_accuracy'])} above the weakest "
                f"({weakest['run']}, {fmt_accuracy(weakest['test_accuracy'])})"
            )
        sentences.append(sentence + ".")
    else:
        sentences.append(f"{best} has the highest test accuracy, {fmt_accuracy(row['test_accuracy'])}.")

    if not _missing(row["test_accuracy_rotated"]):
        sentences.append(
            f"On the unrotated half of the test set it scores {fmt_accuracy(row['test_accuracy_unrotated'])}, "
            f"on the rotated noisy half {fmt_accuracy(row['test_accuracy_rotated'])}."
        )
    summary = entries.set_index("entry")
    replicated = summary[summary["replicates_ok"] > 1]
    if len(replicated):
        top = replicated.sort_values("test_accuracy_mean", ascending=False).iloc[0]
        sentences.append(
            f"Of the entries trained with several seeds, {top.name} is best on average: "
            f"{fmt_accuracy(top['test_accuracy_mean'])} ± {fmt_accuracy(top['test_accuracy_std'])} (std over "
            f"{int(top['replicates_ok'])} seeds); differences smaller than about twice that spread may be luck."
        )
        if row["entry"] in replicated.index and top.name != row["entry"]:
            own = replicated.loc[row["entry"]]
            sentences.append(
                f"The best single run's entry, {row['entry']}, averages {fmt_accuracy(own['test_accuracy_mean'])} "
                f"± {fmt_accuracy(own['test_accuracy_std'])}."
            )
    total = table["training_seconds"].sum(min_count=1)
    sentences.append(
        f"{len(ok)} of {len(table)} runs finished"
        + (f" ({len(failed)} failed, listed below)" if len(failed) else "")
        + (f"; training took {fmt_seconds(total)} in total" if not _missing(total) else "")
        + f", on the {data.get('source', 'unknown')} data set."
    )
    facts["sentences"] = sentences
    return facts


def environment_context(runs: list[dict]) -> dict:
    """Devices and library versions the runs used; several values are listed when runs differ."""
    devices: dict[str, int] = {}
    versions: dict[str, dict[str, int]] = {}
    for run in runs:
        if run.get("device"):
            devices[run["device"]] = devices.get(run["device"], 0) + 1
        for name, version in (run.get("versions") or {}).items():
            versions.setdefault(name, {})
            versions[name][str(version)] = versions[name].get(str(version), 0) + 1
    return {
        "devices": [{"name": name, "runs": count} for name, count in devices.items()],
        "versions": [
            {"name": name, "value": ", ".join(found) if len(found) > 1 else next(iter(found))}
            for name, found in versions.items()
        ],
    }


def _entry_params(entry_runs: list[dict]) -> list[dict]:
    """An entry's settings: the parameters its replicates share (seed shown as a range)."""
    params = entry_runs[0].get("params") or {}
    shown = []
    for name, value in params.items():
        if name in REPLICATE_PARAMS:
            seeds = [run.get("seed", (run.get("params") or {}).get(name)) for run in entry_runs]
            value = f"{min(seeds)}-{max(seeds)}" if len(set(seeds)) > 1 else seeds[0]
        shown.append({"name": name, "value": fmt_value(value)})
    return shown


def sections(
    runs: list[dict],
    table: pd.DataFrame,
    entries: pd.DataFrame,
    images: ReportImages,
    best: str | None,
    anchors: dict[str, str],
    open_all: bool,
) -> list[dict]:
    """A section per entry, in the models file's order, with a sub-section per run."""
    rows = table.set_index("run")
    summary = entries.set_index("entry")
    by_entry: dict[str, list[dict]] = {}
    for run in runs:
        by_entry.setdefault(run["entry"], []).append(run)
    result = []
    for index, (entry, entry_runs) in enumerate(by_entry.items()):
        stats = summary.loc[entry] if entry in summary.index else None
        band = images.entries.get(entry)
        items = []
        for run in entry_runs:
            row = rows.loc[run["run"]]
            ok = run.get("status") == "ok"
            figures = [
                {"title": title, "uri": data_uri(images.runs[run["run"]][name])}
                for name, title in RUN_FIGURES
                if name in images.runs.get(run["run"], {})
            ]
            items.append(
                {
                    "run": run["run"],
                    "anchor": anchors[run["run"]],
                    "ok": ok,
                    "best": run["run"] == best,
                    "open": open_all or run["run"] == best or not ok,
                    "error": run.get("error") or "",
                    "facts": [
                        ("test accuracy", fmt_accuracy(row["test_accuracy"])),
                        (
                            "unrotated / rotated",
                            " / ".join(
                                v
                                for v in (
                                    fmt_accuracy(row["test_accuracy_unrotated"]),
                                    fmt_accuracy(row["test_accuracy_rotated"]),
                                )
                                if v
                            ),
                        ),
                        ("test loss", fmt_accuracy(row["test_loss"])),
                        ("best validation accuracy", fmt_accuracy(row["best_val_accuracy"])),
                        (
                            "epochs run (kept)",
                            f"{fmt_count(row['epochs_run'])}"
                            + (f" ({fmt_count(row['best_epoch'])})" if not _missing(row["best_epoch"]) else ""),
                        ),
                        ("training time", fmt_seconds(row["training_seconds"])),
                        ("samples / s", fmt_count(row["samples_per_second"])),
                        ("parameters", fmt_count(row["parameter_count"])),
                        ("seed", fmt_value(run.get("seed"))),
                        ("device", run.get("device") or ""),
                    ],
                    "figures": figures,
                }
            )
        replicated = stats is not None and stats["replicates"] > 1
        result.append(
            {
                "entry": entry,
                "anchor": anchor("entry", entry, index),
                "params": _entry_params(entry_runs),
                "replicates": int(stats["replicates"]) if stats is not None else len(entry_runs),
                "replicates_ok": int(stats["replicates_ok"]) if stats is not None else 0,
                "mean": fmt_accuracy(stats["test_accuracy_mean"]) if replicated else "",
                "std": fmt_accuracy(stats["test_accuracy_std"]) if replicated else "",
                "band_uri": data_uri(band) if band else "",
                "runs": items,
            }
        )
    return result


def build_context(
    table: pd.DataFrame,
    entries: pd.DataFrame,
    runs: list[dict],
    data_summary: dict,
    images: ReportImages,
    *,
    split_sizes: dict | None = None,
    metrics_csv: str | Path | None = None,
    title: str = "3D MNIST: which 3D CNN classifies best",
    now: _datetime.datetime | None = None,
) -> dict:
    """Everything the report shows, as plain strings, lists and dicts (no HTML).

    `table` and `entries` come from mnist3d.metrics (runs_table, entry_table), `runs` are the runs'
    metrics.json records in the models file's order, `data_summary` is results/data/summary.json.
    """
    best = best_run(table)
    anchors = {run["run"]: anchor("run", run["run"], index) for index, run in enumerate(runs)}
    usual = varying_params(runs)
    runs_by_id = {run["run"]: run for run in runs}
    data = data_context(data_summary, split_sizes)
    now = now or _datetime.datetime.now()
    return {
        "title": title,
        "generated": now.strftime("%Y-%m-%d %H:%M"),
        "summary": headline(table, entries, best, data),
        "best": best,
        "best_anchor": anchors.get(best, ""),
        "levers": [{"name": name, "usual": value} for name, value in usual.items()],
        "table": table_rows(table, runs_by_id, usual, best, anchors),
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
        "data": data,
        "sections": sections(runs, table, entries, images, best, anchors, open_all=len(runs) <= 6),
        "environment": environment_context(runs),
        "metrics_csv_uri": data_uri(metrics_csv, "text/csv") if metrics_csv else "",
    }


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(context: dict) -> str:
    return environment().get_template(TEMPLATE).render(**context)


def write_report(path: str | Path, context: dict) -> None:
    write_text(path, render(context))


def split_sizes_from_prepared(prepared) -> dict:
    """Rows in each split of results/data/prepared.npz (y arrays only; the grids are not loaded)."""
    return {
        name: int(len(prepared[f"y_{key}"]))
        for name, key in (("train", "train"), ("validation", "val"), ("test", "test"))
    }


def write_report_from_files(
    output: str | Path,
    *,
    table_path,
    entries_path,
    summary_path,
    prepared_path,
    metrics_paths,
    images: ReportImages,
) -> None:
    """results/report.html from the workflow's files (what the Snakemake adapter calls)."""
    table = read_table(table_path)
    entries = read_entry_table(entries_path)
    runs = [read_metrics(path) for path in metrics_paths]
    summary = json.loads(Path(summary_path).read_text())
    with np.load(prepared_path) as prepared:
        sizes = split_sizes_from_prepared(prepared)
    context = build_context(table, entries, runs, summary, images, split_sizes=sizes, metrics_csv=table_path)
    write_report(output, context)
