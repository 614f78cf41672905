import csv
import json

import numpy as np
import pytest

from mnist3d.config.runs import OPTIONAL_DEFAULTS
from mnist3d.data import prepare
from mnist3d.results.confusion import evaluation_metrics
from mnist3d.results.runfiles import HISTORY_COLUMNS
from mnist3d.training.train import Run, RunPaths, TrainingEnvironment, train_run

TINY = {
    "filters": [4, 8],
    "kernel_sizes": [3, 3],
    "pool_sizes": [2, 2],
    "dense": 16,
    "dropout": 0.2,
    "learning_rate": 0.003,
    "epochs": 2,
    "batch_size": 16,
    "seed": 5,
    **OPTIONAL_DEFAULTS,
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Learnable tiny data: the class decides which octant of the grid is lit."""
    rng = np.random.default_rng(0)

    def grids(count):
        labels = np.arange(count) % 10
        x = rng.random((count, 16, 16, 16, 1), dtype=np.float32) * 0.2
        for row, label in enumerate(labels):
            z, y = divmod(label, 4)
            x[row, 4 * z : 4 * z + 4, 4 * y : 4 * y + 4] = 1.0
        return x, labels.astype(np.int64)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = grids(96), grids(20), grids(30)
    path = tmp_path_factory.mktemp("data") / "prepared.npz"
    rotated = np.array([0, 1] * 15, dtype=np.int8)
    prepare.save(
        path,
        dict(
            x_train=x_train,
            y_train=y_train,
            x_val=x_val,
            y_val=y_val,
            x_test=x_test,
            y_test=y_test,
            test_rotated=rotated,
            source=np.array("generated"),
        ),
    )
    return path


def run(prepared, directory, params=TINY, **options):
    paths = RunPaths.in_directory(prepared, directory)
    metrics = train_run(
        Run("tiny", 1, params), paths, TrainingEnvironment(threads=1, **options), log=lambda message: None
    )
    return metrics, paths


def read_history(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def history_without_seconds(path):
    return [{name: value for name, value in row.items() if name != "seconds"} for row in read_history(path)]


def test_run_writes_every_output(prepared, tmp_path):
    metrics, paths = run(prepared, tmp_path)
    assert metrics["status"] == "ok" and metrics["error"] is None
    assert json.loads(paths.metrics.read_text()) == json.loads(json.dumps(metrics))
    assert metrics["run"] == "tiny/rep1" and metrics["entry"] == "tiny" and metrics["replicate"] == 1
    assert metrics["dataset"] == "generated"
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] == 2
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    assert metrics["test_accuracy_rotated"] is not None and metrics["test_accuracy_unrotated"] is not None
    assert len(metrics["per_class_accuracy"]) == 10
    assert metrics["parameter_count"] > 0 and metrics["versions"]["tensorflow"]
    history = read_history(paths.history)
    assert list(history[0]) == list(HISTORY_COLUMNS)
    assert [row["epoch"] for row in history] == ["1", "2"]
    with np.load(paths.predictions) as predictions:
        assert predictions["probabilities"].shape == (30, 10)
        assert np.array_equal(predictions["y_pred"], predictions["probabilities"].argmax(axis=1))
    import keras

    reloaded = keras.saving.load_model(paths.model)  # plain Keras: stock layers only
    assert reloaded.count_params() == metrics["parameter_count"]
    assert {type(layer).__module__.split(".")[0] for layer in reloaded.layers} == {"keras"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["model.keras", "history.csv", "predictions.npz", "metrics.json"]
    )  # no temporary files left behind


def test_same_seed_same_numbers(prepared, tmp_path):
    first, first_paths = run(prepared, tmp_path / "a")
    second, second_paths = run(prepared, tmp_path / "b")
    other, other_paths = run(prepared, tmp_path / "c", params={**TINY, "seed": 6})
    assert history_without_seconds(first_paths.history) == history_without_seconds(second_paths.history)
    assert first["test_loss"] == second["test_loss"]
    with np.load(first_paths.predictions) as a, np.load(second_paths.predictions) as b:
        assert np.array_equal(a["probabilities"], b["probabilities"])
    assert history_without_seconds(other_paths.history) != history_without_seconds(first_paths.history)


def test_levers_run(prepared, tmp_path):
    params = {
        **TINY,
        "epochs": 3,
        "lr_schedule": "cosine",
        "early_stopping_patience": 1,
        "rotation_augmentation": 30.0,
        "implementation": "keras",
    }
    metrics, paths = run(prepared, tmp_path, params=params)
    assert metrics["status"] == "ok"
    history = read_history(paths.history)
    rates = [float(row["learning_rate"]) for row in history]
    # Each epoch's rate as it starts: the first is the configured one, then the cosine decays it.
    assert rates[0] == pytest.approx(TINY["learning_rate"])
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))
    # Early stopping keeps the weights of the epoch with the lowest validation loss.
    val_losses = [float(row["val_loss"]) for row in history]
    assert metrics["best_epoch"] == int(np.argmin(val_losses)) + 1
    from mnist3d.training.model import load_model

    data = prepare.load(prepared)
    saved = load_model(paths.model)
    saved.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])  # saved without an optimizer
    saved_val_loss, _ = saved.evaluate(data["x_val"], data["y_val"], batch_size=512, verbose=0)
    assert saved_val_loss == pytest.approx(min(val_losses), rel=1e-4)


def todays_compile(model, params, steps_per_epoch):
    """compile_model as it was before the training levers: Adam and the sparse cross-entropy."""
    import keras

    rate = params["learning_rate"]
    if params["lr_schedule"] == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=params["epochs"] * steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=params["jit_compile"],
    )


def test_training_levers_at_their_default_train_as_before(prepared, tmp_path, monkeypatch):
    from mnist3d.training import train

    params = {**TINY, "lr_schedule": "cosine"}
    explicit = {**params, "optimizer": "adam", "weight_decay": 0.0, "label_smoothing": 0.0}
    now, now_paths = run(prepared, tmp_path / "now", params=explicit)
    monkeypatch.setattr(train, "compile_model", todays_compile)
    before, before_paths = run(prepared, tmp_path / "before", params=params)
    assert history_without_seconds(now_paths.history) == history_without_seconds(before_paths.history)
    assert now["test_loss"] == before["test_loss"]
    with np.load(now_paths.predictions) as a, np.load(before_paths.predictions) as b:
        assert np.array_equal(a["probabilities"], b["probabilities"])


def test_training_levers_run(prepared, tmp_path):
    from mnist3d.training import optimizers

    params = {
        **TINY,
        "epochs": 3,
        "optimizer": "adamw",
        "weight_decay": 0.004,
        "label_smoothing": 0.1,
        "lr_schedule": "warmup_cosine",
        "warmup_epochs": 1,
    }
    metrics, paths = run(prepared, tmp_path, params=params)
    assert metrics["status"] == "ok"
    # Each epoch's rate as it starts (6 steps an epoch): 0, the peak after the warm-up, then half-way down.
    rates = [float(row["learning_rate"]) for row in read_history(paths.history)]
    assert rates == pytest.approx([0.0, 0.003, 0.0015], abs=1e-9)
    # test_loss is the smoothed loss, as loss and val_loss are.
    with np.load(paths.predictions) as predictions:
        smoothed = optimizers.SmoothedSparseCrossentropy(0.1)(predictions["y_true"], predictions["probabilities"])
    assert metrics["test_loss"] == pytest.approx(float(smoothed), rel=1e-5)


def test_failure_is_recorded_not_raised(prepared, tmp_path, monkeypatch):
    from mnist3d.training import model

    def broken(params, implementation):
        raise RuntimeError("out of memory on purpose")

    monkeypatch.setattr(model, "build_model", broken)
    metrics, paths = run(prepared, tmp_path)
    assert metrics["status"] == "failed"
    assert metrics["error"] == "RuntimeError: out of memory on purpose"
    assert metrics["test_accuracy"] is None
    assert json.loads(paths.metrics.read_text())["status"] == "failed"
    assert read_history(paths.history) == []
    assert paths.model.exists() and paths.predictions.exists()
    with pytest.raises(RuntimeError, match="on purpose"):
        run(prepared, tmp_path / "strict", record_failure=False)


def test_metrics_split_rotated_and_unrotated():
    y_true = np.array([0, 1, 2, 3])
    y_pred = np.array([0, 1, 0, 0])
    metrics = evaluation_metrics(y_true, y_pred, np.array([0, 0, 1, 1]))
    assert metrics["test_accuracy"] == 0.5
    assert metrics["test_accuracy_unrotated"] == 1.0 and metrics["test_accuracy_rotated"] == 0.0
    assert metrics["per_class_accuracy"][:4] == [1.0, 1.0, 0.0, 0.0]
    assert metrics["per_class_accuracy"][4] is None
    unknown = evaluation_metrics(y_true, y_pred, np.full(4, -1))
    assert unknown["test_accuracy_rotated"] is None and unknown["test_accuracy_unrotated"] is None
