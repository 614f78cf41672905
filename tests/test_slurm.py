"""The workflow on a real one-node SLURM cluster, through profiles/slurm, against a local run.

Opt-in by what is installed: skipped unless slurm-wlm and munge are (`.ci/slurm-setup.sh`
installs them). Select or leave out with `-m slurm` / `-m "not slurm"`. The cluster (munged,
slurmctld, slurmd on loopback, see tests/slurm/) lives in a temporary directory for this
module only and is torn down afterwards, leaving no process behind.

Two runs go through it: the default target (against the suite's local run), and a small successive
halving sweep (against the same sweep run locally), whose rung jobs are cluster jobs and whose
decisions run in the submitting Snakemake.
"""

import csv
import json
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import TEST_CONFIG, copy_workflow, planned_jobs, snakemake

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
    return workdir, run_on_slurm(cluster, workdir)


def run_on_slurm(cluster, workdir, *targets):
    """Snakemake through profiles/slurm in `workdir` on the tiny test config; returns its log."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        # Targets first: --configfile takes every word after it.
        *targets,
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
    return log


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


def jobs_of_run(cluster, log):
    """The cluster's jobs of the Snakemake run that wrote `log` (its run ID is each job's name)."""
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    return {job["id"]: job for job in cluster.jobs() if job["name"] == run_id}


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

    known = jobs_of_run(cluster, log)
    assert set(known) == set(submitted), "squeue's jobs of this run are not the submitted ones"
    failed = [job for job in known.values() if job["state"] != "COMPLETED"]
    assert [(rule_of(job["comment"]), job["state"]) for job in failed] == [("train", "FAILED")], failed
    for slurm_id, job in known.items():
        assert rule_of(job["comment"]) == submitted[slurm_id], job
        assert any((workdir / ".snakemake" / "slurm_logs").rglob(f"{slurm_id}.log")), slurm_id
        assert f"JobId={slurm_id} " in cluster.completion_log()


def test_training_jobs_got_a_gpu_and_the_rest_cpu_nodes(slurm_run, cluster):
    _, log = slurm_run
    jobs = list(jobs_of_run(cluster, log).values())
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


# A halving sweep on the cluster: 3 combinations, eta 2, rungs at epochs 1, 2 and 3, so two decisions
# (the second depends on the first) and 3 + 2 + 1 rung jobs. The smallest network, as it trains fastest.
HALVING_MODELS = """\
defaults: {filters: [4], kernel_sizes: [3], pool_sizes: [4], dense: 8, dropout: 0.2,
           learning_rate: 0.003, epochs: 3, batch_size: 32, seed: 1, replicates: 1}
sweeps:
  h:
    halving: {min_epochs: 1, eta: 2}
    grid:
      learning_rate: [0.001, 0.003, 0.01]
"""
HALVING_ENTRIES = [f"h.learning_rate-{rate}" for rate in ("0.001", "0.003", "0.01")]
HALVING_DECISIONS = [f"results/sweeps/h/rung-{rung}.json" for rung in (1, 2)]
HALVING_METRICS = [f"results/runs/{entry}/rep1/metrics.json" for entry in HALVING_ENTRIES]
# What profiles/slurm asks for a train_to_epoch job's first attempt (240 min, 16000 MB, a GPU in the
# GPU partition), with the test config's train.threads of 1.
RUNG_JOB_REQUEST = {"partition": "gpu", "gres": "gres:gpu:1", "time_limit": "4:00:00", "memory": "16000M", "cpus": "1"}


def halving_workflow(directory, data_from):
    """A workflow copy with the halving sweep as its models file and the data of `data_from`
    (timestamps kept, so nothing rebuilds it): only the sweep's jobs run."""
    workdir = copy_workflow(directory)
    (workdir / "config" / "test" / "models.yaml").write_text(HALVING_MODELS)
    shutil.copytree(data_from / "results" / "data", workdir / "results" / "data")
    return workdir


@pytest.fixture(scope="module")
def halving_runs(cluster, tiny_workflow, tmp_path_factory):
    """The halving sweep's decisions and runs, through the SLURM profile and locally:
    (SLURM workflow copy, its Snakemake log, local workflow copy)."""
    targets = (*HALVING_DECISIONS, *HALVING_METRICS)
    on_slurm = halving_workflow(tmp_path_factory.mktemp("slurm-halving"), tiny_workflow)
    log = run_on_slurm(cluster, on_slurm, *targets)
    local = halving_workflow(tmp_path_factory.mktemp("local-halving"), tiny_workflow)
    snakemake(local, *targets)
    return on_slurm, log, local


def test_halving_rungs_were_slurm_jobs_and_decisions_local(halving_runs, cluster):
    on_slurm, log, _ = halving_runs
    submitted = submissions(log)
    known = jobs_of_run(cluster, log)
    assert set(known) == set(submitted), "squeue's jobs of this run are not the submitted ones"
    # Nothing else was submitted: the data was there, and the decisions are `localrules`.
    assert sorted(set(submitted.values())) == ["train", "train_to_epoch"], submitted
    assert [rule_of(job["comment"]) for job in known.values()].count("train") == len(HALVING_ENTRIES)
    # Each decision ran once, in the submitting Snakemake.
    assert log.count("localcheckpoint halving_decision:") == len(HALVING_DECISIONS), log[-8000:]
    assert log.count("(Rule: halving_decision)") == len(HALVING_DECISIONS), log[-8000:]
    first, second = (json.loads((on_slurm / name).read_text()) for name in HALVING_DECISIONS)
    assert (first["alive"], first["keep"], second["alive"], second["keep"]) == (3, 2, 2, 1)
    expected = {(entry, 1) for entry in HALVING_ENTRIES}
    expected |= {(entry, first["next_epoch"]) for entry in first["kept"]}
    expected |= {(entry, second["next_epoch"]) for entry in second["kept"]}
    rung_jobs = [job for job in known.values() if rule_of(job["comment"]) == "train_to_epoch"]
    # Each rung state once, as a job of its own (comment: rule_train_to_epoch_wildcards_ENTRY_REPLICATE_EPOCH).
    trained = [tuple(job["comment"].split("_wildcards_")[1].rsplit("_", 2)) for job in rung_jobs]
    assert sorted((entry, int(epoch)) for entry, replicate, epoch in trained) == sorted(expected)
    for job in rung_jobs:
        assert job["state"] == "COMPLETED", job
        assert {key: job[key] for key in RUNG_JOB_REQUEST} == RUNG_JOB_REQUEST, job


def test_halving_on_slurm_decides_and_trains_as_a_local_run(halving_runs):
    on_slurm, _, local = halving_runs
    assert result_files(on_slurm) == result_files(local)
    # Decisions hold no timings: the same rung records give the same bytes.
    for name in HALVING_DECISIONS:
        assert (on_slurm / name).read_bytes() == (local / name).read_bytes(), name
    statuses = []
    for name in HALVING_METRICS:
        slurm_metrics, local_metrics = (json.loads((workdir / name).read_text()) for workdir in (on_slurm, local))
        assert slurm_metrics.keys() == local_metrics.keys(), name
        # Every run's last job, stopped or not, was a training job and held a GPU; locally none.
        assert slurm_metrics["gpu_slot"] is not None and local_metrics["gpu_slot"] is None, name
        for key, value in local_metrics.items():
            if key not in TIMING_COLUMNS | {"gpu_slot"}:
                assert slurm_metrics[key] == value, (name, key, slurm_metrics[key], value)
        statuses.append((slurm_metrics["status"], slurm_metrics["epochs_run"]))
    assert sorted(statuses) == [("ok", 3), ("stopped", 1), ("stopped", 2)]


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
