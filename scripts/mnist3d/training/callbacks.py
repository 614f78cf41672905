"""The run's own Keras callbacks: its history with progress lines, and its per-epoch checkpoint.

Module-level `keras.callbacks.Callback` subclasses configured in `__init__`, as Keras' own
(CSVLogger, BackupAndRestore). This module imports Keras when it is imported: the training code
imports it inside `train_run`, so that parsing the workflow stays free of TensorFlow.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras

from mnist3d.results.runfiles import HISTORY_COLUMNS, KERAS_MEASURES, write_history
from mnist3d.training import checkpoint


class HistoryLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger with one row per epoch in HISTORY_COLUMNS, that also keeps the rows and
    logs the run's progress.

    Rows count epochs from 1 and carry the epoch's wall time and the learning rate it started with.
    At the start of `fit` the file is rewritten with `rows` (a resumed run's, so that a row written
    after its last checkpoint goes), and CSVLogger appends to it from there.

    Args:
        path: the live history file, beside the run's checkpoint; the run's history.csv is a copy
            of it made at the end.
        rows: the history rows of the epochs already trained (empty for a new run).
        log: called with each progress line.
        total_epochs: the run's `epochs`, for "epoch 3/20".
        steps_per_epoch: batches per epoch; a line is logged every quarter epoch.
    """

    def __init__(self, path: Path, rows: list[dict], log, total_epochs: int, steps_per_epoch: int):
        super().__init__(str(path), append=True)
        self.path = Path(path)
        self.rows = list(rows)
        self.log = log
        self.total_epochs = total_epochs
        self.steps_per_epoch = steps_per_epoch
        self.report_every = max(1, steps_per_epoch // 4)

    def on_train_begin(self, logs=None):
        write_history(self.path, self.rows)
        super().on_train_begin(logs)
        self.keys = list(HISTORY_COLUMNS[1:])  # CSVLogger writes the epoch column itself

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        # The rate this epoch starts with: read at its end, a schedule already gives the next one's.
        self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.report_every == 0 and batch + 1 < self.steps_per_epoch:
            self.log(f"  epoch {len(self.rows) + 1}/{self.total_epochs}: batch {batch + 1}/{self.steps_per_epoch}, "
                     f"loss {logs['loss']:.4f}")

    def on_epoch_end(self, epoch, logs=None):
        row = {
            "epoch": epoch + 1,
            **{name: float(logs[name]) for name in KERAS_MEASURES},
            "seconds": time.perf_counter() - self.started,
            "learning_rate": self.learning_rate,
        }
        self.rows.append(row)
        super().on_epoch_end(epoch + 1, {name: row[name] for name in HISTORY_COLUMNS[1:]})
        self.log(
            f"epoch {row['epoch']}/{self.total_epochs} in {row['seconds']:.1f} s: loss {row['loss']:.4f}, "
            f"accuracy {row['accuracy']:.4f}, val_loss {row['val_loss']:.4f}, "
            f"val_accuracy {row['val_accuracy']:.4f}"
        )


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the run's checkpoint (mnist3d.training.checkpoint) after every epoch with a finite loss,
    and at the start of `fit` gives EarlyStopping and ReduceLROnPlateau back the state a resumed
    checkpoint saved.

    List it after those callbacks: they reset themselves in their own `on_train_begin` and update
    their state in their own `on_epoch_end`.

    Args:
        directory: the run's checkpoint directory.
        params: the run's parameters, recorded so that a changed run never resumes.
        training_code: the digest of the training code and data, recorded likewise.
        history: the run's HistoryLogger, whose rows are saved.
        early_stopping: the run's EarlyStopping callback, or None.
        plateau: the run's ReduceLROnPlateau callback, or None.
        resumed: the checkpoint this `fit` resumes from, or None.
    """

    def __init__(self, directory: Path, params: dict, training_code: str, history: HistoryLogger,
                 early_stopping=None, plateau=None, resumed: checkpoint.Checkpoint | None = None):
        super().__init__()
        self.directory = Path(directory)
        # Not `self.params`: Keras sets that to fit's own settings.
        self.run_params = params
        self.training_code = training_code
        self.history = history
        self.early_stopping = early_stopping
        self.plateau = plateau
        self.resumed = resumed

    def on_train_begin(self, logs=None):
        if self.resumed is None:
            return
        for name, callback in (("early_stopping", self.early_stopping), ("plateau", self.plateau)):
            if callback is not None:
                for attribute, value in self.resumed.callbacks.get(name, {}).items():
                    setattr(callback, attribute, value)
        if self.early_stopping is not None and self.resumed.best_weights is not None:
            self.early_stopping.best_weights = self.resumed.best_weights

    def on_epoch_end(self, epoch, logs=None):
        if not math.isfinite(self.history.rows[-1]["loss"]):
            return  # TerminateOnNaN ends the run, which then fails: nothing worth resuming
        checkpoint.save(
            self.directory, self.run_params, self.training_code, epoch + 1, bool(self.model.stop_training),
            self.history.rows, checkpoint.callback_state(self.early_stopping, self.plateau),
            self.model.variables, self.model.optimizer.variables,
            None if self.early_stopping is None else self.early_stopping.best_weights,
        )
