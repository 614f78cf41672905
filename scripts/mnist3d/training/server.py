"""A warm TensorFlow for the training jobs of one workflow folder: imported once, forked per job.

Every run is its own Snakemake job, so that editing one entry retrains one run; but each job's
`import tensorflow` costs about 10 CPU-seconds, more than a tiny run's training. Instead, the first
training job starts a server that imports TensorFlow and the training modules once and then waits
on a Unix socket in .snakemake/train-server/. Each training job (the client) sends its arguments
and its log file's descriptors; the server forks a worker, which trains exactly as the job would
have in its own process and answers when it is done. Nothing is shared between runs but the
imported code: the fork happens before TensorFlow starts its runtime (thread pools, devices), so
each worker starts it afresh, with its job's threads and seed, and gets the same numbers.

- The job stays the unit Snakemake sees: it waits for its worker, fails when its worker fails, and
  when the job is killed its worker notices the closed connection and exits at once.
- One server per Python, training code and TensorFlow environment: a server never trains with
  code other than the code it imported (`server_key`).
- Only its owner may use it: a request names files the worker writes and carries the job's
  environment and log. The socket's folder is kept at mode 0700, whatever the umask (002 on shared
  login nodes), and each side checks the other's uid (SO_PEERCRED) before it sends or serves.
- The server exits after `idle_seconds` without a job. Jobs that use a GPU, and jobs under SLURM
  (where a process left behind would outlive the job's allocation), train in their own process.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import select
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

SOCKET_DIR = Path(".snakemake/train-server")
# Read when TensorFlow is imported, so a server serves only jobs with the same values.
IMPORT_TIME_VARIABLES = ("TF_", "KERAS_", "XLA_", "ONEDNN_", "DNNL_", "MKL_", "OMP_", "CUDA_", "PYTHON")
# What the server imports before it forks: TensorFlow, and every package module train_run runs
# (the same set whose digest retrains a run when edited).
TRAINED_BY = "mnist3d.training.train"
MAX_MESSAGE = 1 << 20


class ServerUnavailable(Exception):
    """The server could not be started or reached: the job trains in its own process instead."""


class WorkerFailed(Exception):
    """The worker's training raised (its traceback is in the job's log) or the worker died."""


def usable(gpu_slot: str | None, idle_seconds: float, environ=os.environ) -> str | None:
    """None when a job may use the server; else why it trains in its own process."""
    if idle_seconds <= 0:
        return "train.warm_server_idle is 0"
    if "SLURM_JOB_ID" in environ:
        return "it runs in a SLURM job"
    if gpu_slot is not None:
        return "it uses a GPU"
    if not (hasattr(os, "fork") and hasattr(socket, "AF_UNIX") and hasattr(socket, "send_fds")
            and hasattr(socket, "SO_PEERCRED")):
        return "this platform has no fork, Unix sockets or peer credentials"
    return None


def server_key(training_code: str, environ=os.environ) -> str:
    """Names the server that may train this job: same Python, training code and import-time settings."""
    settings = sorted((name, value) for name, value in environ.items() if name.startswith(IMPORT_TIME_VARIABLES))
    # This file too: a server runs its workers with the version of it that it imported.
    own_code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    text = json.dumps([sys.executable, training_code, settings, own_code])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def warm_modules() -> list[str]:
    """What a server imports before it forks: TensorFlow, Keras and the training code."""
    from mnist3d import codebase

    return ["tensorflow", "keras", *codebase.closure(TRAINED_BY)]


def private_directory(path: Path) -> None:
    """Creates the socket's folder `path` with mode 0700, or checks that it is this user's and sets 0700.

    Raises ServerUnavailable when it belongs to another user or is not a plain folder.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
        # Checked and changed through one descriptor: what is checked is what is changed.
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        raise ServerUnavailable(f"cannot use {path} for the training server's socket: {error}") from error
    try:
        status = os.fstat(descriptor)
        if status.st_uid != os.geteuid():
            raise ServerUnavailable(f"{path} belongs to uid {status.st_uid}, not to uid {os.geteuid()} who runs "
                                    "this job: a server there could take requests from another account "
                                    "(remove the folder)")
        if stat.S_IMODE(status.st_mode) != 0o700:
            os.fchmod(descriptor, 0o700)
    finally:
        os.close(descriptor)


def _peer_credentials(connection: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket."""
    size = struct.calcsize("3i")
    return struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size))


# --- the job's side -------------------------------------------------------------------------------

def train_job(arguments: dict, training_code: str, idle_seconds: float, gpu_slot: str | None, log) -> None:
    """Trains a job's run (`train_run`'s arguments as JSON values) in a worker of the warm server
    when the job may use one and a server answers, else in this process; the log says which."""
    why_not = usable(gpu_slot, idle_seconds)
    if why_not is None:
        try:
            train(arguments, training_code, idle_seconds, log)
            return
        except ServerUnavailable as error:
            why_not = f"{error}"
    log(f"training in this job's own process: {why_not}")
    # Imported only here: the server's clients need none of it (scikit-learn alone costs ~1 s).
    from mnist3d.training.train import train_run

    train_run(**train_arguments(arguments), log=log)


def train(arguments: dict, training_code: str, idle_seconds: float, log, socket_dir: Path = SOCKET_DIR,
          start_timeout: float = 180.0) -> dict:
    """Has a worker of the warm server run `mnist3d.training.train.train_run(**arguments)`, writing to this
    process's stdout and stderr (the job's log); returns the worker's answer.

    Raises ServerUnavailable when no server answers (nothing was trained), WorkerFailed when the
    training raised or the worker died.
    """
    key = server_key(training_code)
    path = socket_dir / f"{key}.sock"
    private_directory(socket_dir)
    request = {"arguments": arguments, "cwd": os.getcwd(), "environ": dict(os.environ)}
    deadline = time.monotonic() + start_timeout
    spawned = None
    while True:
        connection = _connect(path)
        if connection is not None:
            answer = _ask(connection, request, log)
            if answer is not None:
                return answer
            spawned = None  # that server was idling out without taking the job: start another
        if spawned is None:
            try:
                spawned = _start_server(socket_dir, key, idle_seconds)
            except OSError as error:
                raise ServerUnavailable(f"cannot start a training server in {socket_dir}: {error}") from error
            log(f"started a warm training server (pid {spawned.pid}; its log: {socket_dir / (key + '.log')})")
        elif spawned.poll() not in (None, 0):
            raise ServerUnavailable(f"the training server exited with status {spawned.returncode}; "
                                    f"its log: {socket_dir / (key + '.log')}")
        # Exit status 0: another job's server holds the lock and is still importing; wait for its socket.
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"no training server answered on {path} within {start_timeout:.0f} s")
        time.sleep(0.2)


def _connect(path: Path) -> socket.socket | None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError as error:
        connection.close()
        if error.errno in (errno.ENOENT, errno.ECONNREFUSED):
            return None
        raise ServerUnavailable(f"cannot connect to {path}: {error}") from error
    # A socket left from a time the folder was open to others may be another account's server.
    _, uid, _ = _peer_credentials(connection)
    if uid != os.geteuid():
        connection.close()
        raise ServerUnavailable(f"{path} is served by uid {uid}, not by uid {os.geteuid()} who runs this job")
    return connection


def _ask(connection: socket.socket, request: dict, log) -> dict | None:
    """Sends the job; None when the server did not take it."""
    with connection:
        payload = json.dumps(request).encode()
        try:
            # The log's descriptors travel with the request: the worker writes the job's log itself.
            socket.send_fds(connection, [len(payload).to_bytes(8, "big")], [1, 2])
            connection.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            return None
        reader = connection.makefile("r")
        line = reader.readline()
        if not line:
            return None
        worker = json.loads(line)["worker"]
        log(f"training in worker {worker} of the warm training server")
        line = reader.readline()
    if not line:
        raise WorkerFailed(f"the training worker (pid {worker}) died without an answer; see the lines above")
    answer = json.loads(line)
    if not answer["ok"]:
        raise WorkerFailed(answer["error"])
    return answer


def _start_server(socket_dir: Path, key: str, idle_seconds: float) -> subprocess.Popen:
    private_directory(socket_dir)
    package_root = str(Path(__file__).resolve().parents[2])
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from mnist3d.training.server import main; "
            "main(sys.argv[2:])")
    with open(socket_dir / f"{key}.log", "a") as server_log:
        return subprocess.Popen(
            [sys.executable, "-c", code, package_root, str(socket_dir / f"{key}.sock"), "--idle", str(idle_seconds)],
            stdin=subprocess.DEVNULL, stdout=server_log, stderr=subprocess.STDOUT,
            # Its own session: Ctrl-C in the terminal stops the jobs; their workers follow them.
            start_new_session=True,
        )


# --- the server's side ----------------------------------------------------------------------------

def serve(path: Path, idle_seconds: float) -> None:
    """Imports the training code, then forks a worker per connection from its own user until idle
    for `idle_seconds`."""
    private_directory(path.parent)
    lock = open(path.with_suffix(".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _say("another server holds the lock: it serves these jobs")
        return
    started = time.perf_counter()
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pipeline.configure_tensorflow does
    import importlib

    modules = warm_modules()
    for module in modules:
        importlib.import_module(module)
    _say(f"imported {', '.join(modules)} in {time.perf_counter() - started:.1f} s")
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    _say(f"listening on {path}")
    workers: set[int] = set()
    last_busy = time.monotonic()
    try:
        while True:
            readable, _, _ = select.select([listener], [], [], 1.0)
            workers -= _reaped(workers)
            if workers:
                last_busy = time.monotonic()
            if readable:
                connection, _ = listener.accept()
                if not _from_owner(connection):
                    connection.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _work(connection)  # never returns
                connection.close()
                workers.add(pid)
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > idle_seconds:
                _say(f"idle for {idle_seconds:.0f} s: exiting")
                return
    finally:
        # A job connecting now finds no socket and starts a new server, which may take the lock at
        # once rather than after this process's TensorFlow has torn down.
        path.unlink(missing_ok=True)
        listener.close()
        lock.close()


def _from_owner(connection: socket.socket) -> bool:
    """Whether the peer runs as this server's user; says so when it does not."""
    pid, uid, _ = _peer_credentials(connection)
    if uid == os.geteuid():
        return True
    _say(f"refused a connection from uid {uid} (pid {pid}): this server trains only for uid {os.geteuid()}")
    return False


def _reaped(workers: set[int]) -> set[int]:
    done = set()
    for pid in workers:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            done.add(pid)
            _say(f"worker {pid} exited with status {os.waitstatus_to_exitcode(status)}")
    return done


def _work(connection: socket.socket) -> None:
    """In the forked worker: the job's environment and log, then train_run; exits the process."""
    status = 1
    try:
        header, fds, _, _ = socket.recv_fds(connection, 8, 2)
        size = int.from_bytes(header, "big")
        payload = b""
        while len(payload) < size:
            chunk = connection.recv(min(size - len(payload), MAX_MESSAGE))
            if not chunk:
                os._exit(1)
            payload += chunk
        request = json.loads(payload)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["environ"])
        for fd, target in zip(fds, (1, 2)):
            os.dup2(fd, target)
            os.close(fd)
        connection.sendall((json.dumps({"worker": os.getpid()}) + "\n").encode())
        answered = threading.Event()
        threading.Thread(target=_exit_when_closed, args=(connection, answered), daemon=True).start()
        answer = _train(request["arguments"])
        answered.set()
        # The job's log is whole before the job hears the answer: it, and Snakemake, read it next.
        sys.stdout.flush()
        sys.stderr.flush()
        connection.sendall((json.dumps(answer) + "\n").encode())
        status = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def train_arguments(arguments: dict) -> dict:
    """`train` takes train_run's arguments as JSON values (paths as strings); these are train_run's."""
    from mnist3d.training.train import Run, RunPaths, TrainingEnvironment

    paths = {name: None if path is None else Path(path) for name, path in arguments["paths"].items()}
    return {"run": Run(**arguments["run"]), "paths": RunPaths(**paths),
            "environment": TrainingEnvironment(**arguments["environment"])}


def _train(arguments: dict) -> dict:
    from mnist3d.steplog import timestamped
    from mnist3d.training.train import train_run

    try:
        metrics = train_run(**train_arguments(arguments), log=timestamped(sys.stdout))
    except Exception as error:
        traceback.print_exc()
        return {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return {"ok": True, "status": metrics["status"]}


def _exit_when_closed(connection: socket.socket, answered: threading.Event) -> None:
    """The job sends nothing more: end of stream before the answer means it was killed, so its
    training stops too (its checkpoint stays, for the next attempt)."""
    try:
        while connection.recv(1):
            pass
    except OSError:
        pass
    if not answered.is_set():
        print(f"[{time.strftime('%H:%M:%S')}] the job stopped waiting: worker {os.getpid()} stops", flush=True)
        os._exit(143)


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] server {os.getpid()}: {message}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the warm training server (started by training jobs)")
    parser.add_argument("socket", type=Path)
    parser.add_argument("--idle", type=float, default=120.0, help="seconds without a job before exiting")
    args = parser.parse_args(argv)
    serve(args.socket, args.idle)

