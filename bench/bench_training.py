"""Training throughput of the seed notebook's way against the workflow's, interleaved in one process.

    python3 bench/bench_training.py                  # speed: A B A B ..., samples/s and ratio
    python3 bench/bench_training.py --accuracy 3     # sanity: both train 3 epochs, test accuracy

A (seed): keras.Sequential with the notebook's layers, compiled with Adam, `model.fit` on NumPy arrays.
B (workflow): mnist3d.model.build_model(params, "fast"), the workflow's compile, and
mnist3d.pipeline.make_dataset. Same network, data, batch size, optimizer and float32. Both run in this
process after mnist3d.pipeline.configure_tensorflow, as a training job does. Each round trains A
then B one epoch of the same number of steps, timed from epoch begin to end; the ratio is of the
median samples/s over the rounds.
Data: results/data/prepared.npz when it exists (or --data), otherwise random grids (dense
convolutions cost the same on any values). See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Keras warns that fit's default shuffle=True does not apply to a tf.data.Dataset (it shuffles itself).
warnings.filterwarnings("ignore", message=".*shuffle=True.*was passed")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mnist3d import model as model_lib  # noqa: E402
from mnist3d import pipeline  # noqa: E402
from mnist3d.runconfig import OPTIONAL_DEFAULTS  # noqa: E402

# The seed's reference network, with the workflow's defaults for every other lever (all off).
REFERENCE = {
    **OPTIONAL_DEFAULTS, "filters": [16, 32, 64], "kernel_sizes": [3, 3, 3], "pool_sizes": [2, 2, 2],
    "dense": 256, "dropout": 0.5, "learning_rate": 0.001, "batch_size": 64, "epochs": 1, "seed": 1,
}
DEFAULT_DATA = REPO / "results" / "data" / "prepared.npz"
EPOCH_GRIDS = 8000  # training grids of the default generated data set


def seed_model(params: dict):
    """The notebook's create_model(), line by line."""
    from tensorflow.keras.layers import (BatchNormalization, Conv3D, Dense, Dropout, Flatten, Input,
                                         MaxPooling3D)
    from tensorflow.keras.models import Sequential
    from tensorflow.keras.optimizers import Adam

    model = Sequential()
    model.add(Input(shape=(16, 16, 16, 1)))
    for filter_num, kernel_size, pool_size in zip(params["filters"], params["kernel_sizes"], params["pool_sizes"]):
        model.add(Conv3D(filters=filter_num, kernel_size=kernel_size, activation="relu", padding="same"))
        model.add(BatchNormalization())
        model.add(MaxPooling3D(pool_size=pool_size, padding="same"))
    model.add(Flatten())
    model.add(Dense(units=params["dense"], activation="relu"))
    model.add(Dropout(params["dropout"]))
    model.add(Dense(units=10, activation="softmax"))
    model.compile(optimizer=Adam(learning_rate=params["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def workflow_model(params: dict, steps_per_epoch: int):
    from mnist3d import train

    model = model_lib.build_model(params, "fast")
    train.compile_model(model, params, steps_per_epoch)
    return model


def load_data(path: Path | None, count: int, seed: int):
    """`count` training grids and labels from a prepared.npz (repeated if it has fewer), or random
    ones; and where they came from."""
    path = path or (DEFAULT_DATA if DEFAULT_DATA.exists() else None)
    if path is not None:
        with np.load(path) as arrays:
            x, y = arrays["x_train"], arrays["y_train"]
        repeats = -(-count // len(y))
        return np.concatenate([x] * repeats)[:count], np.concatenate([y] * repeats)[:count], str(path)
    rng = np.random.default_rng(seed)
    x = rng.random((count, 16, 16, 16, 1), dtype=np.float32)
    y = rng.integers(0, 10, count).astype(np.int64)
    return x, y, "random grids"


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_timer():
    """A callback that keeps the wall time of every training step and of every epoch.

    Epochs, not whole `fit` calls, are timed: a call's set-up (Keras converting the NumPy arrays) and
    its tear-down (the input iterator's threads stopping, seen taking up to 2 s on a busy machine)
    happen once per training, not once per epoch.
    """
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps: list[float] = []
            self.epochs: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append(time.perf_counter() - self.epoch_started)

        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append(time.perf_counter() - self.started)

    return StepTimer()


def speed(args) -> None:
    params = {**REFERENCE, "batch_size": args.batch_size}
    samples = args.steps * args.batch_size
    x, y, source = load_data(args.data, samples, params["seed"])
    settings = pipeline.configure_tensorflow(args.threads, params["seed"])
    import tensorflow as tf

    print(f"data: {source}; {args.steps} steps x batch {args.batch_size} per measurement; "
          f"{args.rounds} rounds A B after a warm-up; TensorFlow {tf.__version__}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}; {settings}")
    baseline_rss = rss_mib()
    seed = seed_model(params)
    dataset = pipeline.make_dataset(x, y, args.batch_size, shuffle=True, seed=params["seed"])
    fast = workflow_model(params, args.steps)
    timers = {"A": step_timer(), "B": step_timer()}
    paths = {
        "A": ("seed: Sequential, fit on NumPy", lambda: seed.fit(
            x, y, batch_size=args.batch_size, epochs=1, verbose=0, callbacks=[timers["A"]])),
        "B": ("workflow: fast layers, tf.data", lambda: fast.fit(
            dataset, epochs=1, verbose=0, callbacks=[timers["B"]])),
    }
    cpu_seconds = {name: 0.0 for name in paths}
    rss = {}
    for name, (_, run) in paths.items():  # warm-up: tracing, oneDNN primitive caches, first allocations
        run()
        timers[name] = step_timer()
        rss[name] = rss_mib()
    rates = {name: [] for name in paths}
    for round_number in range(1, args.rounds + 1):
        for name, (_, run) in paths.items():
            cpu_started = time.process_time()
            run()
            cpu_seconds[name] += time.process_time() - cpu_started
            rates[name].append(samples / timers[name].epochs[-1])
        print(f"round {round_number}: A {rates['A'][-1]:6.0f}, B {rates['B'][-1]:6.0f} samples/s, "
              f"ratio {rates['B'][-1] / rates['A'][-1]:.2f}  (load average {os.getloadavg()[0]:.1f})", flush=True)
    # Other jobs on a shared machine only ever slow a step down: the fast steps (10th percentile of
    # step times) estimate what each way does on an idle machine; the round medians are what it got.
    quick = {name: args.batch_size / float(np.percentile(timers[name].steps, 10)) for name in paths}
    # CPU time (all threads) per sample: the work each way does, whatever else runs on the machine.
    cpu_ms = {name: 1000 * cpu_seconds[name] / (samples * args.rounds) for name in paths}
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print()
    for name, (label, _) in paths.items():
        print(f"{name} {label:32s} {medians[name]:6.0f} samples/s median of rounds "
              f"({min(rates[name]):.0f}-{max(rates[name]):.0f}), {quick[name]:6.0f} from the fast steps, "
              f"{cpu_ms[name]:.2f} CPU-ms per sample; {EPOCH_GRIDS / medians[name]:5.1f} s per "
              f"{EPOCH_GRIDS}-grid epoch; RSS after warm-up {rss[name]:.0f} MiB")
    print(f"ratio B/A: {medians['B'] / medians['A']:.2f}x on the round medians "
          f"(median of per-round ratios {statistics.median(b / a for a, b in zip(rates['A'], rates['B'])):.2f}x), "
          f"{quick['B'] / quick['A']:.2f}x on the fast steps, "
          f"{cpu_ms['A'] / cpu_ms['B']:.2f}x less CPU time per sample")
    print(f"peak RSS of the process: {peak_rss_mib():.0f} MiB (before the models: {baseline_rss:.0f} MiB)")


def accuracy(args) -> None:
    """Both ways train `args.accuracy` epochs on the same data from the same seed; test accuracy of each."""
    params = {**REFERENCE, "batch_size": args.batch_size, "epochs": args.accuracy}
    path = args.data or DEFAULT_DATA
    if not path.exists():
        sys.exit(f"--accuracy needs prepared data: {path} is missing (run the workflow's prepare_data first)")
    with np.load(path) as arrays:
        data = {name: arrays[name] for name in ("x_train", "y_train", "x_test", "y_test")}
    pipeline.configure_tensorflow(args.threads, params["seed"])
    steps = -(-len(data["y_train"]) // args.batch_size)
    test = pipeline.make_dataset(data["x_test"], data["y_test"], 512, shuffle=False, seed=params["seed"])
    for name in ("seed", "workflow"):
        started = time.perf_counter()
        if name == "seed":
            model = seed_model(params)
            history = model.fit(data["x_train"], data["y_train"], batch_size=args.batch_size,
                                epochs=args.accuracy, verbose=0)
        else:
            model = workflow_model(params, steps)
            train = pipeline.make_dataset(data["x_train"], data["y_train"], args.batch_size, shuffle=True,
                                          seed=params["seed"])
            history = model.fit(train, epochs=args.accuracy, verbose=0)
        seconds = time.perf_counter() - started
        loss, acc = model.evaluate(test, verbose=0)
        training = ", ".join(f"{value:.3f}" for value in history.history["accuracy"])
        rate = len(data["y_train"]) * args.accuracy / seconds
        print(f"{name:9s} {args.accuracy} epochs in {seconds:6.1f} s ({rate:.0f} samples/s): training accuracy by "
              f"epoch {training}; test accuracy {acc:.4f}, test loss {loss:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="training steps per measurement (default 50)")
    parser.add_argument("--rounds", type=int, default=6, help="A B rounds after the warm-up (default 6)")
    parser.add_argument("--batch-size", type=int, default=REFERENCE["batch_size"])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TensorFlow threads (default: all CPUs)")
    parser.add_argument("--data", type=Path, help=f"a prepared.npz (default {DEFAULT_DATA.relative_to(REPO)})")
    parser.add_argument("--accuracy", type=int, metavar="EPOCHS",
                        help="instead of timing, train both ways EPOCHS epochs on the prepared data; test accuracy")
    args = parser.parse_args()
    accuracy(args) if args.accuracy else speed(args)


if __name__ == "__main__":
    main()
