"""The workflow on a real one-node SLURM cluster, through profiles/slurm, against a local run.

Opt-in by what is installed: skipped unless slurm-wlm and munge are (`.ci/slurm-setup.sh`
installs them). Select or leave out with `-m slurm` / `-m "not slurm"`. The cluster (munged,
slurmctld, slurmd on loopback, see tests/slurm/) lives in a temporary directory for this
module only and is torn down afterwards, leaving no process behind.
"""

import csv
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TEST_CONFIG, copy_workflow, planned_jobs

sys.path.insert(0, str(Path(__file__).resolve().parent / "slurm"))
import minicluster  # noqa: E402  (needs the path above)

UNAVAILABLE = minicluster.unavailable_reason()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no SLURM: {UNAVAILABLE}"),
]

# Partitions of tests/slurm/slurm.conf.in, handed to the profile the way a user would.
PARTITIONS = {"SBATCH_PARTITION": "cpu", "SBATCH_GPU_PARTITION": "gpu"}
# Measured durations differ between any two runs; everything else must not.
TIMING_COLUMNS = {"training_seconds", "samples_per_second"}
# Generous for 2 shared cores; a run usually takes two to four minutes.
RUN_TIMEOUT = 1200
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+)\)\.")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    mini = minicluster.MiniCluster(tmp_path_factory.mktemp("slurm"))
    try:
        seconds = mini.start()
        print(f"one-node SLURM cluster up in {seconds:.1f}s")
        yield mini
    finally:
        left = mini.stop()
        assert not left, f"cluster processes left behind: {left}"


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The default target run through the SLURM profile: (workflow copy, Snakemake's log)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm-workflow"))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        "profiles/slurm",
        "--configfile",
        TEST_CONFIG,
        # No slurmdbd, so no sacct: poll squeue, and soon, as the jobs are short.
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "2",
        # One SLURM log per job, named by its SLURM job id, kept as evidence.
        "--slurm-keep-successful-logs",
    ]
    environment = {
        **{k: v for k, v in cluster.env.items() if not k.startswith("SBATCH_")},
        **PARTITIONS,
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    try:
        result = subprocess.run(
            command,
            cwd=workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"snakemake on SLURM ran over {RUN_TIMEOUT}s:\n{error.stderr}\n{cluster.log_tails()}")
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"snakemake on SLURM failed:\n{log[-8000:]}\n{cluster.log_tails()}"
    return workdir, log


def submissions(log):
    """SLURM job id -> the rule of the Snakemake job submitted as it, from Snakemake's log."""
    jobs = {}
    for _, slurm_id, slurm_log in SUBMITTED.findall(log):
        # The plugin writes each job's log under .snakemake/slurm_logs/rule_<rule>/...
        rule_dir = next(part for part in Path(slurm_log).parts if part.startswith("rule_"))
        jobs[slurm_id] = rule_dir.removeprefix("rule_")
    return jobs


def rule_of(comment):
    """The plugin's job comment is rule_<rule> or rule_<rule>_wildcards_<values>."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def test_every_job_was_a_slurm_job(slurm_run, cluster):
    workdir, log = slurm_run
    planned = planned_jobs(log)
    planned.pop("all")  # the target rule has nothing to run
    submitted = submissions(log)
    by_rule = {}
    for rule in submitted.values():
        by_rule[rule] = by_rule.get(rule, 0) + 1
    # The run that fails (too-big) fails its first attempt and is submitted once more, as the
    # profile's `retries: 1` asks; the second attempt records the failure and completes.
    retried = {**planned, "train": planned["train"] + 1}
    assert by_rule == retried, f"submitted per rule {by_rule}, planned {planned} and one retry"

    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    known = {job["id"]: job for job in cluster.jobs() if job["name"] == run_id}
    assert set(known) == set(submitted), "squeue's jobs of this run are not the submitted ones"
    failed = [job for job in known.values() if job["state"] != "COMPLETED"]
    assert [(rule_of(job["comment"]), job["state"]) for job in failed] == [("train", "FAILED")], failed
    for slurm_id, job in known.items():
        assert rule_of(job["comment"]) == submitted[slurm_id], job
        assert any((workdir / ".snakemake" / "slurm_logs").rglob(f"{slurm_id}.log")), slurm_id
        assert f"JobId={slurm_id} " in cluster.completion_log()


def test_training_jobs_got_a_gpu_and_the_rest_cpu_nodes(slurm_run, cluster):
    _, log = slurm_run
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    jobs = [job for job in cluster.jobs() if job["name"] == run_id]
    training = [job for job in jobs if rule_of(job["comment"]) == "train"]
    others = [job for job in jobs if rule_of(job["comment"]) != "train"]
    assert training and others
    for job in training:
        assert (job["partition"], job["gres"]) == ("gpu", "gres:gpu:1"), job
    for job in others:
        assert (job["partition"], job["gres"]) == ("cpu", "N/A"), job


def test_outputs_match_a_local_run(slurm_run, tiny_workflow):
    workdir, _ = slurm_run
    # A warm training server would outlive the job's allocation: each job trained in its own
    # process here, and locally in the server's workers, with the same numbers (compared below).
    for log in (workdir / "logs/train").rglob("*.log"):
        assert "own process: it runs in a SLURM job" in log.read_text(), log
    assert result_files(workdir) == result_files(tiny_workflow)
    local_rows = metrics_rows(tiny_workflow / "results" / "metrics.csv")
    slurm_rows = metrics_rows(workdir / "results" / "metrics.csv")
    assert [row["run"] for row in slurm_rows] == [row["run"] for row in local_rows]
    for slurm_row, local_row in zip(slurm_rows, local_rows):
        assert slurm_row.keys() == local_row.keys()
        # SLURM gave each training job its GPU (gres) through CUDA_VISIBLE_DEVICES, left as it was.
        if slurm_row["status"] == "ok":
            assert slurm_row["gpu_slot"] != "" and local_row["gpu_slot"] == "", slurm_row["run"]
        for column, value in local_row.items():
            if column != "gpu_slot":
                assert same_value(slurm_row[column], value), (slurm_row["run"], column, slurm_row[column], value)
    assert report_sections(workdir / "results" / "report.html") == report_sections(
        tiny_workflow / "results" / "report.html"
    )


def result_files(workdir):
    return sorted(str(path.relative_to(workdir)) for path in (workdir / "results").rglob("*") if path.is_file())


def metrics_rows(path):
    with open(path, newline="") as handle:
        rows = [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(handle)]
    return sorted(rows, key=lambda row: row["run"])


def same_value(a, b):
    """Equal as written, or as numbers up to float noise (1-thread TensorFlow on one machine)."""
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    except ValueError:
        return False


class _Headings(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings, self._level = [], None

    def handle_starttag(self, tag, attrs):
        if re.fullmatch(r"h[1-6]", tag):
            self._level, self._text = tag, []

    def handle_data(self, data):
        if self._level:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == self._level:
            self.headings.append((tag, " ".join("".join(self._text).split())))
            self._level = None


def report_sections(path):
    parser = _Headings()
    parser.feed(Path(path).read_text())
    assert parser.headings, f"no sections in {path}"
    return parser.headings
