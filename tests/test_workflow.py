"""End-to-end: real Snakemake runs of a workflow copy on tiny data."""

import json

import numpy as np
import pandas as pd
from conftest import copy_workflow, planned_jobs, snakemake

RUNS = ["small/rep1", "small-keras/rep1", "pair/rep1", "pair/rep2", "too-big/rep1"]


def test_every_run_trained_and_wrote_its_files(tiny_workflow):
    for run in RUNS:
        directory = tiny_workflow / "results" / "runs" / run
        for name in ("model.keras", "history.csv", "predictions.npz", "metrics.json"):
            assert (directory / name).exists(), f"{run}: {name} missing"
        assert (tiny_workflow / "logs" / "train" / f"{run}.log").read_text().strip()
    metrics = json.loads((tiny_workflow / "results/runs/small/rep1/metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs_run"] == 2
    history = pd.read_csv(tiny_workflow / "results/runs/small/rep1/history.csv")
    assert history["epoch"].tolist() == [1, 2]
    with np.load(tiny_workflow / "results/runs/small/rep1/predictions.npz") as predictions:
        assert len(predictions["y_true"]) == 100  # 5 test digits per class, original + rotated copy
        assert set(predictions["test_rotated"]) == {0, 1}


def test_replicates_use_their_own_seeds(tiny_workflow):
    seeds = [
        json.loads((tiny_workflow / f"results/runs/pair/rep{k}/metrics.json").read_text())["seed"]
        for k in (1, 2)
    ]
    assert seeds == [1, 2]


def test_failing_run_is_recorded_and_costs_no_other(tiny_workflow):
    metrics = json.loads((tiny_workflow / "results/runs/too-big/rep1/metrics.json").read_text())
    assert metrics["status"] == "failed"
    assert "ResourceExhausted" in metrics["error"] or "memory" in metrics["error"].lower()
    assert "FAILED" in (tiny_workflow / "logs/train/too-big/rep1.log").read_text()


def test_training_jobs_share_a_warm_tensorflow(tiny_workflow):
    for run in RUNS:
        log = (tiny_workflow / "logs" / "train" / f"{run}.log").read_text()
        assert "training in worker" in log and "own process" not in log, f"{run}:\n{log}"
    server_logs = "".join(path.read_text() for path in (tiny_workflow / ".snakemake/train-server").glob("*.log"))
    assert 1 <= server_logs.count("imported tensorflow") < len(RUNS)


def test_data_summary_says_generated(tiny_workflow):
    summary = json.loads((tiny_workflow / "results/data/summary.json").read_text())
    assert summary["source"] == "generated"
    assert summary["splits"]["train"]["samples"] == 300
    assert summary["splits"]["test"]["rotated_samples"] == 50


def test_nothing_to_do_after_a_run(tiny_workflow):
    result = snakemake(tiny_workflow, "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_entry_retrains_only_it(trained_copy):
    models = trained_copy / "config/test/models.yaml"
    models.write_text(models.read_text().replace("  small-keras:\n", "  small-keras:\n    dense: 12\n"))
    result = snakemake(trained_copy, "-n")
    planned = planned_jobs(result.stdout)
    assert planned["train"] == 1 and planned["plot_run"] == 1
    assert "output: results/runs/small-keras/rep1/model.keras" in result.stdout


def test_editing_training_code_retrains_every_run_and_plotting_code_none(trained_copy):
    package = trained_copy / "scripts/mnist3d"
    plots = package / "plots/style.py"
    plots.write_text(plots.read_text() + "\n# an edit\n")
    planned = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert "train" not in planned and planned["plot_run"] == len(RUNS)
    # Where a job trains changes no number: the server is no training code; nor are run names.
    for edited in ("training/server.py", "config/names.py"):
        module = package / edited
        module.write_text(module.read_text() + "\n# an edit\n")
        assert "train" not in planned_jobs(snakemake(trained_copy, "-n").stdout), edited

    model = package / "training/model.py"
    model.write_text(model.read_text() + "\n# an edit\n")
    planned = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert planned["train"] == len(RUNS)
    # An edit the user knows changes no result: --touch records the code as current.
    snakemake(trained_copy, "--touch")
    assert "Nothing to be done" in snakemake(trained_copy, "-n").stdout


def test_editing_data_code_redoes_the_data_steps_and_what_follows(trained_copy):
    checks = trained_copy / "scripts/mnist3d/data/check.py"
    checks.write_text(checks.read_text() + "\n# an edit\n")
    planned = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert planned["check_data"] == 1 and planned["prepare_data"] == 1 and planned["train"] == len(RUNS)
    assert "generate_data" not in planned


def test_touching_training_code_without_changing_it_retrains_nothing(trained_copy):
    (trained_copy / "scripts/mnist3d/training/model.py").touch()
    planned = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert "train" not in planned


def test_changing_how_jobs_train_retrains_nothing(trained_copy):
    config = trained_copy / "config/test/config.yaml"
    text = config.read_text()
    assert "keep_going_on_failure: true" in text and "warm_server_idle: 20" in text
    config.write_text(text.replace("keep_going_on_failure: true", "keep_going_on_failure: false")
                      .replace("warm_server_idle: 20", "warm_server_idle: 0"))
    assert "train" not in planned_jobs(snakemake(trained_copy, "-n").stdout)


def test_adding_an_entry_or_replicate_trains_only_the_new_runs(trained_copy):
    models = trained_copy / "config/test/models.yaml"
    models.write_text(models.read_text().replace("    replicates: 2\n", "    replicates: 3\n")
                      + "  added:\n    dense: 8\n    epochs: 1\n")
    result = snakemake(trained_copy, "-n")
    assert planned_jobs(result.stdout)["train"] == 2
    assert "results/runs/pair/rep3/metrics.json" in result.stdout
    assert "results/runs/added/rep1/metrics.json" in result.stdout


def test_a_same_values_rewrite_of_the_models_file_retrains_nothing(trained_copy):
    """Rewritten by a script: defaults spelled out in each entry, keys sorted, numbers as floats."""
    import yaml

    models = trained_copy / "config/test/models.yaml"
    original = yaml.safe_load(models.read_text().replace("3e-3", "0.003"))
    number_fields = ("dropout", "learning_rate", "rotation_augmentation")
    rewritten = {}
    for entry, overrides in reversed(original["runs"].items()):
        merged = {**original["defaults"], **(overrides or {})}
        rewritten[entry] = {k: float(v) if k in number_fields else v for k, v in merged.items()}
    models.write_text("# rewritten\n" + yaml.safe_dump({"runs": rewritten}, sort_keys=True))
    planned = planned_jobs(snakemake(trained_copy, "-n").stdout)
    # The runs' order is the report's order, so only the report's own steps follow the new order.
    assert "train" not in planned and "plot_run" not in planned, planned


def test_bad_models_file_fails_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "bad")
    models = workdir / "config/test/models.yaml"
    models.write_text(models.read_text().replace("  small: {}", "  small:\n    dropout: 1.5"))
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert "run 'small', field 'dropout'" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_missing_data_file_without_generation_is_named(tmp_path):
    workdir = copy_workflow(tmp_path / "nodata")
    config = workdir / "config/test/config.yaml"
    config.write_text(config.read_text().replace("generate_if_missing: true", "generate_if_missing: false")
                      .replace("data/full_dataset_vectors.h5", "data/absent.h5"))
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "data file data/absent.h5 not found" in result.stdout + result.stderr


def test_a_mistyped_data_path_is_an_error_not_the_default_data(tmp_path):
    workdir = copy_workflow(tmp_path / "typo")
    result = snakemake(workdir, "-n", "--config", "data={file: data/ful_dataset_vectors.h5}", check=False)
    assert result.returncode != 0
    assert "data file data/ful_dataset_vectors.h5 not found (config data.file)" in result.stdout + result.stderr


def test_bad_data_file_stops_with_one_clear_message(tmp_path):
    import h5py

    workdir = copy_workflow(tmp_path / "baddata")
    (workdir / "data").mkdir()
    with h5py.File(workdir / "data/full_dataset_vectors.h5", "w") as handle:
        handle["X_train"] = np.zeros((10, 4096))
        handle["y_train"] = np.arange(10)
        handle["X_test"] = np.zeros((10, 100))
        handle["y_test"] = np.arange(10)
    result = snakemake(workdir, "results/data/summary.json", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "data/full_dataset_vectors.h5: X_test has shape (10, 100)" in output
    assert "Traceback" not in output
