"""The report's successive halving section: per halving sweep, how many combinations reached each
rung, its figure, each decision as a table, what it cost against the full grid, and which
combinations finished (their verdicts are the entry table's; a stopped run is never compared).

Reads the decisions the report rule is given (mnist3d.results.halving: one per rung but the last, and
per bracket where the sweep has several), never a folder's listing: a decision left over from an
earlier plan of the sweep is not shown. Plain strings, lists and dicts, as mnist3d.report.context.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnist3d.plots.halving import combination_label, sweep_decisions
from mnist3d.report import figures
from mnist3d.report.format import anchor, data_uri, fmt_accuracy, fmt_count, fmt_seconds, missing
from mnist3d.report.sections import verdict_class
from mnist3d.results.halving import MEASURE, sweep_summary
from mnist3d.runid import run_id

FIGURE = figures.figure("sweep_halving")
# A rung's decision table opens by itself up to this many rows; a longer one is a click away.
OPEN_ROWS = 12


def cost(plan: dict, summary: dict, decisions: list[dict], histories: dict[str, np.ndarray]) -> dict:
    """Epochs and training seconds the sweep spent, against the full grid's (every combination and
    replicate trained all `plan["epochs"]`). The epochs are the plan's (sweep_summary); the seconds are
    the runs' own, each rung's restart included (`histories`: run id -> history).

    The full grid's seconds are an estimate, and not the mean seconds per epoch x its epochs: the first
    epoch of each job carries the job's start-up (graph tracing), and most runs of a halving sweep trained
    only such epochs. So each run counts its first epoch as measured, and every later epoch at the median
    of this sweep's epochs that started no job (a run straight through starts once)."""
    starts = {1} | {int(decision["epoch"]) + 1 for decision in decisions}
    trained = {run: histories[run] for run in sweep_runs(plan) if len(histories.get(run, ()))}
    rows = [
        (int(epoch), float(seconds))
        for history in trained.values()
        for epoch, seconds in zip(history["epoch"], history["seconds"])
        if math.isfinite(seconds)
    ]
    spent = math.fsum(seconds for _, seconds in rows)
    steady = [seconds for epoch, seconds in rows if epoch not in starts] or [seconds for _, seconds in rows]
    later = float(np.median(steady)) if steady else math.nan
    firsts = {run: float(history["seconds"][0]) for run, history in trained.items()}
    usual_first = float(np.median(list(firsts.values()))) if firsts else math.nan
    estimate = math.fsum(firsts.get(run, usual_first) + (plan["epochs"] - 1) * later for run in sweep_runs(plan))
    epochs, full = summary["epochs"], summary["full_grid_epochs"]
    return {
        "epochs": fmt_count(epochs),
        "full_epochs": fmt_count(full),
        "epochs_share": _share(epochs, full),
        "seconds": fmt_seconds(spent),
        "full_seconds": fmt_seconds(estimate),
        "seconds_share": _share(spent, estimate),
        "later_epoch": f"{later:.2f} s" if math.isfinite(later) else "",
        "first_epoch": f"{usual_first:.2f} s" if math.isfinite(usual_first) else "",
    }


def _share(part: float, whole: float) -> str:
    return "" if missing(whole) or not whole else f"{100 * part / whole:.0f} %"


def sweep_runs(plan: dict) -> list[str]:
    return [run_id(entry, replicate) for entry in plan["entries"] for replicate in range(1, plan["replicates"] + 1)]


def combination_values(spec: dict, entry: str) -> list[str]:
    """"field=value" per varied field of a sweep's combination, for the page's chips; [entry] without a spec."""
    values = spec.get("entries", {}).get(entry)
    return [f"{field}={values[field]}" for field in spec["fields"] if field in values] if values else [entry]


def decision_rows(decision: dict, spec: dict, anchors: dict[str, str]) -> list[dict]:
    """A decision's combinations in rank order, as its file says them."""
    rows = []
    for line in decision["combinations"]:
        rows.append(
            {
                "rank": line["rank"],
                "entry": line["entry"],
                "label": combination_label(spec, line["entry"]),
                "values": combination_values(spec, line["entry"]),
                "anchor": anchors.get(line["entry"], ""),
                "measure": fmt_accuracy(line.get(MEASURE)),
                "val_loss": fmt_accuracy(line.get("val_loss")),
                "finished": f"{line['finished']} / {line['replicates']}",
                "verdict": line["verdict"],
                "reason": line["reason"],
            }
        )
    return rows


def reached(summary: dict) -> list[dict]:
    """How many combinations and runs reached each rung (sweep_summary), per bracket where it has
    several (titled only then)."""
    brackets = summary.get("brackets") or [{"bracket": 1, "rungs": summary["rungs"]}]
    return [
        {"title": f"Bracket {bracket['bracket']}" if len(brackets) > 1 else "", "rungs": bracket["rungs"]}
        for bracket in brackets
    ]


def _cutoff_text(cutoff: dict | None, spec: dict) -> str:
    return f"{fmt_accuracy(cutoff[MEASURE])} ({combination_label(spec, cutoff['entry'])})" if cutoff else ""


def bracket_blocks(decisions: list[dict], spec: dict, anchors: dict[str, str]) -> list[dict]:
    """The decisions grouped by bracket (titled only where there are several), a table per rung."""
    brackets: dict[int, list[dict]] = {}
    for decision in decisions:
        brackets.setdefault(int(decision.get("bracket", 1)), []).append(decision)
    blocks = []
    for bracket, own in brackets.items():
        rungs = []
        for decision in own:
            cutoff = decision.get("cutoff")
            rungs.append(
                {
                    "rung": decision["rung"],
                    "rungs": decision["rungs"],
                    "epoch": decision["epoch"],
                    "next_epoch": decision["next_epoch"],
                    "alive": decision["alive"],
                    "kept": len(decision["kept"]),
                    "measure": decision["measure"],
                    "cutoff": _cutoff_text(cutoff, spec),
                    "open": len(decision["combinations"]) <= OPEN_ROWS,
                    "rows": decision_rows(decision, spec, anchors),
                }
            )
        blocks.append({"title": f"Bracket {bracket}" if len(brackets) > 1 else "", "rungs": rungs})
    return blocks


def outcomes(plan: dict, spec: dict, table: pd.DataFrame, entries: pd.DataFrame, anchors: dict[str, str]) -> dict:
    """The sweep's combinations by how their runs ended: those that trained every epoch with their
    verdict from the entry table, and how many stopped or failed."""
    own = table[table["entry"].isin(plan["entries"])]
    by_entry = entries.set_index("entry")
    finished = []
    for entry in plan["entries"]:
        runs = own[own["entry"] == entry]
        if not (runs["status"] == "ok").any() or entry not in by_entry.index:
            continue
        row = by_entry.loc[entry]
        finished.append(
            {
                "key": -1.0 if missing(row.get("test_accuracy_mean")) else float(row["test_accuracy_mean"]),
                "entry": entry,
                "label": combination_label(spec, entry),
                "values": combination_values(spec, entry),
                "anchor": anchors.get(entry, ""),
                "mean": fmt_accuracy(row.get("test_accuracy_mean")),
                "verdict": str(row.get("verdict") or ""),
                "class": verdict_class(row),
            }
        )
    finished.sort(key=lambda item: item["key"], reverse=True)
    status = own.groupby("entry")["status"].agg(set)
    return {
        "finished": finished,
        "stopped": int(sum(statuses == {"stopped"} for statuses in status)),
        "failed": int(sum("failed" in statuses and "ok" not in statuses for statuses in status)),
        "stopped_runs": int((own["status"] == "stopped").sum()),
    }


def halving_sections(
    plans: list[dict],
    decisions: list[dict],
    specs: list[dict],
    histories: dict[str, np.ndarray],
    table: pd.DataFrame,
    entries: pd.DataFrame,
    anchors: dict[str, str],
    images: dict[str, str | Path],
) -> list[dict]:
    """A block per halving sweep (`plans`: HalvingPlan.as_param() each), from every sweep's
    `decisions`, the sweeps' `specs` (as rule plot_sweep gets them), the runs' `histories` (run id ->
    history), the metrics tables and the entries' anchors, and `images` (sweep -> its halving figure).
    """
    by_name = {spec["name"]: spec for spec in specs}
    result = []
    for index, plan in enumerate(plans):
        spec = by_name.get(plan["sweep"], {"name": plan["sweep"], "fields": [], "entries": {}})
        own = sweep_decisions(plan, decisions)
        summary = sweep_summary(plan, own)
        figure = images.get(plan["sweep"])
        replicates = plan["replicates"]
        result.append(
            {
                "name": plan["sweep"],
                "anchor": anchor("halving", plan["sweep"], index),
                "combinations": len(plan["entries"]),
                "replicates": replicates,
                "plural": "s" * (replicates != 1),
                "eta": plan["eta"],
                "epochs": plan["epochs"],
                "rung_epochs": ", ".join(map(str, plan["rungs"])),
                "reached": reached(summary),
                "cost": cost(plan, summary, own, histories),
                "uri": data_uri(figure) if figure else "",
                "title": FIGURE.title,
                "caption": figures.caption(FIGURE.key, sweep=plan["sweep"]),
                "brackets": bracket_blocks(own, spec, anchors),
                **outcomes(plan, spec, table, entries, anchors),
            }
        )
    return result
