"""Resumable training: a checkpoint per run, written atomically at each epoch end, kept outside the outputs.

Keras' `BackupAndRestore` is the model: save at each epoch end, restore at the start of `fit`, go on
from the next epoch. It is extended where it does not restore everything a run needs to continue
exactly as an uninterrupted one would:
- one file, replaced atomically (BackupAndRestore writes the weights and the epoch number in two
  steps, so a kill between them resumes the wrong epoch);
- every model variable, the Dropout layer's seed-generator state included (Keras' `model.variables`),
  and every optimizer variable: its step count (which every learning-rate schedule reads), a
  learning rate that ReduceLROnPlateau lowered, and its slots (Adam's and AdamW's moments, SGD's
  momentum);
- the state of the EarlyStopping (wait, best value, best epoch and weights) and ReduceLROnPlateau
  (wait, cooldown, best value) callbacks, which reset themselves at the start of every `fit`;
- the history rows so far, and whether a callback already stopped the training.
Shuffling and augmentation need no state: the training batches are a pure function of (seed,
epoch, batch) (pipeline.make_training_dataset).

The checkpoint records the run's parameters and the digest of the training code; when either no
longer matches, it is discarded (and the log says why), never resumed. The directory lies outside
the rule's outputs (Snakemake deletes the outputs of a job that did not finish) and is removed
once the run's outputs are written.

NumPy only at import: Keras is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnist3d.atomic import atomic_path
from mnist3d.runid import run_id

ROOT = Path("results/checkpoints")
FILE = "checkpoint.npz"
FORMAT = 1


def run_directory(entry: str, replicate: int | str, root: Path = ROOT) -> Path:
    return Path(root) / run_id(entry, replicate)


@dataclass
class Checkpoint:
    """What a run had done when it wrote its checkpoint at the end of epoch `epoch` (counted from 1)."""

    path: Path
    epoch: int
    stopped: bool
    rows: list[dict]
    callbacks: dict
    model_names: list[str]
    model: list[np.ndarray]
    optimizer_names: list[str]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] | None = field(default=None)


def _plain(params: dict) -> dict:
    """`params` as it reads back from JSON (tuples become lists), for comparison with a saved copy."""
    return json.loads(json.dumps(params))


def file_digest(path: str | Path) -> str:
    """A short digest of a file's contents: a checkpoint is resumed only on the same prepared data."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def mismatch(state: dict, params: dict, training_code: str) -> str | None:
    """Why a checkpoint's saved `state` must not be resumed by this run, or None when it may."""
    if state.get("format") != FORMAT:
        return f"it was written in checkpoint format {state.get('format')!r}, this code reads {FORMAT}"
    if state.get("training_code") != training_code:
        return (f"the training code changed (digest {state.get('training_code')!r} then, "
                f"{training_code!r} now)")
    saved, now = state.get("params") or {}, _plain(params)
    changed = sorted(name for name in set(saved) | set(now) if saved.get(name) != now.get(name))
    if changed:
        return f"the run parameters changed ({', '.join(changed)})"
    return None


def _arrays(data, prefix: str, count: int) -> list[np.ndarray]:
    return [data[f"{prefix}{index}"] for index in range(count)]


def load(directory: Path, params: dict, training_code: str, log, keep: bool = False,
         file: str = FILE) -> Checkpoint | None:
    """The run's checkpoint when there is one it may resume; one it may not is deleted, saying why.

    `keep`: a file that is another job's output (a halving rung's state) is only read, never deleted."""
    directory = Path(directory)
    if not keep:
        for leftover in directory.glob(f".{Path(FILE).stem}.*"):
            leftover.unlink()  # a write cut short by a kill
    return _read(directory / file, params, training_code, log, keep)


def _read(path: Path, params: dict, training_code: str, log, keep: bool) -> Checkpoint | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            state = json.loads(str(data["state"]))
            reason = mismatch(state, params, training_code)
            if reason is None:
                best_count = state["best_weights"]
                checkpoint = Checkpoint(
                    path=path, epoch=int(state["epoch"]), stopped=bool(state["stopped"]), rows=state["rows"],
                    callbacks=state["callbacks"],
                    model_names=state["model_names"], model=_arrays(data, "model/", len(state["model_names"])),
                    optimizer_names=state["optimizer_names"],
                    optimizer=_arrays(data, "optimizer/", len(state["optimizer_names"])),
                    best_weights=None if best_count is None else _arrays(data, "best/", best_count),
                )
    except Exception as error:  # noqa: BLE001 (whatever is wrong with it, training starts over)
        reason = f"it cannot be read ({type(error).__name__}: {error})"
    if reason is not None:
        log(f"{'not resuming' if keep else 'discarding'} checkpoint {path}: {reason}; training starts from epoch 1")
        if not keep:
            path.unlink()
        return None
    return checkpoint


def save(directory: Path, params: dict, training_code: str, epoch: int, stopped: bool, rows: list[dict],
         callbacks: dict, model_variables, optimizer_variables, best_weights) -> Path:
    """Write the checkpoint of a run that has finished `epoch` epochs, replacing the last one atomically."""
    import keras

    state = {
        "format": FORMAT, "training_code": training_code, "params": _plain(params), "epoch": epoch,
        "stopped": stopped, "rows": rows, "callbacks": callbacks,
        "model_names": [variable.path for variable in model_variables],
        "optimizer_names": [variable.path for variable in optimizer_variables],
        "best_weights": None if best_weights is None else len(best_weights),
    }
    arrays = {"state": np.array(json.dumps(state))}
    for prefix, values in (("model/", model_variables), ("optimizer/", optimizer_variables)):
        arrays.update((f"{prefix}{index}", keras.ops.convert_to_numpy(value)) for index, value in enumerate(values))
    arrays.update((f"best/{index}", np.asarray(value)) for index, value in enumerate(best_weights or []))
    path = Path(directory) / FILE
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)
    return path


def remove(directory: Path) -> None:
    """Delete a finished run's checkpoint directory, and its entry's directory when that is left empty."""
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    with contextlib.suppress(OSError):  # not empty: other replicates' checkpoints
        directory.parent.rmdir()


def _assign(variables, names: list[str], values: list[np.ndarray], what: str) -> str | None:
    # Counted and shaped, not named: Keras numbers the names of objects built again in one process.
    if len(variables) != len(values):
        return f"it has {len(values)} {what} variables, the model {len(variables)}"
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            return f"{what} variable {variable.path} has shape {value.shape}, the model {tuple(variable.shape)}"
    for variable, value in zip(variables, values):
        variable.assign(value)
    return None


def restore_model(network, checkpoint: Checkpoint, log) -> bool:
    """Put the checkpoint's model and optimizer variables into the compiled `network`.

    False (and the checkpoint deleted) when they do not fit it, e.g. after a Keras upgrade.
    """
    network.optimizer.build(network.trainable_variables)
    reason = _assign(network.variables, checkpoint.model_names, checkpoint.model, "model") or _assign(
        network.optimizer.variables, checkpoint.optimizer_names, checkpoint.optimizer, "optimizer")
    if reason is not None:
        log(f"discarding checkpoint {checkpoint.path}: {reason}; training starts from epoch 1")
        checkpoint.path.unlink(missing_ok=True)
        return False
    return True


def _number(value):
    return None if value is None else float(value)


def callback_state(early_stopping, plateau) -> dict:
    state = {}
    if early_stopping is not None:
        state["early_stopping"] = {"wait": early_stopping.wait, "stopped_epoch": early_stopping.stopped_epoch,
                                   "best": _number(early_stopping.best), "best_epoch": early_stopping.best_epoch}
    if plateau is not None:
        state["plateau"] = {"wait": plateau.wait, "cooldown_counter": plateau.cooldown_counter,
                            "best": _number(plateau.best)}
    return state
