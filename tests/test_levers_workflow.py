"""Every optional lever, end to end: config/test/models-levers.yaml trained by a real Snakemake run on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, copy_workflow, snakemake

from mnist3d.config.levers import LEVER_DEFAULTS, with_levers
from mnist3d.config.yamlfile import read_yaml
from mnist3d.results.runfiles import read_history, read_prediction_arrays

LEVERS_FILE = "config/test/models-levers.yaml"


@pytest.fixture(scope="module")
def levers_workflow(tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("levers"))
    entries = read_yaml(REPO / LEVERS_FILE)["runs"]  # the workflow's reader: 1e-4 is a number
    targets = [f"results/runs/{entry}/rep1/metrics.json" for entry in entries]
    snakemake(workdir, *targets, "--config", f"models={LEVERS_FILE}")
    return workdir, entries


def test_every_lever_trains_end_to_end(levers_workflow):
    workdir, entries = levers_workflow
    used = set()
    for entry, overrides in entries.items():
        run_dir = workdir / "results" / "runs" / entry / "rep1"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "ok", (entry, metrics["error"])
        params = with_levers(metrics["params"])
        assert {name: params[name] for name in overrides if name in LEVER_DEFAULTS} == {
            name: value for name, value in overrides.items() if name in LEVER_DEFAULTS}
        used |= {name for name in LEVER_DEFAULTS if params[name] != LEVER_DEFAULTS[name]}
        history = read_history(run_dir / "history.csv")
        assert list(history["epoch"]) == list(range(1, params["epochs"] + 1))
        assert np.isfinite(history["loss"]).all()
        predictions = read_prediction_arrays(run_dir / "predictions.npz")
        assert np.allclose(predictions["probabilities"].sum(axis=1), 1.0, atol=1e-5)
        assert (run_dir / "model.keras").stat().st_size > 0
    assert used == set(LEVER_DEFAULTS), f"levers the file never moves from their default: {set(LEVER_DEFAULTS) - used}"


def test_a_warm_up_schedule_is_in_the_recorded_learning_rates(levers_workflow):
    workdir, _ = levers_workflow
    history = read_history(workdir / "results/runs/vgg-elu-adamw/rep1/history.csv")
    # warmup_cosine starts each run at a learning rate of 0.
    assert history["learning_rate"][0] == 0.0
    assert history["learning_rate"][1] > 0.0
