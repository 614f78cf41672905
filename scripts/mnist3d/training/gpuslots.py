"""One GPU per training job on one machine: lock files pick free devices before TensorFlow loads.

Snakemake's `--resources gpu=N` counts GPUs but does not say which one a job should use, so every
TensorFlow process would put its work on the first device. `claim` takes a non-blocking `flock` on
`<lock_dir>/gpu-<id>.lock` per device and sets `CUDA_VISIBLE_DEVICES` to the ones it holds. The kernel
drops a `flock` when its process dies, so a job killed in any way (Ctrl-C, SIGKILL, out of memory)
frees its slot without clean-up. This module must not import TensorFlow: TensorFlow reads
`CUDA_VISIBLE_DEVICES` once, when it loads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from mnist3d.steplog import UserError

VARIABLE = "CUDA_VISIBLE_DEVICES"
# `nvidia-smi -L` lists one physical GPU per "GPU <index>: <name> (UUID: ...)" line; MIG devices
# appear as indented "MIG ..." lines under their GPU and are addressed by the GPU's index here.
_GPU_LINE = re.compile(r"^GPU (\d+):")


class SlotError(UserError):
    """No usable GPU slot: more GPUs asked for than exist, or none came free in time."""


def parse_gpu_list(text: str) -> list[str]:
    """GPU indices, as strings, from the output of `nvidia-smi -L`."""
    return [match.group(1) for line in text.splitlines() if (match := _GPU_LINE.match(line.strip()))]


def detect_gpus(command: str = "nvidia-smi") -> tuple[list[str], str]:
    """(GPU indices, why none) from `nvidia-smi -L`; a missing command or driver means no GPUs."""
    try:
        result = subprocess.run([command, "-L"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return [], f"no `{command}` command"
    except (OSError, subprocess.TimeoutExpired) as error:
        return [], f"`{command} -L` failed ({error})"
    if result.returncode != 0:
        first_line = (result.stdout + result.stderr).strip().splitlines()[:1]
        return [], f"`{command} -L` exited with {result.returncode}" + (f": {first_line[0]}" if first_line else "")
    gpus = parse_gpu_list(result.stdout)
    return gpus, "" if gpus else f"`{command} -L` lists no GPU"


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive flock on `path`, or None when another process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    # Who holds it, for a person looking at a busy slot; the lock itself is what counts.
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def _release(descriptors: dict[str, int]) -> None:
    for descriptor in descriptors.values():
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
    descriptors.clear()


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


@contextlib.contextmanager
def claim(
    amount: int,
    gpus: Sequence[str | int] | None,
    lock_dir: str | Path,
    log: Callable[[str], None],
    timeout: float | None = None,
    poll: float = 0.2,
    report_every: float = 30.0,
    nvidia_smi: str = "nvidia-smi",
) -> Iterator[str | None]:
    """Hold `amount` free GPUs for the duration of the block; yields the CUDA_VISIBLE_DEVICES value.

    `gpus` is the configured list of GPU ids (`train.gpus`); empty or None asks `nvidia-smi -L`.
    Yields None, leaving the environment alone, when `amount` is 0 or there is no GPU. Where
    CUDA_VISIBLE_DEVICES is already set (by SLURM, or by the user), it is left alone and yielded:
    that scheduler has already given this job its own devices. When every slot is busy (another
    snakemake or a user process holds one), waits, logging every `report_every` seconds, and
    raises SlotError after `timeout` seconds (None: wait as long as it takes).
    """
    if amount <= 0:
        yield None
        return
    if VARIABLE in os.environ:
        preset = os.environ[VARIABLE]
        log(f"{VARIABLE}={preset!r} was set before this job started (e.g. by SLURM); left as it is")
        yield preset
        return
    if gpus:
        candidates, source = [str(gpu) for gpu in gpus], "train.gpus"
    else:
        candidates, why_none = detect_gpus(nvidia_smi)
        source = f"{nvidia_smi} -L"
        if not candidates:
            log(f"no GPU found ({why_none}); {VARIABLE} left unset")
            yield None
            return
    if amount > len(candidates):
        raise SlotError(
            f"a training job asks for {amount} GPUs but {source} lists {len(candidates)} "
            f"({', '.join(candidates)}); lower train.gpu_amount or list more GPUs in train.gpus"
        )
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    held: dict[str, int] = {}
    started = last_report = time.monotonic()
    try:
        while True:
            for gpu in candidates:
                if len(held) == amount:
                    break
                descriptor = _try_lock(lock_dir / f"gpu-{gpu}.lock")
                if descriptor is not None:
                    held[gpu] = descriptor
            if len(held) == amount:
                break
            # Never sit on part of a multi-GPU claim while waiting: two such jobs could block each other.
            _release(held)
            now = time.monotonic()
            if timeout is not None and now - started >= timeout:
                raise SlotError(
                    f"no {amount} free GPU(s) among {', '.join(candidates)} after {timeout:g} s "
                    f"(lock files in {lock_dir})"
                )
            if now - last_report >= report_every:
                busy = ", ".join(f"GPU {gpu} (pid {_holder(lock_dir / f'gpu-{gpu}.lock')})" for gpu in candidates)
                log(f"waiting {now - started:.0f} s for {amount} free GPU(s); held: {busy}")
                last_report = now
            time.sleep(poll)
        value = ",".join(held)
        os.environ[VARIABLE] = value
        log(f"GPU slot: {VARIABLE}={value} (of {', '.join(candidates)} from {source}; "
            f"waited {time.monotonic() - started:.1f} s)")
        try:
            yield value
        finally:
            os.environ.pop(VARIABLE, None)
    finally:
        _release(held)
