"""The warm training server serves its own user alone: a request names files its worker writes.

The socket's folder is 0700 whatever the umask, and each end checks the other's uid. The tests with
another account run as root and drop to uid 65534 in a fresh process; that account is put in the
owner's group, as a colleague's account is on a shared login node under umask 002.
"""

import json
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mnist3d.training import server as trainserver

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
STRANGER = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="acting as another account needs root")

# Another account in the owner's group (argv[1]: that group), sending a job's request to argv[2].
# It imports all it needs before it drops root: this Python's files may be readable by root alone.
STRANGER_CLIENT = f"""
import json, os, socket, sys
os.setgroups([]); os.setgid(int(sys.argv[1])); os.setuid({STRANGER})
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    connection.connect(sys.argv[2])
except PermissionError:
    print("no access")
    sys.exit()
payload = json.dumps({{"arguments": {{}}, "cwd": "/", "environ": {{}}}}).encode()
try:
    socket.send_fds(connection, [len(payload).to_bytes(8, "big")], [1, 2])
    connection.sendall(payload)
    answer = connection.recv(1 << 16)
except (BrokenPipeError, ConnectionResetError):
    answer = b""
print("answer:", answer.decode().strip() or "none")
"""

# Another account's server, listening on argv[2]: says how many bytes its first client sent.
STRANGER_SERVER = f"""
import os, socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.setgroups([]); os.setgid(int(sys.argv[1])); os.setuid({STRANGER})
listener.bind(sys.argv[2])
listener.listen(1)
print("listening", flush=True)
listener.settimeout(60)
connection, _ = listener.accept()
connection.settimeout(60)
print("received", len(connection.recv(1 << 16)), flush=True)
"""


@pytest.fixture
def shared_folder():
    """A folder that other accounts may pass through, as a shared project folder is (the test's own
    tmp_path lies in root's private folder)."""
    folder = Path(tempfile.mkdtemp(prefix="train-server-", dir="/tmp"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder)


def output_line(process: subprocess.Popen, text: str, timeout: float = 180) -> str:
    """The next line of `process`'s output (unbuffered) that holds `text`."""
    deadline, seen = time.monotonic() + timeout, []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0 and select.select([process.stdout], [], [], remaining)[0], (
            f"no {text!r} within {timeout:.0f} s; output so far:\n{''.join(seen)}")
        line = process.stdout.readline().decode()
        assert line, f"exited ({process.wait()}) before {text!r}; output:\n{''.join(seen)}"
        if text in line:
            return line
        seen.append(line)


def as_stranger(code: str, path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, str(os.getegid()), str(path)], cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)


def stranger_asks(path: Path) -> str:
    process = as_stranger(STRANGER_CLIENT, path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output.decode()
    return output.decode().strip()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_socket_folder_is_private_under_umask_002(tmp_path):
    socket_dir = tmp_path / ".snakemake" / "train-server"
    previous = os.umask(0o002)
    try:
        trainserver.private_directory(socket_dir)
    finally:
        os.umask(previous)
    assert mode(socket_dir.parent) == 0o775  # what the umask gives any other folder
    assert mode(socket_dir) == 0o700


def test_an_open_socket_folder_of_this_user_is_closed(tmp_path):
    socket_dir = tmp_path / "train-server"
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    trainserver.private_directory(socket_dir)
    assert mode(socket_dir) == 0o700


def test_a_link_in_place_of_the_socket_folder_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere").chmod(0o755)
    (tmp_path / "train-server").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(trainserver.ServerUnavailable, match="cannot use .*train-server"):
        trainserver.private_directory(tmp_path / "train-server")
    assert mode(tmp_path / "elsewhere") == 0o755


@as_root
def test_a_socket_folder_of_another_account_makes_the_job_train_alone(tmp_path):
    socket_dir = tmp_path / "train-server"
    socket_dir.mkdir()
    socket_dir.chmod(0o777)
    os.chown(socket_dir, STRANGER, STRANGER)
    lines = []
    # scripts/train_run.py logs the reason and trains in the job's own process.
    with pytest.raises(trainserver.ServerUnavailable, match=f"belongs to uid {STRANGER}, not to uid 0"):
        trainserver.train({}, "code-v1", idle_seconds=10, log=lines.append, socket_dir=socket_dir)
    assert lines == [] and list(socket_dir.iterdir()) == []  # no server started, nothing written
    assert mode(socket_dir) == 0o777  # someone else's folder: left as it is


def test_a_peer_of_another_uid_is_refused_with_a_line_and_this_users_is_not(capsys):
    own, other = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with own, other:
        assert trainserver._peer_credentials(own) == (os.getpid(), os.geteuid(), os.getegid())
        assert trainserver._from_owner(own)
        assert capsys.readouterr().out == ""

    class StrangersConnection:
        def getsockopt(self, level, option, size):
            assert (level, option, size) == (socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            return struct.pack("3i", 4242, os.geteuid() + 1, 100)

    assert not trainserver._from_owner(StrangersConnection())
    assert f"refused a connection from uid {os.geteuid() + 1} (pid 4242)" in capsys.readouterr().out


@as_root
def test_the_server_forks_no_worker_for_another_account(shared_folder, tmp_path):
    socket_dir = shared_folder / "train-server"
    # As a job under umask 002 left it before the folder was made private.
    socket_dir.mkdir()
    socket_dir.chmod(0o775)
    path = socket_dir / "key.sock"
    code = "import sys; sys.path.insert(0, sys.argv[1]); from mnist3d.training.server import main; main(sys.argv[2:])"
    server = subprocess.Popen([sys.executable, "-c", code, str(SCRIPTS), str(path), "--idle", "120"],
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, umask=0o002,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    try:
        output_line(server, "listening on")
        assert mode(socket_dir) == 0o700
        assert stranger_asks(path) == "no access"

        # The folder opened to the group, as by hand: the server's own check stands alone.
        socket_dir.chmod(0o710)
        assert stranger_asks(path) == "answer: none"
        output_line(server, f"refused a connection from uid {STRANGER}", timeout=30)

        # Its own user is served: a worker forks and answers.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection, \
                open(tmp_path / "worker.log", "w") as log:
            connection.settimeout(60)
            connection.connect(str(path))
            payload = json.dumps({"arguments": {}, "cwd": str(tmp_path), "environ": dict(os.environ)}).encode()
            socket.send_fds(connection, [len(payload).to_bytes(8, "big")], [log.fileno(), log.fileno()])
            connection.sendall(payload)
            worker = json.loads(connection.makefile("r").readline())["worker"]
        output_line(server, f"worker {worker} exited", timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)


@as_root
def test_a_job_sends_nothing_to_a_server_of_another_account(shared_folder):
    socket_dir = shared_folder / ".snakemake" / "train-server"
    trainserver.private_directory(socket_dir)
    # Open for a while (opened by hand, or made under an older version): another account plants its server.
    socket_dir.chmod(0o777)
    path = socket_dir / f"{trainserver.server_key('code-v1')}.sock"
    stranger = as_stranger(STRANGER_SERVER, path)
    try:
        output_line(stranger, "listening", timeout=60)
        lines = []
        with pytest.raises(trainserver.ServerUnavailable, match=f"served by uid {STRANGER}, not by uid 0"):
            trainserver.train({"run": "any"}, "code-v1", idle_seconds=10, log=lines.append, socket_dir=socket_dir)
        output, _ = stranger.communicate(timeout=60)
    finally:
        stranger.kill()
        stranger.wait()
    assert output.decode().split() == ["received", "0"]  # neither the request nor the job's environment
    assert lines == [] and mode(socket_dir) == 0o700
