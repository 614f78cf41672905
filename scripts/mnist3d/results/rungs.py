"""A run's state at a rung of a halving sweep, as its rung job leaves it (rules/halving.smk).

Three files in results/halving/ENTRY/repK/epoch-E/, written once and never changed:
- checkpoint.npz: the run's checkpoint at the end of epoch E (mnist3d.training.checkpoint), from
  which the next rung, or the run's own evaluation, goes on; empty when the run failed;
- history.csv: its epochs 1..E (mnist3d.results.runfiles);
- rung.json: what a decision reads (RUNG_FIELDS): the run, the epoch, "ok" or "failed" with its
  error, the validation accuracy and loss at exactly epoch E, and the training seconds up to it.

Standard library only: training writes these files and the decisions (mnist3d.results.halving) read
them, so the decision code stays out of the training code's digest.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mnist3d.atomic import write_json

RUNG_FIELDS = ("run", "entry", "replicate", "epoch", "status", "error", "val_accuracy", "val_loss", "seconds")


def rung_record(run: str, entry: str, replicate: int, epoch: int, rows: list[dict], error: str | None = None) -> dict:
    """The record of a run at rung epoch `epoch` from its history rows; failed when `error` is given or
    the history does not reach `epoch` with a finite validation accuracy."""
    row = rows[epoch - 1] if len(rows) >= epoch else None
    if error is None and (row is None or not math.isfinite(row["val_accuracy"]) or not math.isfinite(row["loss"])):
        error = f"its history ends at epoch {len(rows)} without finite measures at epoch {epoch}"
    ok = error is None
    values = [float(row["val_accuracy"]), float(row["val_loss"])] if ok else [None, None]
    seconds = float(sum(item["seconds"] for item in rows[:epoch]))
    return dict(zip(RUNG_FIELDS, [run, entry, int(replicate), int(epoch), "ok" if ok else "failed", error,
                                  *values, seconds]))


def write_rung_record(path: str | Path, record: dict) -> None:
    write_json(path, {name: record[name] for name in RUNG_FIELDS})


def read_rung_record(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def stopped_text(epoch: int, rung: int, rungs: int) -> str:
    """How a run that a decision stopped is marked (metrics.json's `stopped`)."""
    return f"stopped at epoch {epoch} (rung {rung} of {rungs})"


def stop_of(decision: dict, entry: str) -> dict:
    """What a halving run's own job evaluates, from the last decision about it (a rung-K.json): up to
    the decision's epoch, marked, when it stopped the run; {} (the full epochs) when it kept it."""
    if entry not in decision["stopped"]:
        return {}
    return {"until_epoch": decision["epoch"], "stopped": stopped_text(decision["epoch"], decision["rung"],
                                                                      decision["rungs"])}


def furthest_state(pattern: dict, epochs: int) -> dict:
    """The furthest finished rung state of a run at or before `epochs`, as the resume paths of
    mnist3d.training.train.RunPaths ({} when there is none). `pattern`: the rung job's `state` and
    `record` outputs with `{epoch}` left open."""
    for epoch in range(epochs, 0, -1):
        record = Path(pattern["record"].format(epoch=epoch))
        if record.exists() and read_rung_record(record)["status"] == "ok":
            return {"resume_from": pattern["state"].format(epoch=epoch), "resume_record": str(record)}
    return {}
