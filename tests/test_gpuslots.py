import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mnist3d.training import gpuslots
from mnist3d.training.gpuslots import SlotError

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

NVIDIA_SMI_L = """\
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-1d2b7c9e-0000-0000-0000-000000000000)
  MIG 1g.5gb      Device  0: (UUID: MIG-5c9f0000-0000-0000-0000-000000000000)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-1d2b7c9e-0000-0000-0000-000000000001)
GPU 12: Tesla V100-PCIE-16GB (UUID: GPU-1d2b7c9e-0000-0000-0000-000000000012)
"""

# A training job in miniature: claim a slot, record it with start and end times, work briefly.
# With a gate (two descriptors), it says it is ready and claims only when the test opens the gate.
WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from mnist3d.training import gpuslots

    lock_dir, record, gpus, hold = sys.argv[1], Path(sys.argv[2]), sys.argv[3].split(","), float(sys.argv[4])
    if len(sys.argv) > 5:
        ready, go = int(sys.argv[5]), int(sys.argv[6])
        os.write(ready, b".")
        os.read(go, 1)
    with gpuslots.claim(1, gpus, lock_dir, log=lambda message: None, timeout=30, poll=0.02) as slot:
        started = time.time()
        Path(record.with_suffix(".ready")).touch()
        time.sleep(hold)
        ended = time.time()
    record.write_text(f"{slot} {started} {ended}")
    """
)


@pytest.fixture(autouse=True)
def no_scheduler_devices(monkeypatch):
    monkeypatch.delenv(gpuslots.VARIABLE, raising=False)


def fake_nvidia_smi(directory: Path, output: str, status: int = 0) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "listing.txt").write_text(output)
    script = directory / "nvidia-smi"
    script.write_text(f'#!/bin/sh\n/bin/cat "{directory / "listing.txt"}"\nexit {status}\n')
    script.chmod(0o755)
    return directory


@contextlib.contextmanager
def held_by_another_process(lock_dir: Path, gpu: str):
    """The slot as another process (another snakemake, a user's script) would hold it."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"gpu-{gpu}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write("4242\n")
        handle.flush()
        yield


@pytest.fixture
def worker(tmp_path) -> Path:
    """The worker's script, written once before any worker starts: rewritten while another worker
    reads it, a worker could read it empty, run nothing and exit 0."""
    path = tmp_path / "worker.py"
    path.write_text(WORKER)
    return path


def start_worker(worker, tmp_path, name, gpus, hold, gate=()):
    environment = {**os.environ, "PYTHONPATH": str(SCRIPTS)}
    environment.pop(gpuslots.VARIABLE, None)
    return subprocess.Popen(
        [sys.executable, str(worker), str(tmp_path / "locks"), str(tmp_path / f"{name}.txt"), gpus, str(hold),
         *map(str, gate)],
        env=environment, pass_fds=gate,
    )


def read_exactly(descriptor: int, count: int, timeout: float) -> bytes:
    """`count` bytes from a pipe, or fewer when its writers are gone or `timeout` seconds pass."""
    data, deadline = b"", time.monotonic() + timeout
    while len(data) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            break
        chunk = os.read(descriptor, count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def record_of(tmp_path, name) -> tuple[str, float, float]:
    """(slot, start, end) a worker recorded; a worker that exited 0 without one ran nothing."""
    path = tmp_path / f"{name}.txt"
    assert path.exists(), f"{name} exited 0 but recorded no slot: it ran nothing"
    slot, started, ended = path.read_text().split()
    assert slot in ("0", "1") and float(started) <= float(ended), (name, slot, started, ended)
    return slot, float(started), float(ended)


def test_parses_nvidia_smi_listing_and_skips_mig_lines():
    assert gpuslots.parse_gpu_list(NVIDIA_SMI_L) == ["0", "1", "12"]
    assert gpuslots.parse_gpu_list("") == []


def test_gpus_come_from_nvidia_smi_on_path(tmp_path, monkeypatch):
    fake = fake_nvidia_smi(tmp_path / "bin", NVIDIA_SMI_L)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    lines = []
    with gpuslots.claim(2, None, tmp_path / "locks", lines.append) as value:
        assert value == "0,1" and os.environ[gpuslots.VARIABLE] == "0,1"
    assert gpuslots.VARIABLE not in os.environ
    assert "CUDA_VISIBLE_DEVICES=0,1 (of 0, 1, 12 from nvidia-smi -L" in lines[0]
    with held_by_another_process(tmp_path / "locks", "0"), held_by_another_process(tmp_path / "locks", "1"):
        with gpuslots.claim(1, None, tmp_path / "locks", lines.append) as value:
            assert value == "12"


@pytest.mark.parametrize(
    "listing, status, reason",
    [
        (None, 0, "no `nvidia-smi` command"),
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n", 9, "exited with 9"),
        ("No devices found.\n", 0, "lists no GPU"),
    ],
)
def test_no_gpus_leaves_the_environment_alone(tmp_path, monkeypatch, listing, status, reason):
    directory = tmp_path / "bin"
    directory.mkdir()
    if listing is not None:
        fake_nvidia_smi(directory, listing, status)
    monkeypatch.setenv("PATH", str(directory))
    lines = []
    with gpuslots.claim(1, None, tmp_path / "locks", lines.append) as value:
        assert value is None and gpuslots.VARIABLE not in os.environ
    assert reason in lines[0] and "left unset" in lines[0]
    assert not (tmp_path / "locks").exists()


def test_scheduler_devices_are_respected(tmp_path, monkeypatch):
    monkeypatch.setenv(gpuslots.VARIABLE, "3")
    lines = []
    with gpuslots.claim(1, ["0", "1"], tmp_path / "locks", lines.append) as value:
        assert value == "3"
    assert os.environ[gpuslots.VARIABLE] == "3"
    assert "was set before this job started" in lines[0]
    assert not (tmp_path / "locks").exists()


def test_amount_zero_claims_nothing(tmp_path):
    lines = []
    with gpuslots.claim(0, ["0"], tmp_path / "locks", lines.append) as value:
        assert value is None and gpuslots.VARIABLE not in os.environ
    assert lines == []


def test_configured_gpus_and_impossible_amounts(tmp_path):
    with gpuslots.claim(1, [4, 7], tmp_path / "locks", lambda message: None) as value:
        assert value == "4"
    with pytest.raises(SlotError, match="asks for 3 GPUs but train.gpus lists 2 \\(4, 7\\)"):
        with gpuslots.claim(3, [4, 7], tmp_path / "locks", lambda message: None):
            pass


def test_busy_slots_wait_log_and_time_out(tmp_path):
    lines = []
    with held_by_another_process(tmp_path / "locks", "0"):
        with pytest.raises(SlotError, match=r"no 1 free GPU\(s\) among 0 after 2 s"):
            with gpuslots.claim(1, ["0"], tmp_path / "locks", lines.append, timeout=2, report_every=0):
                pass
    assert any("held: GPU 0 (pid 4242)" in line for line in lines)
    # Released on the way out: the slot is free again, and the failed claim kept nothing.
    with gpuslots.claim(1, ["0"], tmp_path / "locks", lines.append, timeout=0) as value:
        assert value == "0"


def test_six_concurrent_jobs_over_two_slots_never_share_one(worker, tmp_path):
    ready_read, ready_write = os.pipe()
    go_read, go_write = os.pipe()
    try:
        workers = [start_worker(worker, tmp_path, f"job{number}", "0,1", hold=0.4, gate=(ready_write, go_read))
                   for number in range(6)]
    finally:
        os.close(ready_write)  # the workers hold their own copies
        os.close(go_read)
    try:
        # All six are started before any claims, so both slots are contended, not taken in turn.
        assert read_exactly(ready_read, 6, timeout=60) == b"." * 6, "not every worker started"
        os.write(go_write, b"." * 6)
    finally:
        os.close(ready_read)
        os.close(go_write)  # a worker still at the gate reads the end of the pipe and goes on
    assert [process.wait(timeout=60) for process in workers] == [0] * 6
    records = [record_of(tmp_path, f"job{number}") for number in range(6)]
    assert {slot for slot, _, _ in records} == {"0", "1"}
    for slot in ("0", "1"):
        spans = sorted((start, end) for used, start, end in records if used == slot)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), (slot, spans)


def test_a_killed_holders_slot_is_reused(worker, tmp_path):
    holder = start_worker(worker, tmp_path, "holder", "0", hold=60)
    deadline = time.monotonic() + 30
    while not (tmp_path / "holder.ready").exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(SlotError):
        with gpuslots.claim(1, ["0"], tmp_path / "locks", lambda message: None, timeout=0.2):
            pass
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL
    with gpuslots.claim(1, ["0"], tmp_path / "locks", lambda message: None, timeout=5) as value:
        assert value == "0"
