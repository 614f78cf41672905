"""Trains one run and writes its model, history, test predictions and metrics.

A run trains with the optimizer, schedule and loss of its training levers (mnist3d.training.optimizers),
resumes from its checkpoint (mnist3d.training.checkpoint) and saves its model with stock Keras layers only
(mnist3d.training.model.stock_copy), so plain Keras loads it.

In a halving sweep (mnist3d.config.halving) a run trains in steps: a rung job trains it on from its
previous rung's state to the rung's epoch and leaves the state there (RunPaths.rung_checkpoint,
mnist3d.results.rungs), and the run's own job evaluates its last state, marking a run that a
decision stopped (Run.stopped). The schedule always spans the run's full `epochs`, so a run that
reaches the last rung is exactly the run trained straight through.

TensorFlow is imported inside the functions: this module is importable where only NumPy is.
"""

from __future__ import annotations

import platform
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist3d.atomic import atomic_path
from mnist3d.data import prepare
from mnist3d.grid import CLASSES
from mnist3d.results.confusion import evaluation_metrics
from mnist3d.results.runfiles import write_history, write_metrics, write_predictions
from mnist3d.results.rungs import read_rung_record, rung_record, write_rung_record
from mnist3d.runid import run_id
from mnist3d.training import checkpoint

EVALUATION_BATCH = 512


@dataclass(frozen=True)
class Run:
    """What to train: replicate `replicate` of entry `entry`, with its canonical parameters; in a halving
    sweep only up to epoch `until_epoch` (None: all its epochs), and `stopped` says why a decision
    stopped it there (None: it was not stopped)."""

    entry: str
    replicate: int
    params: dict
    until_epoch: int | None = None
    stopped: str | None = None

    @property
    def id(self) -> str:
        return run_id(self.entry, self.replicate)


@dataclass(frozen=True)
class RunPaths:
    """The run's input (the prepared data), its four outputs, and its checkpoint directory (outside
    the outputs, which Snakemake deletes when a job does not finish; None: beside the outputs).

    Halving: `resume_from` and `resume_record` are the checkpoint and record of the rung state the run
    goes on from when its own checkpoint does not take it further; a rung job has the three `rung_`
    files as its outputs instead of the four (mnist3d.results.rungs), and is not evaluated."""

    prepared: Path
    model: Path | None
    history: Path | None
    predictions: Path | None
    metrics: Path | None
    checkpoint_dir: Path | None = None
    resume_from: Path | None = None
    resume_record: Path | None = None
    rung_checkpoint: Path | None = None
    rung_history: Path | None = None
    rung_record: Path | None = None

    @property
    def checkpoints(self) -> Path:
        return Path(self.checkpoint_dir or (self.model or self.rung_checkpoint).parent / "checkpoint")

    @classmethod
    def in_directory(cls, prepared: Path, directory: Path, checkpoint_dir: Path | None = None) -> RunPaths:
        """The outputs in one directory, named as the workflow names them (rules/train.smk)."""
        directory = Path(directory)
        return cls(Path(prepared), directory / "model.keras", directory / "history.csv",
                   directory / "predictions.npz", directory / "metrics.json", checkpoint_dir)


@dataclass(frozen=True)
class TrainingEnvironment:
    """How this job trains, none of it a run parameter (changing it retrains nothing).

    `training_code` names the training code and prepared data: a checkpoint is resumed only by the
    same. With `record_failure`, a failed run is written as such (the report shows it) rather than
    raised, except while Snakemake will still retry the job (`retries_left`)."""

    threads: int
    training_code: str = ""
    record_failure: bool = True
    retries_left: int = 0
    gpu_slot: str | None = None


def compile_model(model, params: dict, steps_per_epoch: int) -> None:
    """The run's optimizer, loss (mnist3d.training.optimizers) and the notebook's metric; XLA only
    when asked (slower on CPUs: bench/README.md)."""
    from mnist3d.training import optimizers

    model.compile(
        optimizer=optimizers.make_optimizer(params, steps_per_epoch),
        loss=optimizers.make_loss(params),
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


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_and_versions() -> dict:
    """The device that trains and the versions that matter, as metrics.json records them."""
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


def train_run(run: Run, paths: RunPaths, environment: TrainingEnvironment, log=print) -> dict:
    """Train `run` (resuming from its checkpoint when there is one it may resume), evaluate it and
    write every output in `paths`; returns its metrics. The checkpoint goes once the outputs are
    written.

    An error while building, training or evaluating the model is recorded or raised as
    `environment` says (TrainingEnvironment), so one bad run need not cost the others.
    """
    from mnist3d.training import callbacks as run_callbacks
    from mnist3d.training import model as model_lib
    from mnist3d.training import optimizers, pipeline

    params = run.params
    until = run.until_epoch or params["epochs"]
    pipeline.configure_tensorflow(threads=environment.threads, seed=params["seed"])
    data = prepare.load(paths.prepared)
    metrics = {
        "run": run.id, "entry": run.entry, "replicate": int(run.replicate),
        "status": "stopped" if run.stopped else "ok", "error": None, **({"stopped": run.stopped} if run.stopped else {}),
        "params": params, "seed": params["seed"], "dataset": str(data["source"]),
        "gpu_slot": environment.gpu_slot, **device_and_versions(),
    }
    log(f"run {run.id}: {len(data['y_train'])} training, {len(data['y_val'])} validation, "
        f"{len(data['y_test'])} test grids; {metrics['device']}, {environment.threads} threads")
    checkpoint_dir = paths.checkpoints
    training_code = environment.training_code
    steps_per_epoch = pipeline.steps_per_epoch(len(data["y_train"]), params["batch_size"])
    resumed, state_error = _resume_point(paths, params, training_code, until, log)
    history = run_callbacks.HistoryLogger(checkpoint_dir / "history.csv", resumed.rows if resumed else [], log,
                                          params["epochs"], steps_per_epoch)
    network = None
    try:
        if state_error is not None:
            raise RuntimeError(state_error)
        network = model_lib.build_model(params, params["implementation"])
        compile_model(network, params, steps_per_epoch)
        metrics["parameter_count"] = int(network.count_params())
        if resumed is not None and not checkpoint.restore_model(network, resumed, log):
            resumed, history.rows = None, []
        first_epoch = 0
        if resumed is not None:
            # A run stopped early resumes with no epoch left: fit then only restores the best weights.
            first_epoch = until if resumed.stopped else resumed.epoch
            log(f"resumed from epoch {resumed.epoch} of {params['epochs']} ({resumed.path})")
        callbacks, early_stopping, plateau = make_callbacks(params, history)
        callbacks.append(run_callbacks.EpochCheckpoint(
            checkpoint_dir, params, training_code, history, early_stopping, plateau, resumed))
        train_data = pipeline.make_training_dataset(
            data["x_train"], data["y_train"], params["batch_size"], seed=params["seed"],
            first_epoch=first_epoch, epochs=until, augment=_augmentation(params),
        )
        validation_data = pipeline.make_dataset(
            data["x_val"], data["y_val"], EVALUATION_BATCH, shuffle=False, seed=params["seed"]
        )
        network.fit(train_data, validation_data=validation_data, epochs=until,
                    initial_epoch=first_epoch, steps_per_epoch=steps_per_epoch,
                    callbacks=callbacks, shuffle=False, verbose=0)
        if not history.rows or not np.isfinite(history.rows[-1]["loss"]):
            raise FloatingPointError("the training loss became NaN or infinite; try a lower learning_rate")
        if paths.rung_record is not None:
            return _write_rung(run, paths, history, until, log)
        # Evaluate the model that is saved, built from stock layers, so that what a user loads from
        # model.keras predicts exactly what predictions.npz records.
        stock = model_lib.stock_copy(network, params)
        # Saved before compiling (the file holds no optimizer), beside the checkpoint: outputs are
        # written last, together, so a kill leaves none of them behind for Snakemake to find.
        saved_model = checkpoint_dir / "model.keras"
        with atomic_path(saved_model) as temporary:
            stock.save(temporary)
        # No XLA: a loaded model.keras, uncompiled, predicts without it. The training loss, so that
        # test_loss means what val_loss means.
        stock.compile(loss=optimizers.make_loss(params), metrics=["accuracy"], jit_compile=False)
        test_data = pipeline.make_dataset(
            data["x_test"], data["y_test"], EVALUATION_BATCH, shuffle=False, seed=params["seed"]
        )
        metrics["test_loss"], _ = (float(value) for value in stock.evaluate(test_data, verbose=0))
        probabilities = stock.predict(test_data, verbose=0)
    except Exception as error:
        if environment.record_failure and environment.retries_left <= 0:
            log(f"run {run.id} FAILED:\n{traceback.format_exc()}")
            if paths.rung_record is not None:
                return _write_rung(run, paths, history, until, log, error=f"{type(error).__name__}: {error}")
            _write_failure(paths, metrics, history, network, error, log)
            return metrics
        if environment.record_failure:
            log(f"run {run.id}: this attempt failed; Snakemake retries it {environment.retries_left} more time(s), "
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
    write_metrics(paths.metrics, metrics)
    checkpoint.remove(checkpoint_dir)
    log(f"run {run.id}: test accuracy {metrics['test_accuracy']:.4f} after {metrics['epochs_run']} epochs "
        f"in {metrics['training_seconds']:.0f} s ({metrics['samples_per_second']:.0f} samples/s)"
        + (f", {run.stopped}" if run.stopped else ""))
    return metrics


def _resume_point(paths: RunPaths, params: dict, training_code: str, until: int, log):
    """(checkpoint to go on from or None, why the run cannot go on or None).

    The run's own checkpoint (a job cut off) unless it is past epoch `until`; else the rung state in
    `paths.resume_from`, read but never deleted (it is another job's output)."""
    resumed = checkpoint.load(paths.checkpoints, params, training_code, log)
    if resumed is not None and resumed.epoch > until:
        log(f"not resuming {resumed.path}: it is at epoch {resumed.epoch}, past epoch {until} where this job stops")
        resumed = None
    if resumed is not None or paths.resume_from is None:
        return resumed, None
    record = read_rung_record(paths.resume_record)
    if record["status"] != "ok":
        return None, f"its training failed at rung epoch {record['epoch']}: {record['error']}"
    state = Path(paths.resume_from)
    return checkpoint.load(state.parent, params, training_code, log, keep=True, file=state.name), None


def _write_rung(run: Run, paths: RunPaths, history, until: int, log, error: str | None = None) -> dict:
    """A rung job's outputs: the run's checkpoint at epoch `until` (empty after a failure), its history and
    its rung record; the checkpoint directory goes, the state now lives in the outputs."""
    record = rung_record(run.id, run.entry, run.replicate, until, history.rows, error)
    source = paths.checkpoints / checkpoint.FILE
    with atomic_path(paths.rung_checkpoint) as temporary:
        if record["status"] == "ok":
            shutil.copyfile(source, temporary)
    _copy_history(history, paths.rung_history)
    write_rung_record(paths.rung_record, record)
    if record["status"] == "ok":
        checkpoint.remove(paths.checkpoints)
        log(f"run {run.id}: at rung epoch {until}, val_accuracy {record['val_accuracy']:.4f}, "
            f"val_loss {record['val_loss']:.4f}")
    return record


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
    from mnist3d.training import augment

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
    write_metrics(paths.metrics, metrics)


def _saved(network, path, log) -> bool:
    """Save `network`; False when it cannot be (a failure can leave it unsaveable)."""
    try:
        network.save(path)
    except Exception as error:  # noqa: BLE001 (any reason: the run has already failed)
        log(f"the failed model could not be saved either: {type(error).__name__}: {error}")
        return False
    return True
