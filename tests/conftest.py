"""Shared test set-up: the package on sys.path, and a real Snakemake run of a tiny workflow copy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

# The smallest network the workflow builds: one block, one-epoch runs, for tests that train for real.
TINY_DEFAULTS = """\
defaults:
  filters: [4]
  kernel_sizes: [3]
  pool_sizes: [4]
  dense: 16
  dropout: 0.2
  learning_rate: 0.003
  epochs: 1
  batch_size: 32
  seed: 1
  replicates: 1
"""
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "profiles", "envs")
TEST_CONFIG = "config/test/config.yaml"


def copy_workflow(destination: Path) -> Path:
    """A copy of the workflow's own files (no results, logs or caches) in `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part, ignore=ignore)
        else:
            shutil.copy2(source, destination / part)
    return destination


# Appended to a workflow copy's mnist3d/steplog.py (how a job logs: outside every code digest, so the
# copy's runs keep their identity): the first training job to log a batch of epoch 3, after epoch
# 2's checkpoint is saved, creates MARKER and sleeps there until it is killed. Every later job, the
# resumed one included, goes on. One job wins the exclusive create; the others see the file.
PAUSE_AT_EPOCH_3 = """

_timestamped_without_pause = timestamped


def timestamped(handle):
    log = _timestamped_without_pause(handle)

    def log_and_pause(message):
        log(message)
        if message.startswith("  epoch 3/"):
            try:
                os.close(os.open({marker!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            time.sleep(3600)

    return log_and_pause
"""


def pause_first_job_at_epoch_3(workdir: Path) -> Path:
    """Makes the first training job in `workdir` stop during epoch 3 (PAUSE_AT_EPOCH_3), so that a
    kill lands there however loaded the machine is; returns the marker file that says it has."""
    marker = workdir / "paused-at-epoch-3"
    with open(workdir / "scripts" / "mnist3d" / "steplog.py", "a") as handle:
        handle.write(PAUSE_AT_EPOCH_3.format(marker=str(marker)))
    return marker


def running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# Far above any one Snakemake call of the suite on a loaded 2-core box: a job that hangs fails its
# test, with Snakemake's output, instead of stalling CI until CI's own limit.
RUN_TIMEOUT = 1200


def run_to_end(command: list[str], cwd: Path, environment: dict) -> subprocess.CompletedProcess:
    """Run `command` with its output captured, in a session of its own. After RUN_TIMEOUT seconds
    kill the session (Snakemake and every job it started, which would otherwise hold the output
    pipes open) and fail with what it printed."""
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # a job that left the session still holds a pipe
            stdout = stderr = ""
        raise AssertionError(
            f"{' '.join(map(str, command[1:]))} still ran after {RUN_TIMEOUT} s:\n{stdout[-4000:]}\n{stderr[-8000:]}"
        ) from None
    except BaseException:  # Ctrl-C on the tests: the session would not see it
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def snakemake(workdir: Path, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real Snakemake command line in `workdir` on the tiny test config."""
    # Targets first: --configfile takes every word after it.
    command = [sys.executable, "-m", "snakemake", *arguments, "--cores", "2", "--configfile", TEST_CONFIG]
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = run_to_end(command, workdir, environment)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(arguments)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


# Each rule as Snakemake reads the workflow, printed by a separate process so that loading the
# workflow leaves the test's own process alone.
RULES_PROGRAM = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.io import is_flagged
from snakemake.settings.types import OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings(enable_file_logging=False)) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), snakefile=Path("Snakefile"))
    rules = []
    for rule in workflow._workflow.rules:
        actions = {kind: getattr(rule, kind) for kind in ("script", "shellcmd", "notebook", "wrapper", "cwl")}
        done = [kind for kind, value in actions.items() if value is not None]
        names = {index: name for name, (index, _) in rule.output._names.items()}
        reported = []
        for index, item in enumerate(rule.output):
            if is_flagged(item, "report"):
                caption = item.flags["report"].caption
                reported.append({
                    "name": names.get(index),
                    "snakefile": str(rule.snakefile),
                    "caption": None if caption is None else str(caption.get_path_or_uri(secret_free=True)),
                })
        rules.append({
            "name": rule.name,
            "snakefile": str(rule.snakefile),
            "action": done[0] if done else ("none" if rule.norun else "run"),
            "script": rule.script,
            "conda": rule.conda_env if rule.conda_env is None or isinstance(rule.conda_env, str) else repr(rule.conda_env),
            "inputs": list(rule.input.keys()),
            "reported": reported,
        })
Path(sys.argv[1]).write_text(json.dumps(rules))
"""


def workflow_rules(workdir: Path, scratch: Path) -> list[dict]:
    """Every rule of the workflow in `workdir` as Snakemake reads it: name, snakefile, action (script,
    shellcmd, ..., "none" for a target such as `all`), script, conda, input names and the outputs
    marked for `snakemake --report` with their captions. Raises RuntimeError when Snakemake cannot
    load the workflow."""
    out = scratch / "rules.json"
    result = subprocess.run([sys.executable, "-c", RULES_PROGRAM, str(out)], cwd=workdir, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"Snakemake could not load {workdir}/Snakefile:\n{result.stderr[-4000:]}")
    return json.loads(out.read_text())


def planned_jobs(dry_run_output: str) -> dict[str, int]:
    """Job counts per rule from the 'Job stats' table of `snakemake -n`."""
    counts, in_table = {}, False
    for line in dry_run_output.splitlines():
        words = line.split()
        if words[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(words) == 2 and words[1].isdigit() and words[0] != "total":
            counts[words[0]] = int(words[1])
        elif in_table and words[:1] == ["total"]:
            break
    return counts


@pytest.fixture(scope="session")
def tiny_workflow(tmp_path_factory) -> Path:
    """A workflow copy on which the whole default target ran once, for real, on tiny data."""
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"))
    snakemake(workdir)
    return workdir


@pytest.fixture
def trained_copy(tiny_workflow, tmp_path) -> Path:
    """A copy of the finished tiny workflow, results and timestamps included, that a test may edit."""
    copy = tmp_path / "copy"
    # Not the warm training server's folder: its socket cannot be copied, and it serves the original.
    shutil.copytree(tiny_workflow, copy, symlinks=True, ignore=shutil.ignore_patterns("train-server"))
    return copy
