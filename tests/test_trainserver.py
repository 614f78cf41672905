"""The warm training server: real server processes, real forked workers, real TensorFlow training."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import running
from test_train import TINY, prepared  # noqa: F401  (a fixture)

from mnist3d.training import server as trainserver

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
# What scripts/train_run.py does, without Snakemake: the job's log, then the server or its own process.
CLIENT = """
import json, sys
from pathlib import Path
from mnist3d.training import server as trainserver
from mnist3d.steplog import step_log
from mnist3d.training.train import train_run

arguments, warm = json.loads(sys.argv[1]), sys.argv[2] == "warm"
with step_log(sys.argv[3]) as log:
    if warm:
        answer = trainserver.train(arguments, "code-v1", idle_seconds=15, log=log)
        log(f"answer {json.dumps(answer)}")
    else:
        train_run(**trainserver.train_arguments(arguments), log=log)
"""


def arguments(prepared_path, directory: Path, **params) -> dict:
    paths = {name: str(directory / file) for name, file in
             (("model", "model.keras"), ("history", "history.csv"), ("predictions", "predictions.npz"),
              ("metrics", "metrics.json"), ("checkpoint_dir", "checkpoint"))}
    return {
        "run": {"entry": "tiny", "replicate": 1, "params": {**TINY, **params}},
        "paths": {"prepared": str(prepared_path), **paths},
        "environment": {"threads": 1, "training_code": "code-v1", "record_failure": False,
                        "retries_left": 0, "gpu_slot": None},
    }


def client(workdir: Path, call: dict, mode: str, log: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(SCRIPTS), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # The umask of shared login nodes: what a job creates is group-writable unless made otherwise.
    return subprocess.Popen([sys.executable, "-c", CLIENT, json.dumps(call), mode, str(log)], cwd=workdir,
                            env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            umask=0o002)


def finished(process: subprocess.Popen, log: Path) -> str:
    output, _ = process.communicate(timeout=300)
    text = log.read_text() if log.exists() else ""
    assert process.returncode == 0, f"client failed ({process.returncode}):\n{output}\n{text}"
    return text


def test_a_job_may_use_the_server_only_on_cpu_outside_slurm():
    assert trainserver.usable(None, 120, environ={}) is None
    assert "0" in trainserver.usable(None, 0, environ={})
    assert "GPU" in trainserver.usable("0", 120, environ={})
    assert "SLURM" in trainserver.usable("0", 120, environ={"SLURM_JOB_ID": "7"})


def test_the_server_is_chosen_by_code_and_import_time_settings_alone():
    base = {"HOME": "/root", "TF_ENABLE_ONEDNN_OPTS": "1"}
    key = trainserver.server_key("code-v1", base)
    assert trainserver.server_key("code-v1", {**base, "HOME": "/elsewhere"}) == key
    assert trainserver.server_key("code-v2", base) != key
    assert trainserver.server_key("code-v1", {**base, "TF_ENABLE_ONEDNN_OPTS": "0"}) != key
    assert trainserver.server_key("code-v1", {**base, "PYTHONPATH": "/other"}) != key


def test_workers_train_as_a_job_of_its_own_would_and_share_one_server(prepared, tmp_path):  # noqa: F811
    own, warm, again = (client(tmp_path, arguments(prepared, tmp_path / name), mode, tmp_path / f"{name}.log")
                        for name, mode in (("own", "own"), ("warm", "warm"), ("again", "warm")))
    logs = {name: finished(process, tmp_path / f"{name}.log")
            for name, process in (("own", own), ("warm", warm), ("again", again))}
    assert "training in worker" not in logs["own"]
    workers = set()
    for name in ("warm", "again"):
        assert "training in worker" in logs[name] and "epoch 2/2" in logs[name], logs[name]
        workers.add(logs[name].split("training in worker ")[1].split()[0])
        assert '"ok": true' in logs[name]
    assert len(workers) == 2
    # Only their user can reach the server, though the jobs ran under umask 002.
    socket_dir = tmp_path / ".snakemake/train-server"
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700, oct(socket_dir.stat().st_mode)
    # Both jobs found the same server (one started it, the other waited for it or found it).
    server_logs = list(socket_dir.glob("*.log"))
    assert len(server_logs) == 1
    assert server_logs[0].read_text().count("imported tensorflow") == 1
    reference = np.load(tmp_path / "own/predictions.npz")
    for name in ("warm", "again"):
        with np.load(tmp_path / name / "predictions.npz") as served:
            np.testing.assert_array_equal(served["probabilities"], reference["probabilities"])
        own_metrics, served_metrics = (json.loads((tmp_path / run / "metrics.json").read_text())
                                       for run in ("own", name))
        assert served_metrics["test_loss"] == own_metrics["test_loss"]


def test_a_training_error_fails_the_job_with_the_workers_traceback_in_its_log(prepared, tmp_path):  # noqa: F811
    call = arguments(prepared, tmp_path / "run", filters=[4, 8, 16, 32, 64], kernel_sizes=[3] * 5,
                     pool_sizes=[2] * 5)
    log = tmp_path / "job.log"
    process = client(tmp_path, call, "warm", log)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    text = log.read_text()
    assert "training in worker" in text and "Traceback" in text
    assert "WorkerFailed" in text and "pool" in text.split("WorkerFailed")[-1]
    assert not (tmp_path / "run/metrics.json").exists()


def test_killing_the_job_stops_its_worker(prepared, tmp_path):  # noqa: F811
    log = tmp_path / "job.log"
    process = client(tmp_path, arguments(prepared, tmp_path / "run", epochs=500), "warm", log)
    deadline = time.monotonic() + 240
    while "epoch 1/500 in" not in (log.read_text() if log.exists() else ""):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    worker = int(log.read_text().split("training in worker ")[1].split()[0])
    assert running(worker)
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 60
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(worker), "the worker went on training for a job that was killed"
    # What it trained is kept for the next attempt: its checkpoint, not outputs.
    assert (tmp_path / "run/checkpoint").is_dir() and not (tmp_path / "run/metrics.json").exists()
