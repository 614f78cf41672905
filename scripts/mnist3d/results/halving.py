"""Successive halving's decisions: which combinations of a sweep go on after a rung, and why.

A decision (results/sweeps/SWEEP/rung-K.json, one per rung but the last; with Hyperband brackets,
bracket B's are results/sweeps/SWEEP/bracket-B/rung-K.json) is a pure function of the bracket's plan
and the rung records of the combinations alive at rung K (mnist3d.results.rungs): the same records
give the same file, whatever order the runs finished in.

Decisions, and why:
- The measure is the validation accuracy at exactly the rung's epoch, the mean over a combination's
  finished replicates; never a test measure (the test set is for the final evaluation only).
- Ties go to the lower validation loss, then to the name; a combination none of whose replicates
  finished counts last and never goes on (it would only fail again at the next rung).
- The best ceil(n / eta) of the n alive go on (mnist3d.config.halving.keep_count); each
  combination's line says its rank, its measure, the cut-off and why it was kept or stopped, so a
  person can check the decision without reading code.
- Brackets share the runs' states: a run trains as far as the furthest of its brackets takes it,
  finishes when any of them keeps it to the last rung, and is stopped otherwise, by the decision
  that stopped it furthest (`outcome`).

Standard library only; read by the Snakefile (input functions), the decision job and the report.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from mnist3d.atomic import write_json
from mnist3d.results.rungs import read_rung_record

MEASURE = "val_accuracy"


def _mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def combination_measures(alive: list[str], records: list[dict]) -> list[dict]:
    """Per alive combination: its replicates, how many finished, the mean measures of those, their errors."""
    rows = []
    for entry in alive:
        own = sorted((record for record in records if record["entry"] == entry), key=lambda record: record["replicate"])
        finished = [record for record in own if record["status"] == "ok"]
        rows.append({
            "entry": entry, "replicates": len(own), "finished": len(finished),
            MEASURE: _mean([record[MEASURE] for record in finished]),
            "val_loss": _mean([record["val_loss"] for record in finished]),
            "errors": [f"{record['run']}: {record['error']}" for record in own if record["status"] != "ok"],
        })
    return rows


def _rank_key(row: dict):
    failed = row[MEASURE] is None
    return (failed, 0.0 if failed else -row[MEASURE], 0.0 if failed else row["val_loss"], row["entry"])


def _digits(value: float, other: float) -> str:
    """`value` to 4 decimals, or to as many as it takes to tell it from `other` (a replicates' mean a
    hair below the cut-off must not read as equal to it)."""
    for decimals in range(4, 16):
        if value == other or f"{value:.{decimals}f}" != f"{other:.{decimals}f}":
            return f"{value:.{decimals}f}"
    return repr(value)


def _reason(row: dict, rank: int, alive: int, keep: int, cutoff: dict | None, plan: dict, epoch: int) -> str:
    where = f"rank {rank} of {alive}"
    if row[MEASURE] is None:
        return f"{where}: no replicate finished epoch {epoch} ({'; '.join(row['errors'])}); a failed run counts last"
    text = f"{where}, {MEASURE} {row[MEASURE]:.4f}"
    if row["verdict"] == "kept":
        return f"{text}: among the best {keep} (ceil({alive} / {plan['eta']}))"
    if cutoff is None:
        return f"{text}: no combination goes on"
    if row[MEASURE] < cutoff[MEASURE]:
        return (f"{where}, {MEASURE} {_digits(row[MEASURE], cutoff[MEASURE])}: below the cut-off "
                f"{_digits(cutoff[MEASURE], row[MEASURE])} ({cutoff['entry']}, rank {keep})")
    if row["val_loss"] > cutoff["val_loss"]:
        return (f"{text} ties the cut-off ({cutoff['entry']}, rank {keep}); its val_loss {_digits(row['val_loss'], cutoff['val_loss'])} "
                f"is higher than {_digits(cutoff['val_loss'], row['val_loss'])}")
    return f"{text} and val_loss tie the cut-off ({cutoff['entry']}, rank {keep}); the name decides"


def decide(plan: dict, rung: int, alive: list[str], records: list[dict]) -> dict:
    """The decision after rung `rung` (from 1) of the halving sweep's bracket `plan`
    (mnist3d.config.halving.HalvingPlan.bracket_param) among the `alive` combinations, from their records."""
    epoch, rungs = plan["rungs"][rung - 1], len(plan["rungs"])
    wrong = sorted({record["epoch"] for record in records} - {epoch})
    if wrong:
        raise ValueError(f"rung {rung} of sweep '{plan['sweep']}' is at epoch {epoch}, but records are at {wrong}")
    rows = sorted(combination_measures(sorted(alive), records), key=_rank_key)
    keep = math.ceil(len(rows) / plan["eta"])
    kept = [row for row in rows if row[MEASURE] is not None][:keep]
    kept_entries = {row["entry"] for row in kept}
    for row in rows:
        row["verdict"] = "kept" if row["entry"] in kept_entries else "stopped"
    cutoff = kept[-1] if kept else None
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        row["reason"] = _reason(row, rank, len(rows), keep, cutoff, plan, epoch)
    return {
        "sweep": plan["sweep"], "bracket": plan.get("bracket", 1), "rung": rung, "rungs": rungs, "epoch": epoch, "next_epoch": plan["rungs"][rung],
        "eta": plan["eta"], "measure": f"{MEASURE} at epoch {epoch}, mean over finished replicates",
        "alive": len(rows), "keep": keep,
        "cutoff": None if cutoff is None else {key: cutoff[key] for key in ("entry", MEASURE, "val_loss")},
        "kept": [row["entry"] for row in kept],
        "stopped": [row["entry"] for row in rows if row["verdict"] == "stopped"],
        "combinations": [{key: row[key] for key in ("rank", "entry", "verdict", "reason", MEASURE, "val_loss",
                                                    "replicates", "finished", "errors")} for row in rows],
    }


def decide_files(plan: dict, rung: int, records: list[str], previous: str | None = None) -> dict:
    """`decide` on the rung records in the files `records`, among the combinations that the decision in
    `previous` kept (every combination of the plan at rung 1, where there is none)."""
    alive = plan["entries"] if previous is None else read_decision(previous)["kept"]
    return decide(plan, rung, alive, [read_rung_record(path) for path in records])


def write_decision(path: str | Path, decision: dict) -> None:
    write_json(path, decision)


def read_decision(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def _bracket(decision: dict) -> int:
    return decision.get("bracket", 1)


_NOT_IN_BRACKET = object()


def _stop_in_bracket(entry: str, decisions: list[dict]):
    """The decision of one bracket (in rung order) that stopped `entry`; None when every one kept it;
    _NOT_IN_BRACKET when the bracket's first decision never had it."""
    for decision in decisions:
        if entry in decision["stopped"]:
            return decision
        if entry not in decision["kept"]:
            if decision is decisions[0] and decision["rung"] == 1:
                return _NOT_IN_BRACKET
            raise ValueError(f"{entry} is not among the combinations of rung {decision['rung']} of sweep "
                             f"'{decision['sweep']}'" + (f", bracket {_bracket(decision)}" if _bracket(decision) > 1
                                                         else ""))
    return None


def outcome(entry: str, decisions: list[dict]) -> tuple[int | None, dict | None]:
    """(epoch where `entry` stops, the decision that stopped it) from the decisions so far, in (bracket,
    rung) order; (None, None) while it is still going on, i.e. some bracket it is in kept it by every
    decision given. Over several brackets it stops at the furthest epoch one of them took it to (the
    first such bracket's decision); a bracket whose rung-1 decision does not have it is not its own."""
    stops = []
    for _, group in itertools.groupby(decisions, key=_bracket):
        stop = _stop_in_bracket(entry, list(group))
        if stop is None:
            return None, None
        if stop is not _NOT_IN_BRACKET:
            stops.append(stop)
    if decisions and not stops:
        raise ValueError(f"{entry} is not among the combinations of sweep '{decisions[0]['sweep']}'")
    if not stops:
        return None, None
    furthest = max(stops, key=lambda decision: decision["epoch"])
    return furthest["epoch"], furthest


def read_sweep_decisions(directory: str | Path) -> list[dict]:
    """Every decision of one sweep (results/sweeps/SWEEP/rung-K.json, and bracket B's
    results/sweeps/SWEEP/bracket-B/rung-K.json), in (bracket, rung) order: what the report shows.

    Each has `bracket`, `rung`, `epoch`, `alive`, `keep`, `cutoff`, `kept`, `stopped` and per
    combination a line (`combinations`: rank, entry, verdict, reason, val_accuracy, val_loss,
    replicates, finished, errors). No timings: the same records give the same file byte for byte;
    time spent is in each run's rung records and history."""
    directory = Path(directory)
    paths = [*directory.glob("rung-*.json"), *directory.glob("bracket-*/rung-*.json")]
    return sorted((read_decision(path) for path in paths), key=lambda decision: (_bracket(decision), decision["rung"]))


def _brackets(plan: dict) -> list[dict]:
    return plan.get("brackets") or [{"bracket": 1, "rungs": plan["rungs"], "entries": plan["entries"]}]


def sweep_summary(plan: dict, decisions: list[dict]) -> dict:
    """What the report says of a halving sweep, from its plan (mnist3d.config.halving.HalvingPlan.as_param)
    and its decisions so far (read_sweep_decisions): per bracket, the combinations that reached each of
    its rungs (`rungs`: bracket 1's); the furthest epoch each combination trained to over its brackets
    (`furthest`), whose sum over the runs is the epochs trained (`epochs`); and the full grid's epochs."""
    brackets, furthest = [], {}
    for bracket in _brackets(plan):
        own = sorted((decision for decision in decisions if _bracket(decision) == bracket["bracket"]),
                     key=lambda decision: decision["rung"])
        reached = [list(bracket["entries"]), *(decision["kept"] for decision in own)]
        rungs = []
        for rung, (entries, epoch) in enumerate(zip(reached, bracket["rungs"]), 1):
            rungs.append({"rung": rung, "epoch": epoch, "combinations": len(entries),
                          "runs": len(entries) * plan["replicates"]})
            furthest.update({entry: max(epoch, furthest.get(entry, 0)) for entry in entries})
        brackets.append({"bracket": bracket["bracket"], "rungs": rungs})
    return {"sweep": plan["sweep"], "rungs": brackets[0]["rungs"], "brackets": brackets,
            "furthest": dict(sorted(furthest.items())),
            "epochs": plan["replicates"] * sum(furthest.values()),
            "full_grid_epochs": len(plan["entries"]) * plan["replicates"] * plan["epochs"]}
