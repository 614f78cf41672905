"""Each rule's output, warnings and errors go to its log file; an expected error ends as one clear line."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Iterable
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input: report the message alone, without a traceback."""


@contextlib.contextmanager
def step_log(path: str | Path, expected_errors: tuple[type[BaseException], ...] = (UserError,),
             outputs: Iterable[str] = ()):
    """Redirect this process's stdout and stderr (file descriptors too, for TensorFlow's C++ logs) to `path`.

    Yields a `log(message)` function that writes timestamped, flushed lines. A step that succeeds
    ends its log with its duration and the `outputs` it wrote, so even a quiet step's log says it
    ran. An expected error is written to the log and to the terminal as one line, and the process
    exits with status 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(2)
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)

        log = timestamped(handle)
        started = time.perf_counter()
        try:
            yield log
        except expected_errors as error:
            log(f"ERROR: {error}")
            os.write(terminal, f"ERROR: {error}\n".encode())
            raise SystemExit(1) from None
        except Exception:
            # Into the log too, not only the terminal: Snakemake's show-failed-logs prints the log.
            traceback.print_exc(file=handle)
            raise
        else:
            written = ", ".join(str(output) for output in outputs)
            log(f"done in {time.perf_counter() - started:.1f} s" + (f": wrote {written}" if written else ""))
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in (*saved, terminal):
                os.close(descriptor)


def timestamped(handle):
    """A `log(message)` function writing flushed `[HH:MM:SS] message` lines to `handle`."""

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=handle, flush=True)

    return log


def rule_log(job, expected_errors: tuple[type[BaseException], ...] = (UserError,)):
    """step_log for a Snakemake script job (the `snakemake` object): its log file, its outputs at the end."""
    return step_log(job.log[0], expected_errors, outputs=job.output)
