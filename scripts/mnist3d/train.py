"""Trains one run and writes its model, history, test predictions and metrics.

A run resumes from its checkpoint (mnist3d.checkpoint) and saves its model with stock Keras layers
only (mnist3d.model.stock_copy), so plain Keras loads it.

TensorFlow is imported inside the functions: this module is importable where only NumPy is.
"""

from __future__ import annotations

import csv
import platform
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist3d import checkpoint, prepare
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


def make_callbacks(params: dict, history) -> tuple[list, object, object]:
    """The run's callbacks, and its EarlyStopping and ReduceLROnPlateau (None when not asked for)."""
    import keras

    early_stopping = plateau = None
    if params["early_stopping_patience"]:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=params["early_stopping_patience"], restore_best_weights=True
        )
    if params["lr_schedule"] == "plateau":
        plateau = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    callbacks = [history, keras.callbacks.TerminateOnNaN(), early_stopping, plateau]
    return [callback for callback in callbacks if callback is not None], early_stopping, plateau


def history_logger(path: Path, rows: list[dict], log, total_epochs: int, steps_per_epoch: int):
    """Keras' CSVLogger, one row per epoch in HISTORY_COLUMNS (epochs counted from 1, with wall time
    and the learning rate the epoch started with), that also keeps the rows and logs progress.

    `path` is the live history beside the run's checkpoint: at the start of `fit` it is rewritten
    with the `rows` of a resumed run (so a row written after the last checkpoint goes), and
    CSVLogger appends to it from there. The run's history.csv is a copy of it, made at the end.
    """
    import keras

    class HistoryLogger(keras.callbacks.CSVLogger):
        def __init__(self):
            super().__init__(str(path), append=True)
            self.rows = list(rows)
            self.report_every = max(1, steps_per_epoch // 4)

        def on_train_begin(self, logs=None):
            write_history(path, self.rows)
            super().on_train_begin(logs)
            self.keys = list(HISTORY_COLUMNS[1:])

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
            super().on_epoch_end(epoch + 1, {name: row[name] for name in HISTORY_COLUMNS[1:]})
            log(
                f"epoch {row['epoch']}/{total_epochs} in {row['seconds']:.1f} s: loss {row['loss']:.4f}, "
                f"accuracy {row['accuracy']:.4f}, val_loss {row['val_loss']:.4f}, "
                f"val_accuracy {row['val_accuracy']:.4f}"
            )

    return HistoryLogger()


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
              checkpoint_dir: Path | None = None, training_code: str = "", record_failure: bool = True,
              retries_left: int = 0, gpu_slot: str | None = None, log=print) -> dict:
    """Train (resuming from `checkpoint_dir` when it holds this run's checkpoint), evaluate and write
    every output of one run; returns its metrics. The checkpoint goes once the outputs are written.
    Snakemake deletes the outputs of a job it did not see finish, so the workflow keeps checkpoints
    elsewhere (mnist3d.checkpoint.run_directory); without one, a directory beside the outputs.

    With `record_failure`, an error while building, training or evaluating the model is written as a
    failed run (the report shows it) rather than raised, so one bad run does not cost the others;
    but while Snakemake will still retry the job (`retries_left`), it is raised, so the retry runs.
    """
    from mnist3d import model as model_lib
    from mnist3d import pipeline

    pipeline.configure_tensorflow(threads=threads, seed=params["seed"])
    data = prepare.load(prepared_path)
    entry, replicate = run_id.rsplit("/rep", 1)
    metrics = {
        "run": run_id, "entry": entry, "replicate": int(replicate), "status": "ok", "error": None,
        "params": params, "seed": params["seed"], "dataset": str(data["source"]), "gpu_slot": gpu_slot,
        **environment(),
    }
    log(f"run {run_id}: {len(data['y_train'])} training, {len(data['y_val'])} validation, "
        f"{len(data['y_test'])} test grids; {metrics['device']}, {threads} threads")
    checkpoint_dir = Path(checkpoint_dir or paths.model.parent / "checkpoint")
    steps_per_epoch = pipeline.steps_per_epoch(len(data["y_train"]), params["batch_size"])
    resumed = checkpoint.load(checkpoint_dir, params, training_code, log)
    history = history_logger(checkpoint_dir / "history.csv", resumed.rows if resumed else [], log,
                             params["epochs"], steps_per_epoch)
    network = None
    try:
        network = model_lib.build_model(params, params["implementation"])
        compile_model(network, params, steps_per_epoch)
        metrics["parameter_count"] = int(network.count_params())
        if resumed is not None and not checkpoint.restore_model(network, resumed, log):
            resumed, history.rows = None, []
        first_epoch = 0
        if resumed is not None:
            # A run stopped early resumes with no epoch left: fit then only restores the best weights.
            first_epoch = params["epochs"] if resumed.stopped else resumed.epoch
            log(f"resumed from epoch {resumed.epoch} of {params['epochs']} ({resumed.path})")
        callbacks, early_stopping, plateau = make_callbacks(params, history)
        callbacks.append(checkpoint.epoch_checkpointer(
            checkpoint_dir, params, training_code, history, early_stopping, plateau, resumed))
        train_data = pipeline.make_training_dataset(
            data["x_train"], data["y_train"], params["batch_size"], seed=params["seed"],
            first_epoch=first_epoch, epochs=params["epochs"], augment=_augmentation(params),
        )
        validation_data = pipeline.make_dataset(
            data["x_val"], data["y_val"], EVALUATION_BATCH, shuffle=False, seed=params["seed"]
        )
        network.fit(train_data, validation_data=validation_data, epochs=params["epochs"],
                    initial_epoch=first_epoch, steps_per_epoch=steps_per_epoch,
                    callbacks=callbacks, shuffle=False, verbose=0)
        if not history.rows or not np.isfinite(history.rows[-1]["loss"]):
            raise FloatingPointError("the training loss became NaN or infinite; try a lower learning_rate")
        # Evaluate the model that is saved, built from stock layers, so that what a user loads from
        # model.keras predicts exactly what predictions.npz records.
        stock = model_lib.stock_copy(network, params)
        # Saved before compiling (the file holds no optimizer), beside the checkpoint: outputs are
        # written last, together, so a kill leaves none of them behind for Snakemake to find.
        saved_model = checkpoint_dir / "model.keras"
        with atomic_path(saved_model) as temporary:
            stock.save(temporary)
        # No XLA: a loaded model.keras, uncompiled, predicts without it.
        stock.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
        test_data = pipeline.make_dataset(
            data["x_test"], data["y_test"], EVALUATION_BATCH, shuffle=False, seed=params["seed"]
        )
        metrics["test_loss"], _ = (float(value) for value in stock.evaluate(test_data, verbose=0))
        probabilities = stock.predict(test_data, verbose=0)
    except Exception as error:
        if record_failure and retries_left <= 0:
            log(f"run {run_id} FAILED:\n{traceback.format_exc()}")
            _write_failure(paths, metrics, history, network, error, log)
            return metrics
        if record_failure:
            log(f"run {run_id}: this attempt failed; Snakemake retries it {retries_left} more time(s), "
                "from its checkpoint when it has one, and records the failure if the last attempt fails too")
        raise

    y_pred = probabilities.argmax(axis=1)
    metrics.update(evaluation_metrics(data["y_test"], y_pred, data["test_rotated"]))
    metrics["epochs_run"] = len(history.rows)
    metrics["best_epoch"] = early_stopping.best_epoch + 1 if early_stopping is not None else len(history.rows)
    # Wall time of the epochs, those before a resume included.
    metrics["training_seconds"] = sum(row["seconds"] for row in history.rows)
    metrics["samples_per_second"] = len(data["y_train"]) * len(history.rows) / metrics["training_seconds"]
    with atomic_path(paths.model) as temporary:
        shutil.copyfile(saved_model, temporary)
    _copy_history(history, paths.history)
    write_predictions(paths.predictions, data["y_test"], probabilities, data["test_rotated"])
    write_json(paths.metrics, metrics)
    checkpoint.remove(checkpoint_dir)
    log(f"run {run_id}: test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs_run']} epochs "
        f"in {metrics['training_seconds']:.0f} s ({metrics['samples_per_second']:.0f} samples/s)")
    return metrics


def _copy_history(history, path: Path) -> None:
    """history.csv: the CSVLogger's live file, or the rows alone when training never started."""
    live = Path(history.filename)
    if not live.exists():
        write_history(path, history.rows)
        return
    with atomic_path(path) as temporary:
        shutil.copyfile(live, temporary)


def _augmentation(params: dict):
    if not params["rotation_augmentation"]:
        return None
    from mnist3d import augment

    return augment.random_rotation(params["rotation_augmentation"], seed=params["seed"])


def _write_failure(paths: RunPaths, metrics: dict, history, network, error: Exception, log) -> None:
    """Record a failed run. Its checkpoint stays: the retry command resumes it from there."""
    metrics.update(status="failed", error=f"{type(error).__name__}: {error}", epochs_run=len(history.rows))
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
    _copy_history(history, paths.history)
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
