"""End-to-end: a 9-combination halving sweep trained by real Snakemake on tiny data.

One sweep (eta 3, rungs at epochs 1, 3 and 4) trained once, uninterrupted, in a workflow copy, and
compared with: the same sweep with snakemake killed (SIGKILL) in the middle of rung 2 and run
again; the surviving entry trained straight through without `halving:`; the sweep with three
combinations added; and the sweep with a second (Hyperband) bracket. Training jobs run side by side
(train.gpu_amount 0) to keep this short.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_CONFIG, copy_workflow, pause_first_job_at_epoch_3, planned_jobs, running, snakemake
from test_resume import assert_same_run

from mnist3d.config.halving import bracket_entries
from mnist3d.training import checkpoint
from mnist3d.training.train import RunPaths

MODELS = """\
defaults: {filters: [4], kernel_sizes: [3], pool_sizes: [4], dense: 8, dropout: 0.2,
           learning_rate: 0.003, epochs: 4, batch_size: 32, seed: 1, replicates: 1}
sweeps:
  h:
    fixed: {lr_schedule: cosine}
    halving: {min_epochs: 1, eta: 3}
    grid:
      dense: [4, 8, 16]
      learning_rate: [0.001, 0.003, 0.01]
"""
DECISIONS = [f"results/sweeps/h/rung-{rung}.json" for rung in (1, 2)]
BRACKET_2 = "results/sweeps/h/bracket-2/rung-1.json"
OUTPUTS = ("model.keras", "history.csv", "predictions.npz", "metrics.json")
JOB = re.compile(r"rule train_to_epoch:\n(?:.*\n)*?\s+wildcards: entry=(\S+), replicate=1, epoch=(\d+)")


def halving_workflow(directory: Path, models: str = MODELS) -> Path:
    workdir = copy_workflow(directory)
    (workdir / "config" / "test" / "models.yaml").write_text(models)
    settings = workdir / TEST_CONFIG
    settings.write_text(settings.read_text().replace("gpu_amount: 1", "gpu_amount: 0"))
    return workdir


def copy_of(workdir: Path, destination: Path) -> Path:
    """A copy with results, logs and Snakemake's records, timestamps kept (not the warm server's socket)."""
    shutil.copytree(workdir, destination, symlinks=True, ignore=shutil.ignore_patterns("train-server"))
    return destination


def decision(workdir: Path, rung: int) -> dict:
    return json.loads((workdir / DECISIONS[rung - 1]).read_text())


def run_files(workdir: Path, entry: str) -> list[str]:
    return [f"results/runs/{entry}/rep1/{name}" for name in OUTPUTS]


def paths(workdir: Path, entry: str) -> RunPaths:
    return RunPaths(None, *(workdir / name for name in run_files(workdir, entry)))


def states(workdir: Path) -> dict[tuple[str, int], int]:
    """(entry, epoch) of every rung state, with its checkpoint's modification time."""
    found = {}
    for path in (workdir / "results" / "halving").glob("*/rep1/epoch-*/checkpoint.npz"):
        found[(path.parent.parent.parent.name, int(path.parent.name.split("-")[1]))] = path.stat().st_mtime_ns
    return found


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """(uninterrupted workflow, its copy taken after rung 1, survivor, stopped at rung 1, stopped at rung 2)."""
    root = tmp_path_factory.mktemp("halving")
    whole = halving_workflow(root / "whole")
    plan = snakemake(whole, "-n", DECISIONS[1])
    assert planned_jobs(plan.stdout)["train_to_epoch"] == 9 and planned_jobs(plan.stdout)["halving_decision"] == 2
    assert ("halving sweep 'h': 9 combinations x 1 replicate, eta 3; rungs train 9 to epoch 1, 3 to epoch 3, "
            "1 to epoch 4. Only rung 1 is planned now") in plan.stderr
    snakemake(whole, DECISIONS[0])
    after_rung_1 = copy_of(whole, root / "after-rung-1")
    snakemake(whole, DECISIONS[1])
    survivor = decision(whole, 2)["kept"][0]
    early, late = decision(whole, 1)["stopped"][0], decision(whole, 2)["stopped"][0]
    snakemake(whole, *(name for entry in (survivor, early, late) for name in run_files(whole, entry)))
    return whole, after_rung_1, survivor, early, late


def test_9_then_3_then_1_runs_train_to_the_rungs_epochs(sweep):
    whole, _, survivor, early, late = sweep
    epochs = sorted(states(whole))
    assert [len([1 for _, epoch in epochs if epoch == rung]) for rung in (1, 3, 4)] == [9, 3, 1]
    first, second = decision(whole, 1), decision(whole, 2)
    assert (first["alive"], first["keep"], second["alive"], second["keep"]) == (9, 3, 3, 1)
    assert set(second["kept"]) | set(second["stopped"]) == set(first["kept"])
    assert states(whole).keys() >= {(entry, 3) for entry in first["kept"]} | {(survivor, 4)}
    assert all(line["reason"].startswith(f"rank {line['rank']} of 9") for line in first["combinations"])
    for entry, epoch, status in ((survivor, 4, "ok"), (early, 1, "stopped"), (late, 3, "stopped")):
        metrics = json.loads((whole / run_files(whole, entry)[3]).read_text())
        assert (metrics["status"], metrics["epochs_run"]) == (status, epoch), entry
        rows = (whole / run_files(whole, entry)[1]).read_text().splitlines()
        assert len(rows) == 1 + epoch
        if status == "stopped":
            assert metrics["stopped"] == f"stopped at epoch {epoch} (rung {1 if epoch == 1 else 2} of 3)"
            assert metrics["test_accuracy"] is not None
        else:
            assert "stopped" not in metrics
        # The run's own job only evaluated the state its last rung left.
        log = (whole / "logs" / "train" / entry / "rep1.log").read_text()
        assert f"resumed from epoch {epoch} of 4" in log and "epoch 1/4 in" not in log
    assert not (whole / "results" / "checkpoints").exists() or not any((whole / "results" / "checkpoints").iterdir())
    assert "Nothing to be done" in snakemake(whole, "-n", *DECISIONS, *run_files(whole, survivor)).stdout


def test_the_survivor_equals_the_entry_trained_straight_through(sweep, tmp_path):
    whole, _, survivor, _, _ = sweep
    straight = halving_workflow(tmp_path / "straight", MODELS.replace("    halving: {min_epochs: 1, eta: 3}\n", ""))
    shutil.copytree(whole / "results" / "data", straight / "results" / "data")
    snakemake(straight, *run_files(straight, survivor))
    log = (straight / "logs" / "train" / survivor / "rep1.log").read_text()
    assert "resumed" not in log and "epoch 4/4 in" in log
    assert_same_run(paths(whole, survivor), paths(straight, survivor))


def saved_epochs(workdir: Path) -> list[int]:
    found = []
    for path in (workdir / "results" / "checkpoints").glob(f"*/rep1/{checkpoint.FILE}"):
        try:
            with np.load(path) as data:
                found.append(json.loads(str(data["state"]))["epoch"])
        except (OSError, ValueError, KeyError):
            pass
    return found


def test_snakemake_killed_in_rung_2_reaches_the_same_decisions_and_results(sweep):
    whole, killed, survivor, early, late = sweep
    paused = pause_first_job_at_epoch_3(killed)  # a rung-2 job, which trains epochs 2 and 3
    command = [sys.executable, "-m", "snakemake", DECISIONS[1], "--cores", "2", "--configfile", TEST_CONFIG]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, cwd=killed, env=environment, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not paused.exists():  # a rung-2 job has saved epoch 2 and holds still in epoch 3
            assert process.poll() is None, "snakemake ended before rung 2 was under way"
            assert time.monotonic() < deadline, "no rung-2 job reached epoch 3 in time"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    for log in (killed / "logs" / "train_to_epoch").glob("*/rep1/epoch-3.log"):
        if "training in worker " in (text := log.read_text()):
            worker = int(text.split("training in worker ")[1].split()[0])
            deadline = time.monotonic() + 60
            while running(worker):
                assert time.monotonic() < deadline, f"worker {worker} went on after its job was killed"
                time.sleep(0.05)
    assert 2 in saved_epochs(killed), "the kill left no rung-2 checkpoint of epoch 2"
    assert not (killed / DECISIONS[1]).exists()

    snakemake(killed, "--unlock")
    snakemake(killed, DECISIONS[1])
    snakemake(killed, *(name for entry in (survivor, early, late) for name in run_files(killed, entry)))
    resumed = [log for log in (killed / "logs" / "train_to_epoch").glob("*/rep1/epoch-3.log")
               if "resumed from epoch 2 of 4 (results/checkpoints/" in log.read_text()]
    assert resumed, "no rung-2 job went on from the checkpoint the kill left"
    for name in DECISIONS:
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name
    for entry in (survivor, early, late):
        assert_same_run(paths(whole, entry), paths(killed, entry))


def test_adding_combinations_retrains_no_run_that_reached_a_rung(sweep, tmp_path):
    whole = copy_of(sweep[0], tmp_path / "added")
    before = states(whole)
    (whole / "config" / "test" / "models.yaml").write_text(MODELS.replace("dense: [4, 8, 16]", "dense: [4, 8, 16, 2]"))
    result = snakemake(whole, *DECISIONS)
    trained = {(entry, int(epoch)) for entry, epoch in JOB.findall(result.stdout + result.stderr)}
    assert {(entry, epoch) for entry, epoch in trained if epoch == 1} == {
        (f"h.dense-2.learning_rate-{rate}", 1) for rate in ("0.001", "0.003", "0.01")}
    assert not trained & before.keys(), "a state that existed was trained again"
    assert {key: stamp for key, stamp in states(whole).items() if key in before} == before
    first = decision(whole, 1)
    assert (first["alive"], first["keep"]) == (12, 4)


def test_removing_halving_retrains_no_epoch_a_rung_trained(sweep, tmp_path):
    whole, _, survivor, early, _ = sweep
    plain = copy_of(whole, tmp_path / "plain")
    (plain / "config" / "test" / "models.yaml").write_text(MODELS.replace("    halving: {min_epochs: 1, eta: 3}\n", ""))
    snakemake(plain, *run_files(plain, survivor), *run_files(plain, early))
    kept = (plain / "logs" / "train" / survivor / "rep1.log").read_text()
    assert f"resumed from epoch 4 of 4 (results/halving/{survivor}/rep1/epoch-4/checkpoint.npz)" in kept
    assert "epoch 4/4 in" not in kept
    assert_same_run(paths(whole, survivor), paths(plain, survivor))
    stopped = (plain / "logs" / "train" / early / "rep1.log").read_text()
    assert f"resumed from epoch 1 of 4 (results/halving/{early}/rep1/epoch-1/checkpoint.npz)" in stopped
    assert "epoch 1/4 in" not in stopped and "epoch 4/4 in" in stopped
    assert json.loads((plain / run_files(plain, early)[3]).read_text())["status"] == "ok"


def test_a_second_bracket_reuses_every_state_and_leaves_bracket_1_as_it_was(sweep, tmp_path):
    whole, _, survivor, early, late = sweep
    whole = copy_of(whole, tmp_path / "brackets")
    before = states(whole)
    # Bracket 2: the 5 (ceil(9 x 3 / (2 x 3))) whose digests come first; evaluated with the runs the sweep had.
    members = bracket_entries("h", 2, {entry for entry, _ in before}, 5)
    entries = sorted({*members, survivor, early, late})
    (whole / "config" / "test" / "models.yaml").write_text(MODELS.replace("eta: 3}", "eta: 3, brackets: 2}"))
    assert ("eta 3, 2 brackets (Hyperband); bracket 1 trains 9 to epoch 1, 3 to epoch 3, 1 to epoch 4; bracket 2 "
            "trains 5 to epoch 3, 2 to epoch 4.") in snakemake(whole, "-n", BRACKET_2).stderr
    result = snakemake(whole, BRACKET_2, *(f"results/runs/{entry}/rep1/metrics.json" for entry in entries))
    output = result.stdout + result.stderr
    assert "checkpoint halving_decision:" not in output, "bracket 1 was decided again"
    for name in DECISIONS:
        assert (whole / name).read_bytes() == (sweep[0] / name).read_bytes(), name
    first, second, other = decision(whole, 1), decision(whole, 2), json.loads((whole / BRACKET_2).read_text())
    assert sorted(line["entry"] for line in other["combinations"]) == list(members)
    assert (other["bracket"], other["epoch"], other["alive"], other["keep"]) == (2, 3, 5, 2)
    # Bracket 2 starts from the epoch-1 states bracket 1 left; no state that existed was trained again.
    trained = {(entry, int(epoch)) for entry, epoch in JOB.findall(output)}
    assert not trained & before.keys(), "a state that existed was trained again"
    assert {key: stamp for key, stamp in states(whole).items() if key in before} == before
    assert trained == ({(entry, 3) for entry in members} | {(entry, 4) for entry in other["kept"]}) - before.keys()
    for entry in entries:
        metrics = json.loads((whole / "results" / "runs" / entry / "rep1" / "metrics.json").read_text())
        if entry in second["kept"] or entry in other["kept"]:
            expected = ("ok", 4, None)
        elif entry in second["stopped"]:  # epoch 3 in bracket 1 (and in bracket 2 if it is there): bracket 1's
            expected = ("stopped", 3, "stopped at epoch 3 (rung 2 of 3)")
        elif entry in members:
            expected = ("stopped", 3, "stopped at epoch 3 (bracket 2, rung 1 of 2)")
        else:
            expected = ("stopped", 1, "stopped at epoch 1 (rung 1 of 3)")
        assert (metrics["status"], metrics["epochs_run"], metrics.get("stopped")) == expected, entry
    assert set(first["stopped"]) & set(members), "bracket 2 took no run further than bracket 1"
