"""Resuming an interrupted training run: the same history, metrics and weights as an uninterrupted one.

In-process tests interrupt a run right after a chosen epoch's checkpoint, for the optimizers and
schedules whose state the checkpoint must restore; the end-to-end test kills a
real `snakemake` with SIGKILL during epoch 3 of 4 (held there: conftest.pause_first_job_at_epoch_3)
and runs it again.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_CONFIG, copy_workflow, pause_first_job_at_epoch_3, running, snakemake

from mnist3d.config.runs import OPTIONAL_DEFAULTS
from mnist3d.data import prepare
from mnist3d.training import checkpoint
from mnist3d.training.train import Run, RunPaths, TrainingEnvironment, train_run

TIMINGS = ("training_seconds", "samples_per_second")
PARAMS = {
    "filters": [4],
    "kernel_sizes": [3],
    "pool_sizes": [4],
    "dense": 8,
    "dropout": 0.3,
    "learning_rate": 0.01,
    "epochs": 4,
    "batch_size": 16,
    "seed": 4,
    **OPTIONAL_DEFAULTS,
    "rotation_augmentation": 90.0,
    "lr_schedule": "cosine",
}


class Interrupted(BaseException):
    """Stands for a kill: not an Exception, so train_run does not record it as a failed run."""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 40), ("val", 10), ("test", 10)):
        arrays[f"x_{split}"] = rng.random((count, 16, 16, 16, 1), dtype=np.float32)
        arrays[f"y_{split}"] = np.arange(count, dtype=np.int64) % 10
    arrays["test_rotated"] = np.zeros(10, dtype=np.int8)
    arrays["source"] = np.array("generated")
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    prepare.save(path, arrays)
    return path


def history_without_seconds(path: Path) -> list[dict]:
    with open(path) as handle:
        return [{name: value for name, value in row.items() if name != "seconds"} for row in csv.DictReader(handle)]


def metrics_without_timings(path: Path) -> dict:
    metrics = json.loads(path.read_text())
    return {name: value for name, value in metrics.items() if name not in TIMINGS}


def weights(path: Path) -> list[np.ndarray]:
    import keras

    return keras.saving.load_model(path, compile=False).get_weights()


def assert_same_run(a: RunPaths, b: RunPaths) -> None:
    assert history_without_seconds(a.history) == history_without_seconds(b.history)
    assert metrics_without_timings(a.metrics) == metrics_without_timings(b.metrics)
    for x, y in zip(weights(a.model), weights(b.model), strict=True):
        np.testing.assert_array_equal(x, y)
    with np.load(a.predictions) as p, np.load(b.predictions) as q:
        np.testing.assert_array_equal(p["probabilities"], q["probabilities"])


def run(prepared, directory: Path, params: dict, log=lambda _: None, **options) -> RunPaths:
    paths = RunPaths.in_directory(prepared, directory, checkpoint_dir=directory / "ckpt")
    environment = TrainingEnvironment(threads=1, training_code="code-1", record_failure=False, **options)
    train_run(Run("tiny", 1, params), paths, environment, log=log)
    return paths


def interrupt_after(monkeypatch, epoch: int) -> None:
    real_save = checkpoint.save

    def save_then_die(*arguments, **keywords):
        path = real_save(*arguments, **keywords)
        if arguments[3] == epoch:
            raise Interrupted(f"killed after epoch {epoch}")
        return path

    monkeypatch.setattr(checkpoint, "save", save_then_die)


@pytest.mark.parametrize(
    "params, epoch",
    [
        (PARAMS, 2),
        # Early stopping and the plateau schedule: their counters and best weights come back too.
        ({**PARAMS, "lr_schedule": "plateau", "early_stopping_patience": 1, "learning_rate": 0.05}, 2),
        # Killed after the last checkpoint but before the outputs: nothing left to train.
        (PARAMS, 4),
        # AdamW's moments, SGD's momentum and the warm-up schedules' step count come back too; killed
        # during one_cycle's warm-up and at the end of warmup_cosine's.
        (
            {
                **PARAMS,
                "optimizer": "adamw",
                "weight_decay": 0.004,
                "label_smoothing": 0.1,
                "lr_schedule": "one_cycle",
                "warmup_epochs": 2,
            },
            1,
        ),
        ({**PARAMS, "optimizer": "sgd", "weight_decay": 0.001, "lr_schedule": "warmup_cosine", "warmup_epochs": 2}, 2),
        # A constant rate: SGD's learning rate is an optimizer variable of its own.
        ({**PARAMS, "optimizer": "sgd", "lr_schedule": "constant", "learning_rate": 0.05}, 2),
    ],
)
def test_a_resumed_run_equals_an_uninterrupted_one(prepared, tmp_path, monkeypatch, params, epoch):
    whole = run(prepared, tmp_path / "whole", params)
    assert not (tmp_path / "whole" / "ckpt").exists()  # removed once the run is written

    with monkeypatch.context() as patch:
        interrupt_after(patch, epoch)
        with pytest.raises(Interrupted):
            run(prepared, tmp_path / "resumed", params)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    lines = []
    resumed = run(prepared, tmp_path / "resumed", params, log=lines.append)
    assert any(line.startswith(f"resumed from epoch {epoch} of 4") for line in lines), lines
    assert_same_run(whole, resumed)
    assert not (tmp_path / "resumed" / "ckpt").exists()


def test_a_checkpoint_of_other_parameters_or_code_is_discarded(prepared, tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_after(patch, 1)
        with pytest.raises(Interrupted):
            run(prepared, tmp_path, PARAMS)
    saved = tmp_path / "ckpt" / checkpoint.FILE
    assert saved.exists()
    lines = []
    assert checkpoint.load(tmp_path / "ckpt", PARAMS, "code-1", lines.append) is not None
    assert checkpoint.load(tmp_path / "ckpt", {**PARAMS, "dense": 9}, "code-1", lines.append) is None
    assert lines == [
        f"discarding checkpoint {saved}: the run parameters changed (dense); " "training starts from epoch 1"
    ]
    assert not saved.exists()


def test_mismatch_rule():
    params = {"dense": 8, "filters": [4], "learning_rate": 0.01}
    state = {"format": checkpoint.FORMAT, "training_code": "abc", "params": json.loads(json.dumps(params))}
    assert checkpoint.mismatch(state, params, "abc") is None
    assert checkpoint.mismatch(state, {**params, "filters": (4,)}, "abc") is None  # as read back from JSON
    assert "training code changed" in checkpoint.mismatch(state, params, "abd")
    assert checkpoint.mismatch(state, {**params, "learning_rate": 0.02, "dense": 9}, "abc") == (
        "the run parameters changed (dense, learning_rate)"
    )
    assert checkpoint.mismatch(state, {**params, "seed": 2}, "abc") == "the run parameters changed (seed)"
    assert "format" in checkpoint.mismatch({**state, "format": 0}, params, "abc")


def test_an_unreadable_checkpoint_is_discarded(tmp_path):
    (tmp_path / checkpoint.FILE).write_bytes(b"cut short")
    (tmp_path / ".checkpoint.1234abcd.npz").write_bytes(b"a temporary left by a kill")
    lines = []
    assert checkpoint.load(tmp_path, {}, "abc", lines.append) is None
    assert "cannot be read" in lines[0] and list(tmp_path.iterdir()) == []


# End to end: a real snakemake killed during epoch 3 of 4.

MODELS = """\
defaults:
  filters: [4, 8]
  kernel_sizes: [3, 3]
  pool_sizes: [2, 2]
  dense: 16
  dropout: 0.2
  learning_rate: 0.003
  epochs: 4
  batch_size: 16
  seed: 1
  replicates: 1
runs:
  solo:
    rotation_augmentation: 90
    lr_schedule: cosine
"""
RUN = "results/runs/solo/rep1"
TARGETS = [f"{RUN}/{name}" for name in ("model.keras", "history.csv", "predictions.npz", "metrics.json")]


def one_run_workflow(directory: Path) -> Path:
    workdir = copy_workflow(directory)
    (workdir / "config" / "test" / "models.yaml").write_text(MODELS)
    return workdir


def saved_epoch(workdir: Path) -> int | None:
    path = workdir / "results" / "checkpoints" / "solo" / "rep1" / checkpoint.FILE
    try:
        with np.load(path) as data:
            return json.loads(str(data["state"]))["epoch"]
    except (OSError, ValueError, KeyError):
        return None


def test_snakemake_killed_during_epoch_3_resumes(tmp_path):
    whole = one_run_workflow(tmp_path / "whole")
    snakemake(whole, *TARGETS)

    killed = one_run_workflow(tmp_path / "killed")
    paused = pause_first_job_at_epoch_3(killed)
    # The same data, timestamps kept, so Snakemake does not build it twice.
    shutil.copytree(whole / "results" / "data", killed / "results" / "data")
    command = [sys.executable, "-m", "snakemake", *TARGETS, "--cores", "2", "--configfile", TEST_CONFIG]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        command,
        cwd=killed,
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 600
        while not paused.exists():  # epoch 2's checkpoint is written and epoch 3 holds still
            assert process.poll() is None, "snakemake ended before epoch 3"
            assert time.monotonic() < deadline, "training did not reach epoch 3 in time"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # snakemake and its training job, with no chance to clean up
        process.wait()
    # A warm server's worker is in the server's session: it stops when it sees its job's connection
    # close.
    log = (killed / "logs" / "train" / "solo" / "rep1.log").read_text()
    if "training in worker " in log:
        worker = int(log.split("training in worker ")[1].split()[0])
        deadline = time.monotonic() + 60
        while running(worker):
            assert time.monotonic() < deadline, f"worker {worker} went on after its job was killed"
            time.sleep(0.05)
    assert saved_epoch(killed) == 2, "the kill did not leave epoch 2's checkpoint"
    assert not (killed / RUN / "metrics.json").exists()

    # Snakemake's own lock stays behind after a SIGKILL (not after Ctrl-C): --unlock lifts it.
    snakemake(killed, "--unlock")
    snakemake(killed, *TARGETS)
    log = (killed / "logs" / "train" / "solo" / "rep1.log").read_text()
    assert "resumed from epoch 2 of 4" in log
    assert not (killed / "results" / "checkpoints" / "solo").exists()
    paths = [RunPaths(None, *(workdir / target for target in TARGETS)) for workdir in (whole, killed)]
    assert_same_run(*paths)
    shutil.rmtree(tmp_path)
