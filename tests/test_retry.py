"""Retrying failed runs: the retry command retrains exactly them; --retries retries a failing training job."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TEST_CONFIG, TINY_DEFAULTS, copy_workflow, planned_jobs, run_to_end, snakemake

MODELS = TINY_DEFAULTS + """\
runs:
  fine: {}
  too-big:
    # A Dense layer of 2 TB: building it fails with out-of-memory, every time.
    dense: 2000000000
"""
METRICS = {run: f"results/runs/{run}/rep1/metrics.json" for run in ("fine", "too-big")}


def retry(workdir: Path, *options: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "retry_failed.py"), *METRICS.values(),
               "--cores", "2", "--configfile", TEST_CONFIG, *options]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = run_to_end(command, workdir, environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


def status(workdir: Path, run: str) -> str:
    return json.loads((workdir / METRICS[run]).read_text())["status"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("retry"))
    (workdir / "config" / "test" / "models.yaml").write_text(MODELS)
    first = snakemake(workdir, *METRICS.values(), "--retries", "1")
    return workdir, first.stdout + first.stderr


def test_a_failing_job_is_retried_then_recorded(trained):
    trained, output = trained
    assert status(trained, "fine") == "ok" and status(trained, "too-big") == "failed"
    # First attempt: raised for Snakemake to retry (its log, shown by show-failed-logs, says so);
    # the last one: recorded as a failed run, its log kept as the run's log.
    assert "run too-big/rep1: this attempt failed; Snakemake retries it 1 more time(s)" in output
    assert output.count("Trying to restart job") == 1
    log = (trained / "logs" / "train" / "too-big" / "rep1.log").read_text()
    assert "run too-big/rep1 FAILED" in log and "this attempt failed" not in log


def test_the_retry_command_retrains_exactly_the_failed_runs(trained):
    trained, _ = trained
    # A failed run of an older models file: not part of the workflow any more, so not retried.
    gone = trained / "results" / "runs" / "gone" / "rep1" / "metrics.json"
    gone.parent.mkdir(parents=True)
    gone.write_text(json.dumps({"status": "failed"}))
    dry = retry(trained, "-n")
    assert "left alone, not runs of the current models file: gone/rep1" in dry.stdout
    assert "retrying 1 failed run(s): too-big/rep1" in dry.stdout
    assert planned_jobs(dry.stdout) == {"train": 1}

    times = {run: (trained / path).stat().st_mtime_ns for run, path in METRICS.items()}
    retry(trained)
    assert (trained / METRICS["fine"]).stat().st_mtime_ns == times["fine"]
    assert (trained / METRICS["too-big"]).stat().st_mtime_ns > times["too-big"]
    assert status(trained, "too-big") == "failed"  # still visible as failed: it cannot fit


def test_with_no_failed_run_nothing_is_retried(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "retry_failed.py"), "-n"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "nothing to retry" in result.stdout


def test_the_slurm_profile_tells_training_jobs_whether_a_retry_follows(tmp_path):
    """A cluster job's inner Snakemake runs with --retries 0, so the profile sets retries_left itself."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    workdir = copy_workflow(tmp_path)
    target = "results/runs/small/rep1/metrics.json"
    result = snakemake(workdir, target, "-n", "--workflow-profile", "profiles/slurm", "--executor", "local")
    train = result.stdout.split("rule train:")[1]
    assert re.search(r"\bretries_left=1\b", train) and "mem_mb=16000," in train
