"""A run's state at a rung of a halving sweep, as its rung job leaves it (rules/halving.smk).

Three files in results/halving/ENTRY/repK/epoch-E/, written once and never changed:
- checkpoint.npz: the run's checkpoint at the end of epoch E (mnist3d.training.checkpoint), from
  which the next rung, or the run's own evaluation, goes on; empty when the run failed;
- history.csv: its epochs 1..E (mnist3d.results.runfiles);
- rung.json: what a decision reads (RUNG_FIELDS): the run, the epoch, "ok" or "failed" with its
  error, the validation accuracy and loss at exactly epoch E, and the training seconds up to it.

Standard library only: training writes these files and the decisions (mnist3d.results.halving) read
them, so the decision code stays out of the training code's digest. `training_job` tells a training
job (scripts/train_run.py) which of them it goes on from, and how far.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mnist3d.atomic import write_json

RUN_OUTPUTS = ("model", "history", "predictions", "metrics")
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


def stopped_text(epoch: int, rung: int, rungs: int, bracket: int = 1) -> str:
    """How a run that a decision stopped is marked (metrics.json's `stopped`); a Hyperband bracket
    but the first is named (bracket 1 is the sweep's plain successive halving)."""
    where = f"rung {rung} of {rungs}" if bracket == 1 else f"bracket {bracket}, rung {rung} of {rungs}"
    return f"stopped at epoch {epoch} ({where})"


def stop_of(decision: dict, entry: str) -> dict:
    """What a halving run's own job evaluates, from the decision that ended it (a rung-K.json): up to
    the decision's epoch, marked, when it stopped the run; {} (the full epochs) when it kept it."""
    if entry not in decision["stopped"]:
        return {}
    return {"until_epoch": decision["epoch"], "stopped": stopped_text(
        decision["epoch"], decision["rung"], decision["rungs"], decision.get("bracket", 1))}


def furthest_state(pattern: dict, epochs: int) -> dict:
    """The furthest finished rung state of a run at or before `epochs`, as the resume paths of
    mnist3d.training.train.RunPaths ({} when there is none). `pattern`: the rung job's `state` and
    `record` outputs with `{epoch}` left open."""
    for epoch in range(epochs, 0, -1):
        record = Path(pattern["record"].format(epoch=epoch))
        if record.exists() and read_rung_record(record)["status"] == "ok":
            return {"resume_from": pattern["state"].format(epoch=epoch), "resume_record": str(record)}
    return {}


def training_job(entry: str, epochs: int, inputs: dict, outputs: dict, epoch: int | None = None,
                 rung_states: dict | None = None) -> tuple[dict, dict]:
    """(what to add to the run, its paths), the fields of mnist3d.training.train.Run and RunPaths, for a
    training job of run `entry` of `epochs` epochs, from its rule's named `inputs` and `outputs`.

    A rung job (`epoch`: the rung's, rules/halving.smk) trains on to that epoch, from the previous
    rung's state when its inputs name one, and leaves the state in its outputs. A run's own job
    (rules/train.smk) writes the four run outputs: in a halving sweep, from the last state its
    decisions left it (`resume_from`, and `decision` where one stopped it); trained straight through,
    from the furthest state a halving sweep of the same run left (`rung_states`, the rung job's
    outputs with `{epoch}` open), if any.
    """
    run, paths = {}, dict.fromkeys(RUN_OUTPUTS)
    if epoch is not None:
        run["until_epoch"] = epoch
        paths.update(rung_checkpoint=outputs["state"], rung_history=outputs["history"], rung_record=outputs["record"])
    else:
        paths.update({name: outputs[name] for name in RUN_OUTPUTS})
    if "resume_from" in inputs:
        paths.update(resume_from=inputs["resume_from"], resume_record=inputs["resume_record"])
        if "decision" in inputs:
            run.update(stop_of(json.loads(Path(inputs["decision"]).read_text()), entry))
    elif epoch is None and rung_states:
        paths.update(furthest_state(rung_states, epochs))
    return run, paths
