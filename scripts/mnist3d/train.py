"""Trains one run and writes its model, history, test predictions and metrics.

TensorFlow is imported inside the functions: this module is importable where only NumPy is.
"""

from __future__ import annotations

import csv
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist3d import prepare
from mnist3d.atomic import atomic_path, write_json

HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "learning_rate")
EVALUATION_BATCH = 512
CLASSES = 10


@dataclass(frozen=True)
class RunPaths:
    model: Path
    history: Path
    predictions: Path
    metrics: Path


def make_optimizer(params: dict, steps_per_epoch: int):
    import keras

    learning_rate = params["learning_rate"]
    if params["lr_schedule"] == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=params["epochs"] * steps_per_epoch
        )
    return keras.optimizers.Adam(learning_rate=learning_rate)


def compile_model(model, params: dict, steps_per_epoch: int) -> None:
    """The seed's loss and metric; XLA only when asked (on CPUs it was slower)."""
    model.compile(
        optimizer=make_optimizer(params, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=params["jit_compile"],
    )


def make_callbacks(params: dict, recorder) -> list:
    import keras

    callbacks = [recorder, keras.callbacks.TerminateOnNaN()]
    if params["early_stopping_patience"]:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=params["early_stopping_patience"], restore_best_weights=True
            )
        )
    if params["lr_schedule"] == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2))
    return callbacks


def history_recorder(log, total_epochs: int, steps_per_epoch: int):
    """A callback that keeps one row per epoch (with its wall time) and logs progress as it goes."""
    import keras

    class HistoryRecorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: list[dict] = []
            self.report_every = max(1, steps_per_epoch // 4)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            # The rate this epoch starts with: read at its end, a schedule already gives the next one's.
            self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % self.report_every == 0 and batch + 1 < steps_per_epoch:
                log(f"  epoch {len(self.rows) + 1}/{total_epochs}: batch {batch + 1}/{steps_per_epoch}, "
                    f"loss {logs['loss']:.4f}")

        def on_epoch_end(self, epoch, logs=None):
            row = {
                "epoch": epoch + 1,
                **{name: float(logs[name]) for name in HISTORY_COLUMNS[1:5]},
                "seconds": time.perf_counter() - self.started,
                "learning_rate": self.learning_rate,
            }
            self.rows.append(row)
            log(
                f"epoch {row['epoch']}/{total_epochs} in {row['seconds']:.1f} s: loss {row['loss']:.4f}, "
                f"accuracy {row['accuracy']:.4f}, val_loss {row['val_loss']:.4f}, "
                f"val_accuracy {row['val_accuracy']:.4f}"
            )

    return HistoryRecorder()


def write_history(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_predictions(path: Path, y_true, probabilities, test_rotated) -> None:
    with atomic_path(path) as temporary:
        np.savez(
            temporary,
            y_true=np.asarray(y_true, dtype=np.int64),
            y_pred=np.asarray(probabilities).argmax(axis=1).astype(np.int64),
            probabilities=np.asarray(probabilities, dtype=np.float32).reshape(-1, CLASSES),
            test_rotated=np.asarray(test_rotated, dtype=np.int8),
        )


def accuracy_where(y_true, y_pred, mask) -> float | None:
    return float(np.mean(y_true[mask] == y_pred[mask])) if mask.any() else None


def evaluation_metrics(y_true: np.ndarray, y_pred: np.ndarray, test_rotated: np.ndarray) -> dict:
    """Accuracy overall, per class, and on the unrotated and rotated halves where the data tells them apart."""
    return {
        "test_accuracy": float(np.mean(y_true == y_pred)),
        "test_accuracy_unrotated": accuracy_where(y_true, y_pred, test_rotated == 0),
        "test_accuracy_rotated": accuracy_where(y_true, y_pred, test_rotated == 1),
        "per_class_accuracy": [accuracy_where(y_true, y_pred, y_true == c) for c in range(CLASSES)],
    }


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus]
        device = f"GPU: {', '.join(names)}"
    else:
        device = f"CPU: {cpu_name()}"
    return {
        "device": device,
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
    }


def train_run(run_id: str, params: dict, prepared_path: Path, paths: RunPaths, threads: int,
              record_failure: bool = True, log=print) -> dict:
    """Train, evaluate and write every output of one run; returns its metrics.

    With `record_failure`, an error while building, training or evaluating the model is written as a
    failed run (the report shows it) rather than raised, so one bad run does not cost the others.
    """
    from mnist3d import model as model_lib
    from mnist3d import pipeline

    pipeline.configure_tensorflow(threads=threads, seed=params["seed"])
    data = prepare.load(prepared_path)
    entry, replicate = run_id.rsplit("/rep", 1)
    metrics = {
        "run": run_id, "entry": entry, "replicate": int(replicate), "status": "ok", "error": None,
        "params": params, "seed": params["seed"], "dataset": str(data["source"]),
        **environment(),
    }
    log(f"run {run_id}: {len(data['y_train'])} training, {len(data['y_val'])} validation, "
        f"{len(data['y_test'])} test grids; {metrics['device']}, {threads} threads")
    steps_per_epoch = -(-len(data["y_train"]) // params["batch_size"])
    recorder = history_recorder(log, params["epochs"], steps_per_epoch)
    network = None
    try:
        network = model_lib.build_model(params, params["implementation"])
        compile_model(network, params, steps_per_epoch)
        metrics["parameter_count"] = int(network.count_params())
        train_data = pipeline.make_dataset(
            data["x_train"], data["y_train"], params["batch_size"], shuffle=True, seed=params["seed"],
            augment=_augmentation(params),
        )
        validation_data = pipeline.make_dataset(
            data["x_val"], data["y_val"], EVALUATION_BATCH, shuffle=False, seed=params["seed"]
        )
        started = time.perf_counter()
        network.fit(train_data, validation_data=validation_data, epochs=params["epochs"],
                    callbacks=make_callbacks(params, recorder), shuffle=False, verbose=0)
        metrics["training_seconds"] = time.perf_counter() - started
        if not recorder.rows or not np.isfinite(recorder.rows[-1]["loss"]):
            raise FloatingPointError("the training loss became NaN or infinite; try a lower learning_rate")
        test_data = pipeline.make_dataset(
            data["x_test"], data["y_test"], EVALUATION_BATCH, shuffle=False, seed=params["seed"]
        )
        metrics["test_loss"], _ = (float(value) for value in network.evaluate(test_data, verbose=0))
        probabilities = network.predict(test_data, verbose=0)
    except Exception as error:
        if not record_failure:
            raise
        log(f"run {run_id} FAILED:\n{traceback.format_exc()}")
        _write_failure(paths, metrics, recorder.rows, network, error, log)
        return metrics

    y_pred = probabilities.argmax(axis=1)
    metrics.update(evaluation_metrics(data["y_test"], y_pred, data["test_rotated"]))
    metrics["epochs_run"] = len(recorder.rows)
    metrics["best_epoch"] = _best_epoch(recorder.rows, params)
    metrics["samples_per_second"] = len(data["y_train"]) * len(recorder.rows) / metrics["training_seconds"]
    with atomic_path(paths.model) as temporary:
        network.save(temporary)
    write_history(paths.history, recorder.rows)
    write_predictions(paths.predictions, data["y_test"], probabilities, data["test_rotated"])
    write_json(paths.metrics, metrics)
    log(f"run {run_id}: test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs_run']} epochs "
        f"in {metrics['training_seconds']:.0f} s ({metrics['samples_per_second']:.0f} samples/s)")
    return metrics


def _augmentation(params: dict):
    if not params["rotation_augmentation"]:
        return None
    from mnist3d import augment

    return augment.random_rotation(params["rotation_augmentation"], seed=params["seed"])


def _best_epoch(rows: list[dict], params: dict) -> int:
    """The epoch whose weights the saved model holds."""
    if params["early_stopping_patience"]:
        return int(min(rows, key=lambda row: row["val_loss"])["epoch"])
    return len(rows)


def _write_failure(paths: RunPaths, metrics: dict, rows: list[dict], network, error: Exception, log) -> None:
    metrics.update(status="failed", error=f"{type(error).__name__}: {error}", epochs_run=len(rows))
    for name in ("test_accuracy", "test_loss", "test_accuracy_unrotated", "test_accuracy_rotated",
                 "training_seconds", "best_epoch", "samples_per_second"):
        metrics.setdefault(name, None)
    metrics.setdefault("parameter_count", None)
    metrics["per_class_accuracy"] = [None] * CLASSES
    with atomic_path(paths.model) as temporary:
        # The model as it stood helps to debug the failure. The file is a rule output, so it is
        # written even when there is no model to save: empty then.
        if network is None or not _saved(network, temporary, log):
            temporary.write_bytes(b"")
    write_history(paths.history, rows)
    write_predictions(paths.predictions, [], np.zeros((0, CLASSES)), [])
    write_json(paths.metrics, metrics)


def _saved(network, path, log) -> bool:
    """Save `network`; False when it cannot be (a failure can leave it unsaveable)."""
    try:
        network.save(path)
    except Exception as error:  # noqa: BLE001 (any reason: the run has already failed)
        log(f"the failed model could not be saved either: {type(error).__name__}: {error}")
        return False
    return True
