"""End-to-end: sweeps in a models file, planned and trained by real Snakemake on a workflow copy."""

import json
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import TEST_CONFIG, copy_workflow, planned_jobs, snakemake

MODELS = "models-sweep.yaml"
# Tiny runs: a few seconds of training each, on the test config's few hundred grids.
DEFAULTS = """\
defaults: {filters: [4], kernel_sizes: [3], pool_sizes: [4], dense: 8, dropout: 0.2,
           learning_rate: 0.003, epochs: 1, batch_size: 32, seed: 1, replicates: 1}
"""
GRID = """\
sweeps:
  width-dropout:
    replicates: 2
    grid:
      dense: [4, 8, 16]
      dropout: [0.1, 0.3]
"""
GRID_RUNS = [
    f"width-dropout.dense-{dense}.dropout-{dropout}/rep{replicate}"
    for dense in (4, 8, 16) for dropout in (0.1, 0.3) for replicate in (1, 2)
]


def with_models(workdir, text: str):
    (workdir / MODELS).write_text(DEFAULTS + textwrap.dedent(text))
    return workdir


def plan(workdir, *arguments: str, check: bool = True) -> subprocess.CompletedProcess:
    return snakemake(workdir, "-n", *arguments, "--config", f"models={MODELS}", check=check)


def mark_done(workdir) -> None:
    """Every planned output made to exist, then `snakemake --touch --forceall` records each job as done
    with its parameters (without --forceall, jobs whose outputs exist are not touched and no metadata
    is recorded): what a finished real run leaves for the rerun triggers, without training 12 models.
    test_random_sample_trains_the_values_its_names_show trains sweep runs for real."""
    for line in plan(workdir).stdout.splitlines():
        if line.strip().startswith("output:"):
            for path in line.split(":", 1)[1].split(","):
                target = workdir / path.strip()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
    snakemake(workdir, "--touch", "--forceall", "--config", f"models={MODELS}")
    assert "Nothing to be done" in plan(workdir).stdout


@pytest.fixture(scope="module")
def done_grid(tmp_path_factory):
    """A workflow copy whose 3 x 2 grid with 2 replicates is recorded as done."""
    workdir = with_models(copy_workflow(tmp_path_factory.mktemp("sweep")), GRID)
    mark_done(workdir)
    return workdir


@pytest.fixture
def grid_copy(done_grid, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(done_grid, copy, symlinks=True)
    return copy


def test_a_3x2_grid_with_replicates_in_8_lines_plans_12_trainings(tmp_path):
    assert len(GRID.splitlines()) <= 8
    workdir = with_models(copy_workflow(tmp_path), GRID)
    result = plan(workdir)
    assert planned_jobs(result.stdout)["train"] == 12
    for run in GRID_RUNS:
        assert f"output: results/runs/{run}/model.keras" in result.stdout
    # The documented way to list what a models file expands to, and what would train, without training.
    summary = snakemake(workdir, "--summary", "--config", f"models={MODELS}").stdout
    listed = [line.split("\t")[0] for line in summary.splitlines() if "/metrics.json\t" in line]
    assert sorted(listed) == sorted(f"results/runs/{run}/metrics.json" for run in GRID_RUNS)


def test_adding_a_value_plans_only_the_new_combinations(grid_copy):
    with_models(grid_copy, GRID.replace("[0.1, 0.3]", "[0.1, 0.3, 0.5]"))
    result = plan(grid_copy)
    assert planned_jobs(result.stdout)["train"] == 6
    for dense in (4, 8, 16):
        for replicate in (1, 2):
            assert f"output: results/runs/width-dropout.dense-{dense}.dropout-0.5/rep{replicate}/model.keras" \
                in result.stdout


def test_reordering_the_grid_plans_no_training(grid_copy):
    with_models(grid_copy, """\
    sweeps:
      width-dropout:
        grid:
          dropout: [0.3, 0.1]
          dense: [16, 4, 8]
        replicates: 2
    """)
    assert "train" not in planned_jobs(plan(grid_copy).stdout)


def test_a_fixed_value_changed_retrains_every_combination(grid_copy):
    # The control for the two tests above: the recorded parameters are compared, so "no training"
    # there means equal parameters, not a rerun trigger that never fires.
    with_models(grid_copy, GRID.replace("replicates: 2", "replicates: 2\n    fixed: {epochs: 2}"))
    assert planned_jobs(plan(grid_copy).stdout)["train"] == 12


def test_random_sample_trains_the_values_its_names_show(trained_copy):
    with_models(trained_copy, """\
    sweeps:
      lr:
        random:
          count: 2
          seed: 3
          parameters:
            learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
            dropout: [0.1, 0.3]
    """)
    result = plan(trained_copy)
    assert planned_jobs(result.stdout)["train"] == 2
    snakemake(trained_copy, "--until", "train", "--config", f"models={MODELS}")
    runs = sorted((trained_copy / "results/runs").glob("lr.*/rep1/metrics.json"))
    assert len(runs) == 2
    for path in runs:
        metrics = json.loads(path.read_text())
        assert metrics["status"] == "ok"
        dropout, rate = re.fullmatch(r"lr\.dropout-(.+)\.learning_rate-(.+)", path.parent.parent.name).groups()
        assert metrics["params"]["dropout"] == float(dropout) and metrics["params"]["learning_rate"] == float(rate)
        assert 1e-4 <= float(rate) < 1e-2
    assert planned_jobs(plan(trained_copy, "--until", "train").stdout) == {}


def test_the_cap_stops_a_huge_grid_at_once(tmp_path):
    values = ", ".join(str(value) for value in range(1, 101))
    workdir = with_models(copy_workflow(tmp_path), f"""\
    sweeps:
      huge:
        grid: {{dense: [{values}], batch_size: [{values}], epochs: [{values}], seed: [{values}]}}
    """)
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", f"models={MODELS}",
               "max_runs=50", "--configfile", TEST_CONFIG]
    # A plain dry run's time at most; a 10^8-run plan would take hours (tests/test_sweeps.py checks
    # that the cap comes before the grid is built).
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert (f"{MODELS}: sweep 'huge', key 'grid': 100000000 combinations x 1 replicate = 100000000 runs exceed "
            "max_runs = 50; check for a typo, or raise max_runs in config/config.yaml") in result.stdout + result.stderr


@pytest.mark.parametrize(
    "sweeps, expected",
    [
        ("g:\n    grid: {dense: [8], dropuot: [0.1]}",
         f"{MODELS}: sweep 'g', field 'dropuot': unknown field (did you mean 'dropout'?)"),
        ("g:\n    grid: {dense: [8, 16], dropout: [0.1, 1.5]}",
         f"{MODELS}: sweep 'g', combination dense=8, dropout=1.5, field 'dropout': 1.5 is greater than or equal "
         "to the maximum of 1"),
        ("g:\n    random: {count: 2, parameters: {dense: {uniform: [8, 64]}}}",
         f"{MODELS}: sweep 'g', field 'dense': takes integer values, so uniform cannot draw them"),
    ],
)
def test_errors_reach_the_user_through_snakemake(tmp_path, sweeps, expected):
    workdir = with_models(copy_workflow(tmp_path), f"sweeps:\n  {sweeps}\n")
    result = plan(workdir, check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr


def test_a_sweep_name_equal_to_a_run_name_is_an_error(tmp_path):
    workdir = with_models(copy_workflow(tmp_path), """\
    runs:
      g.dense-8: {}
    sweeps:
      g:
        grid: {dense: [8, 16]}
    """)
    result = plan(workdir, check=False)
    assert result.returncode != 0
    assert (f"{MODELS}: sweep 'g', combination dense=8: its run name 'g.dense-8' is also a run under runs:"
            in result.stdout + result.stderr)
