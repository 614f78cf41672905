"""Retrain every failed run, and only those: `python3 scripts/retry_failed.py [snakemake options]`.

A run whose training raised is recorded as failed (its metrics.json says "status": "failed") and
counts as done for Snakemake, so that the other runs go on and the report shows it. This finds those
runs under results/runs, keeps those that the workflow (with the same options: models file, targets) still holds, as
`snakemake --summary` lists them, and runs `snakemake [options] --forcerun <their metrics.json>`:
Snakemake trains them again (from their checkpoints, when they had finished epochs) and redoes what
depends on them (tables, plots, report). Failed runs no longer in the models file are left alone
(Snakemake would refuse to plan them). Options go to Snakemake as they are, e.g. `--cores 4`,
`-n` for a dry run, `--configfile config/test/config.yaml`.

In a halving sweep a run can also fail in a rung job (its results/halving/ENTRY/repK/epoch-E/rung.json
says "failed"): that rung job is forced too, so the run trains again from there, and the decisions
after it are made again. A run that a decision stopped ("status": "stopped") did not fail: it is
left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mnist3d.runid import RUN_ID, parse_run_id

RUNS = Path("results/runs")
RUNG_STATES = Path("results/halving")
# The rules whose outputs mark a failed run, and the file of each that says so.
TRAINING_RULES = {"train": "/metrics.json", "train_to_epoch": "/rung.json"}


def failed_runs(runs: Path = RUNS) -> list[Path]:
    """The metrics.json of every run under `runs` recorded as failed, sorted."""
    failed = []
    for path in sorted(runs.glob(f"{RUN_ID.format(entry='*', replicate='*')}/metrics.json")):
        try:
            parse_run_id(path.parent.relative_to(runs).as_posix())
        except ValueError:
            continue  # not a run's folder (rep1.old, repx)
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError):
            continue  # being written or broken: Snakemake decides about it
        if status == "failed":
            failed.append(path)
    return failed


def failed_rung_states(root: Path = RUNG_STATES) -> list[Path]:
    """The rung.json of every halving rung job under `root` whose training failed, sorted."""
    failed = []
    for path in sorted(root.glob(f"{RUN_ID.format(entry='*', replicate='*')}/epoch-*/rung.json")):
        try:
            status = json.loads(path.read_text()).get("status")
        except (OSError, ValueError):
            continue
        if status == "failed":
            failed.append(path)
    return failed


def workflow_metrics(options: list[str]) -> set[Path]:
    """The metrics.json (and halving rung.json) files of the training jobs in the workflow that `options`
    describe."""
    result = subprocess.run([sys.executable, "-m", "snakemake", *options, "--summary"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(result.returncode)
    files = set()
    for line in result.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) > 2 and fields[0].endswith(TRAINING_RULES.get(fields[2], "\0")):
            files.add(Path(fields[0]))
    return files


def command(options: list[str], failed: list[Path]) -> list[str]:
    # The options first: --forcerun takes every word after it, so it goes last.
    return [sys.executable, "-m", "snakemake", *options, "--forcerun", *map(str, failed)]


def main(options: list[str]) -> int:
    failed = failed_runs() + failed_rung_states()
    if failed:
        in_workflow = workflow_metrics(options)
        gone = [path for path in failed if path not in in_workflow]
        if gone:
            print("left alone, not runs of the current models file: " + ", ".join(map(_name, gone)))
        failed = [path for path in failed if path in in_workflow]
    if not failed:
        print(f"no failed run of this workflow under {RUNS}: nothing to retry")
        return 0
    print(f"retrying {len(failed)} failed run(s): " + ", ".join(map(_name, failed)))
    return subprocess.call(command(options, failed))


def _name(path: Path) -> str:
    """A run's id, or for a rung job the run's id and its rung epoch."""
    if path.name == "rung.json":
        return f"{path.parent.parent.relative_to(RUNG_STATES)} at {path.parent.name}"
    return str(path.parent.relative_to(RUNS))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
