"""A model to take away: model.keras loads with plain Keras, and classifies a user's own HDF5 file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import TINY_DEFAULTS, copy_workflow, planned_jobs, snakemake

from mnist3d.steplog import UserError
from mnist3d.training import classify

MODELS = TINY_DEFAULTS + """\
runs:
  solo:
    implementation: fast
"""
RUN = "results/runs/solo/rep1"


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """A one-run workflow copy, trained, and its model run on an HDF5 file of the test grids."""
    workdir = copy_workflow(tmp_path_factory.mktemp("classify"))
    (workdir / "config" / "test" / "models.yaml").write_text(MODELS)
    snakemake(workdir, f"{RUN}/metrics.json")
    with np.load(workdir / "results" / "data" / "prepared.npz") as data:
        x_test, y_test = data["x_test"], data["y_test"]
    grids = workdir / "mine.h5"
    with h5py.File(grids, "w") as handle:  # the Kaggle layout: flat vectors
        handle["X_test"] = x_test.reshape(len(x_test), 4096)
        handle["y_test"] = y_test
        handle["X_train"] = x_test[:3, ..., 0]  # a second dataset of grids: X_test is chosen
    output = "results/classified/solo/rep1/mine.csv"
    snakemake(workdir, output, "--config", f"classify_file={grids}")
    return workdir, workdir / output


FRESH_PROCESS = """
import sys
import keras, numpy
model = keras.saving.load_model(sys.argv[1])
with numpy.load(sys.argv[2]) as data:
    grids = data["x_test"]
with numpy.load(sys.argv[3]) as recorded:
    expected = recorded["probabilities"]
predicted = model.predict(grids, batch_size=512, verbose=0)
assert not [name for name in sys.modules if name.startswith("mnist3d")]
assert (predicted.argmax(axis=1) == expected.argmax(axis=1)).all()
print("largest difference:", abs(predicted - expected).max())
print("layers:", sorted({type(layer).__module__.split(".")[0] for layer in model.layers}))
"""


@pytest.mark.parametrize("onednn", ["1", None])
def test_plain_keras_in_a_fresh_process_reproduces_the_recorded_predictions(classified, onednn):
    """Exactly with oneDNN's kernels, which the workflow turns on; to the last bits of float32 without."""
    workdir, _ = classified
    environment = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3",
                   **({"TF_ENABLE_ONEDNN_OPTS": onednn} if onednn else {})}
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, f"{RUN}/model.keras", "results/data/prepared.npz",
         f"{RUN}/predictions.npz"],
        cwd=workdir, capture_output=True, text=True, env=environment,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "layers: ['keras']" in result.stdout
    difference = float(result.stdout.split("largest difference:")[1].split()[0])
    assert difference == 0.0 if onednn else difference < 1e-6


def test_the_classified_csv_holds_the_recorded_probabilities(classified):
    workdir, output = classified
    with open(output) as handle:
        rows = list(csv.DictReader(handle))
    with np.load(workdir / RUN / "predictions.npz") as recorded:
        expected, labels = recorded["probabilities"], recorded["y_true"]
    probabilities = np.array([[float(row[f"probability_{c}"]) for c in range(10)] for row in rows])
    np.testing.assert_array_equal(probabilities.astype(np.float32), expected)
    assert [int(row["predicted"]) for row in rows] == expected.argmax(axis=1).tolist()
    assert [int(row["label"]) for row in rows] == labels.tolist()
    assert [row["correct"] == "True" for row in rows] == (expected.argmax(axis=1) == labels).tolist()
    log = (workdir / "logs" / "classify" / "solo" / "rep1" / "mine.log").read_text()
    assert f"{len(rows)} grids from X_test, with labels" in log


def test_classify_without_a_file_says_how(classified):
    workdir, _ = classified
    result = snakemake(workdir, "-n", "results/classified/solo/rep1/other.csv", check=False)
    assert result.returncode != 0
    assert "--config classify_file=" in result.stdout + result.stderr


def test_a_classify_request_plans_no_training(classified):
    workdir, _ = classified
    result = snakemake(workdir, "-n", "results/classified/solo/rep1/again.csv", "--config",
                       f"classify_file={workdir / 'mine.h5'}")
    assert planned_jobs(result.stdout) == {"classify": 1}


def write_h5(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as handle:
        for name, values in datasets.items():
            handle[name] = values
    return path


def test_read_grids_layouts_and_errors(tmp_path):
    cube = np.random.default_rng(0).random((4, 16, 16, 16), dtype=np.float32)
    name, x, labels = classify.read_grids(write_h5(tmp_path / "cubes.h5", grids=cube))
    assert name == "grids" and x.shape == (4, 16, 16, 16, 1) and labels is None
    np.testing.assert_array_equal(x[..., 0], cube)
    flat = cube.reshape(4, 4096)
    name, x, labels = classify.read_grids(write_h5(tmp_path / "flat.h5", X_test=flat, y_test=np.arange(4)))
    np.testing.assert_array_equal(x[..., 0], cube)
    assert labels.tolist() == [0, 1, 2, 3]
    with pytest.raises(UserError, match="no datasets of grids.*name one with config classify_dataset"):
        classify.read_grids(write_h5(tmp_path / "none.h5", points=np.zeros((4, 3))))
    with pytest.raises(UserError, match="several"):
        classify.read_grids(write_h5(tmp_path / "two.h5", a=flat, b=flat))
    assert classify.read_grids(tmp_path / "two.h5", "b")[0] == "b"
    with pytest.raises(UserError, match="not N x 4096"):
        classify.read_grids(write_h5(tmp_path / "odd.h5", X_test=np.zeros((4, 100))), "X_test")
    with pytest.raises(UserError, match="file not found"):
        classify.read_grids(tmp_path / "missing.h5")
    with pytest.raises(UserError, match="X_test holds no grids"):
        classify.read_grids(write_h5(tmp_path / "empty.h5", X_test=np.zeros((0, 4096))))


@pytest.mark.parametrize("labels, problem", [
    (np.arange(4), None),
    (np.array([0.0, 9.0, 3.0, 1.0]), None),
    (np.array([b"a", b"b", b"c", b"d"]), "values of type |S1, not numbers"),
    (np.array([1 + 1j, 2, 3, 4]), "values of type complex128, not numbers"),
    (np.array([0.0, np.nan, 1.0, 2.0]), "values other than the digits 0-9"),
    (np.array([0.5, 1.0, 2.0, 3.0]), "values other than the digits 0-9"),
    (np.array([0, 1, 2, 10]), "values other than the digits 0-9"),
    (np.arange(5), "shape (5,) for 4 grids"),
])
def test_labels_that_are_no_digits_are_left_out_and_logged(tmp_path, labels, problem):
    lines = []
    path = write_h5(tmp_path / "grids.h5", X_test=np.zeros((4, 4096), dtype=np.float32), y_test=labels)
    _, _, read = classify.read_grids(path, log=lines.append)
    assert (read is None) == (problem is not None)
    assert lines == ([] if problem is None else [f"{path}: y_test left out: {problem}"])


def test_a_failed_run_is_refused_with_its_error(tmp_path):
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"run": "too-big/rep1", "status": "failed", "error": "ResourceExhaustedError: OOM"}))
    with pytest.raises(UserError, match=r"run too-big/rep1 failed \(ResourceExhaustedError: OOM\)"):
        classify.classify(tmp_path / "model.keras", tmp_path / "grids.h5", tmp_path / "out.csv",
                          metrics_path=metrics)
