import os

import pandas as pd
import pytest

from mnist3d.atomic import atomic_path, write_json
from mnist3d.results import metrics


def leftovers(directory):
    return [path.name for path in directory.iterdir() if path.name.startswith(".")]


def test_an_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old and finished")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as temporary:
            temporary.write_text("half of the new")
            raise KeyboardInterrupt
    assert path.read_text() == "old and finished"
    assert leftovers(tmp_path) == []


def test_an_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "new" / "model.keras") as temporary:
            assert temporary.suffix == ".keras"  # writers that choose a format by suffix still can
            temporary.write_bytes(b"partial")
            raise RuntimeError("killed")
    assert list((tmp_path / "new").iterdir()) == []


def test_a_finished_write_replaces_the_file_with_umask_permissions(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    previous = os.umask(0o022)
    try:
        write_json(path, {"status": "ok"})
    finally:
        os.umask(previous)
    assert path.read_text() == '{\n  "status": "ok"\n}\n'
    assert path.stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == []


def test_a_writer_failing_midway_keeps_the_old_csv(tmp_path, monkeypatch):
    path = tmp_path / "metrics.csv"
    path.write_text("run\nold/rep1\n")

    def fail_midway(self, target, **options):
        with open(target, "w") as handle:
            handle.write("run\nnew/rep1\n")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        metrics.write_csv(pd.DataFrame({"run": ["new/rep1"]}), path)
    assert path.read_text() == "run\nold/rep1\n"
    assert leftovers(tmp_path) == []


def test_writes_never_change_the_process_umask(tmp_path, monkeypatch):
    # Setting the umask, even to put it back, races with the files other threads create.
    def refuse(mask):
        raise AssertionError(f"os.umask({mask:o}) called")

    monkeypatch.setattr(os, "umask", refuse)
    write_json(tmp_path / "metrics.json", {"status": "ok"})
    assert (tmp_path / "metrics.json").exists()
