"""Successive halving against the full grid, on the same machine and data (issue 17, bench/README.md).

Trains the sweep of a models file twice, each in its own copy of the workflow under --workdir: once
as written (with `halving:`), once with the `halving:` line removed (every combination to the full
epochs). Prints for each the epochs trained and the wall time of the `snakemake` that trained it,
and whether halving's pick (the finished run with the best validation accuracy: no test data
chooses) is the full grid's best entry or tied with it by the workflow's own verdicts
(mnist3d.results.stats.standing on the full grid's results/metrics_by_entry.csv).

  python3 bench/bench_halving.py                                  # config/models-halving.yaml: about an hour on 2 CPUs
  python3 bench/bench_halving.py --models tiny.yaml --configfile config/test/config.yaml   # a check
  python3 bench/bench_halving.py --replay bench-halving/full/results --halving 2,3 --halving 1,3,2

--replay decides other halving settings from a full grid's histories without training: a run that
goes on from a rung is the run trained straight through (tests/test_halving_workflow.py), so each
decision, the epochs it trains and the pick are exactly what that setting's sweep would give.
The data is generated once, in the first copy, and copied (timestamps kept) into the second.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mnist3d.config.halving import bracket_entries, bracket_size, rung_epochs  # noqa: E402
from mnist3d.results.halving import decide  # noqa: E402
from mnist3d.results.metrics import read_entry_table  # noqa: E402
from mnist3d.results.rungs import rung_record  # noqa: E402
from mnist3d.results.stats import standing  # noqa: E402

PARTS = ("Snakefile", "rules", "scripts", "config", "profiles", "envs")
HALVING_LINE = re.compile(r"^\s*halving:.*\n", re.M)


def workflow_copy(directory: Path, models: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, directory / part, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        else:
            shutil.copy2(source, directory / part)
    (directory / "bench-models.yaml").write_text(models)
    return directory


def snakemake(workdir: Path, options: list[str], *targets: str) -> float:
    """Seconds the command took."""
    command = [sys.executable, "-m", "snakemake", *targets, *options, "--config", "models=bench-models.yaml"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def metrics_files(workdir: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((workdir / "results" / "runs").glob("*/rep*/metrics.json"))]


def history_epochs(path: Path) -> int:
    return max(0, len(path.read_text().splitlines()) - 1)


def read_histories(results: Path) -> dict[str, list[dict]]:
    """Each entry's (replicate 1's) history rows of a full grid's results/ folder."""
    histories = {}
    for path in sorted(results.glob("runs/*/rep1/history.csv")):
        rows = csv.DictReader(path.open())
        histories[path.parent.parent.name] = [{name: float(value) for name, value in row.items()} for row in rows]
    return histories


def replay(histories: dict[str, list[dict]], min_epochs: int, eta: int, brackets: int = 1,
           sweep: str = "halving-27") -> tuple[tuple[int, ...], int, str]:
    """(rungs, epochs trained, pick) of successive halving (Hyperband with `brackets` > 1) decided on
    the full grid's histories; `sweep` names the sweep, which chooses each later bracket's entries."""
    epochs = min(len(rows) for rows in histories.values())
    rungs = rung_epochs(min_epochs, eta, epochs)
    furthest = dict.fromkeys(histories, 0)
    for bracket in range(1, brackets + 1):
        own_rungs = rungs[bracket - 1:]
        size = bracket_size(len(histories), len(rungs), len(own_rungs), bracket, eta)
        alive = list(bracket_entries(sweep, bracket, histories, size))
        plan = {"sweep": "replay", "eta": eta, "rungs": list(own_rungs)}
        for rung, epoch in enumerate(own_rungs, 1):
            for entry in alive:
                furthest[entry] = max(furthest[entry], epoch)
            if rung == len(own_rungs):
                break
            records = [rung_record(f"{entry}/rep1", entry, 1, epoch, histories[entry]) for entry in alive]
            alive = decide(plan, rung, alive, records)["kept"]
    finished = [entry for entry, epoch in furthest.items() if epoch == epochs]
    pick = max(finished, key=lambda entry: (float(histories[entry][-1]["val_accuracy"]), entry))
    return rungs, sum(furthest.values()), pick


def verdict_of(pick: str, facts: dict) -> str:
    tied = {row["entry"] for row in facts["tied"]}
    return "the full grid's best" if pick == facts["best_entry"] else (
        "tied with the full grid's best" if pick in tied else "NOT tied with the full grid's best")


def print_replays(results: Path, settings: list[str]) -> None:
    histories = read_histories(results)
    table = read_entry_table(results / "metrics_by_entry.csv")
    facts = standing(table)
    full_epochs = sum(len(rows) for rows in histories.values())
    test = dict(zip(table["entry"], table["test_accuracy_mean"]))
    print(f"full grid: {len(histories)} runs, {full_epochs} epochs; best {facts['best_entry']} "
          f"({facts['best_mean']:.4f})")
    for setting in settings:
        min_epochs, eta, brackets = ([int(value) for value in setting.split(",")] + [1])[:3]
        rungs, trained, pick = replay(histories, min_epochs, eta, brackets)
        print(f"min_epochs {min_epochs}, eta {eta}, brackets {brackets}: rungs {', '.join(map(str, rungs))}; {trained} epochs "
              f"({trained / full_epochs:.0%}); pick {pick} ({float(test[pick]):.4f}): {verdict_of(pick, facts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=str(REPO / "config" / "models-halving.yaml"))
    parser.add_argument("--configfile", default=None, help="e.g. config/test/config.yaml for a quick check")
    parser.add_argument("--workdir", default="bench-halving", help="where the two copies go (replaced)")
    parser.add_argument("--cores", default="2")
    parser.add_argument("--replay", type=Path, help="a full grid's results/ folder: decide other settings on it")
    parser.add_argument("--halving", action="append", default=[], metavar="MIN_EPOCHS,ETA[,BRACKETS]",
                        help="with --replay: a setting to decide (repeatable)")
    arguments = parser.parse_args()
    if arguments.replay:
        print_replays(arguments.replay, arguments.halving or ["1,3"])
        return
    text = Path(arguments.models).read_text()
    if not HALVING_LINE.search(text):
        sys.exit(f"{arguments.models} has no halving: line")
    options = ["--cores", arguments.cores, *(["--configfile", arguments.configfile] if arguments.configfile else [])]
    root = Path(arguments.workdir).resolve()
    shutil.rmtree(root, ignore_errors=True)
    full = workflow_copy(root / "full", HALVING_LINE.sub("", text))
    halving = workflow_copy(root / "halving", text)

    snakemake(full, options, "results/data/prepared.npz")
    shutil.copytree(full / "results" / "data", halving / "results" / "data")
    full_seconds = snakemake(full, options, "results/metrics_by_entry.csv")
    # The halving copy's runs: each `train` job of a sweep entry, by way of its rungs and decisions.
    runs = [f"results/runs/{path.parent.name}/{path.name}/metrics.json"
            for path in sorted((full / "results" / "runs").glob("*/rep*"))]
    halving_seconds = snakemake(halving, options, *runs)

    full_epochs = sum(history_epochs(path) for path in (full / "results" / "runs").glob("*/rep*/history.csv"))
    halving_epochs = sum(history_epochs(path) for path in (halving / "results" / "runs").glob("*/rep*/history.csv"))
    finished = [metrics for metrics in metrics_files(halving) if metrics["status"] == "ok"]

    def final_val_accuracy(metrics: dict) -> float:
        lines = (halving / "results" / "runs" / metrics["run"] / "history.csv").read_text().splitlines()
        header, last = lines[0].split(","), lines[-1].split(",")
        return float(last[header.index("val_accuracy")])

    pick = max(finished, key=lambda metrics: (final_val_accuracy(metrics), metrics["entry"]))["entry"]
    facts = standing(read_entry_table(full / "results" / "metrics_by_entry.csv"))
    tied = [row["entry"] for row in facts["tied"]]
    verdict = verdict_of(pick, facts)
    print(f"full grid: {len(metrics_files(full))} runs, {full_epochs} epochs, {full_seconds / 60:.1f} min")
    print(f"halving:   {len(metrics_files(halving))} runs ({len(finished)} finished), {halving_epochs} epochs "
          f"({halving_epochs / full_epochs:.0%} of the full grid's), {halving_seconds / 60:.1f} min "
          f"({halving_seconds / full_seconds:.0%})")
    print(f"full grid's best: {facts['best_entry']} ({facts['best_mean']:.4f}); "
          f"tied with it: {', '.join(tied) or 'none'}")
    print(f"halving's pick (best validation accuracy among finished runs): {pick}: {verdict}")


if __name__ == "__main__":
    main()
