"""A run's TensorBoard event file (results/tensorboard/ENTRY/repK/), written from the files training left.

One file per run directory, so `tensorboard --logdir results/tensorboard` lists each run as ENTRY/repK:
- per epoch (step = the history's epoch, from 1): every history column but the epoch, under its own name;
- at the last epoch: the final measures of metrics.json (FINAL_SCALARS) that the run has;
- an HParams session: the run's parameters and entry (HPARAM_EXTRAS), its start and end, and whether it
  finished; TensorBoard's hparams plugin offers every scalar of the run as a metric, the final ones included.

Written after training rather than by a Keras callback, so training is untouched and a resumed run is no
special case: its history.csv holds each epoch once (the training job rewrites the live history from its
checkpoint when it resumes), and the file is written whole from it, never appended to.

The file is the same bytes for the same run files: its wall times count from 0 at the start of training
(TensorBoard's "Relative" axis reads them as the training time) and its name is fixed. Written with
TensorBoard's own protos and record framing only: tensorboard.summary.Writer would import TensorFlow
(seconds per job) where it is installed, and names its files after the clock and the host.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from tensorboard.summary.writer.record_writer import RecordWriter

from mnist3d.config.levers import with_levers
from mnist3d.results.runfiles import HISTORY_COLUMNS, read_history, read_metrics

# TensorBoard reads files whose name holds "tfevents"; a fixed name makes a rewrite replace the old file.
EVENT_FILE = "events.out.tfevents.0.mnist3d"
EPOCH_SCALARS = HISTORY_COLUMNS[1:]
# metrics.json's measures of the trained model and its cost, as in results/metrics.csv.
FINAL_SCALARS = ("test_accuracy", "test_loss", "test_accuracy_unrotated", "test_accuracy_rotated",
                 "training_seconds", "parameter_count")
# HParams of each session besides the run's parameters: its entry, so replicates can be picked out.
HPARAM_EXTRAS = ("entry",)
FILE_VERSION = "brain.Event:2"


def hparam_value(value) -> bool | float | str:
    """A parameter as an HParams value: booleans, numbers and strings as they are, anything else (lists
    such as filters) as the JSON text the models file would show, `[16, 32]`."""
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return json.dumps(value)


def hparams(metrics: dict) -> dict[str, bool | float | str]:
    """The HParams of a run: its parameters (metrics.json's params, the levers it leaves at their default
    included, so every run has every column) and HPARAM_EXTRAS."""
    values = {**with_levers(metrics.get("params", {})), **{name: metrics[name] for name in HPARAM_EXTRAS if name in metrics}}
    return {name: hparam_value(value) for name, value in sorted(values.items()) if value is not None}


def check_epochs(history: np.ndarray, where: str) -> None:
    """Refuse a history whose epochs are not 1, 2, ... each once: steps of an event file must not repeat."""
    epochs = history["epoch"]
    expected = np.arange(1, len(epochs) + 1)
    if not np.array_equal(epochs, expected):
        repeated = sorted({int(epoch) for epoch in epochs[np.flatnonzero(np.diff(epochs) == 0) + 1]})
        detail = f"epochs {repeated} appear more than once" if repeated else f"epochs {epochs.tolist()} are not 1..N"
        raise ValueError(f"{where}: {detail}")


def _summary_event(step: int, wall_time: float, summary: summary_pb2.Summary) -> event_pb2.Event:
    return event_pb2.Event(step=step, wall_time=wall_time, summary=summary)


def _scalars(values: dict[str, float]) -> summary_pb2.Summary:
    return summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in values.items()])


def _session_end(ok: bool, end_time: float) -> summary_pb2.Summary:
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS if ok else api_pb2.STATUS_FAILURE,
                                         end_time_secs=end_time)
    summary = summary_pb2.Summary()
    summary.value.add(tag=hparams_metadata.SESSION_END_INFO_TAG, tensor=hparams_metadata.NULL_TENSOR,
                      metadata=hparams_metadata.create_summary_metadata(
                          plugin_data_pb2.HParamsPluginData(session_end_info=end)))
    return summary


def run_events(metrics: dict, history: np.ndarray) -> list[event_pb2.Event]:
    """A run's events in the order of their steps: the file version and the HParams session start at
    step 0 and time 0, one event per epoch at the time that epoch ended, then the final measures and
    the session's end at the last epoch.

    `history` is runfiles.read_history's record array, its epochs checked (check_epochs).
    """
    seconds = np.nan_to_num(np.asarray(history["seconds"], dtype=float), nan=0.0)
    ended = np.cumsum(seconds)
    events = [event_pb2.Event(wall_time=0.0, file_version=FILE_VERSION),
              _summary_event(0, 0.0, hparams_pb(hparams(metrics), trial_id=metrics["run"], start_time_secs=0.0))]
    for index, row in enumerate(history):
        events.append(_summary_event(int(row["epoch"]), float(ended[index]),
                                     _scalars({name: float(row[name]) for name in EPOCH_SCALARS})))
    last_step, end_time = len(history), float(ended[-1]) if len(history) else 0.0
    final = {name: float(metrics[name]) for name in FINAL_SCALARS if _is_number(metrics.get(name))}
    if final:
        events.append(_summary_event(last_step, end_time, _scalars(final)))
    events.append(_summary_event(last_step, end_time, _session_end(metrics.get("status") == "ok", end_time)))
    return events


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Buffer(list):
    """The file-like object RecordWriter writes to: the records, kept in memory."""

    write = list.append

    def flush(self):
        pass

    def close(self):
        pass


def encode(events: list[event_pb2.Event]) -> bytes:
    """Events as the bytes of an event file (TFRecord framing, as TensorFlow writes them)."""
    buffer = _Buffer()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    return b"".join(buffer)


def write_event_file(directory: str | Path, events: list[event_pb2.Event]) -> Path:
    """Write `events` as the directory's one event file, whole or not at all; other event files there go.

    The temporary file's name lacks "tfevents", so TensorBoard never reads a half-written one, nor one
    that a kill left behind.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / EVENT_FILE
    temporary = directory / f".{secrets.token_hex(4)}.partial"
    try:
        with open(temporary, "xb") as handle:
            handle.write(encode(events))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    for other in directory.iterdir():
        if "tfevents" in other.name and other != path:
            other.unlink()
    return path


def write_run_events(directory: str | Path, metrics_path: str | Path, history_path: str | Path) -> Path:
    """The event file of the run whose metrics.json and history.csv are given, in `directory`."""
    history = read_history(history_path)
    check_epochs(history, str(history_path))
    return write_event_file(directory, run_events(read_metrics(metrics_path), history))
