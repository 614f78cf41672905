"""Atomic file writes: an interrupted step leaves no file that looks finished."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path


def _create_temporary(path: Path) -> Path:
    """Create an empty, new file beside `path` whose name keeps its suffix.

    Opened with mode 0o666 and O_EXCL, so the kernel applies the process umask itself, as for any
    file the step writes (tempfile.mkstemp's 0600 would hide results from a team's group). The
    umask is never read: reading it means setting it, which for an instant would give the files
    that other threads create (TensorFlow's, for one) the wrong permissions.
    """
    for _ in range(100):
        temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}{path.suffix}")
        try:
            os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(f"no free temporary name beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block ends without error.

    The temporary name keeps the suffix, so writers that pick a format from it (Keras, NumPy,
    matplotlib) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _create_temporary(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
