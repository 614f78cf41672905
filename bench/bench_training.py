"""Training throughput of the seed notebook's way against the workflow's, and of the notebook as written.

    python3 bench/bench_training.py                  # speed: A B A B ... and N once; samples/s, ratios
    python3 bench/bench_training.py --accuracy 3     # sanity: A and B train 3 epochs, test accuracy

A (seed, oneDNN on): keras.Sequential with the notebook's layers, compiled with Adam, `model.fit` on
float32 NumPy arrays.
B (workflow): mnist3d.training.model.build_model(params, "fast"), the workflow's compile, and
mnist3d.training.pipeline.make_dataset. Same network, data, batch size, optimizer and float32 as A. Both run in
this process after mnist3d.training.pipeline.configure_tensorflow (oneDNN on), as a training job does. Each
round trains A then B one epoch of the same number of steps, timed from epoch begin to end; the
ratio is of the median samples/s over the rounds.
N (notebook as written): its own subprocess with TensorFlow's defaults (TF_ENABLE_ONEDNN_OPTS unset:
TensorFlow reads it at import, and turns oneDNN on by default only on CPUs with AVX512_VNNI,
AVX512_BF16, AVX_VNNI or AMX), float64 arrays shaped N x 16 x 16 x 16 as the notebook reshapes
them, `model.fit(..., validation_data=...)` with a validation set a fifth of the training set's size
(the Kaggle set's 2000 test grids per 10000), default verbosity, no thread or seed settings. Its
samples/s are training grids per second of epoch, validation included, after a one-batch warm-up fit
(which traces the training and validation functions).
It runs once, between the middle rounds of A and B.
Data: results/data/prepared.npz when it exists (or --data), otherwise random grids (dense
convolutions cost the same on any values). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
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

from mnist3d.config.runs import OPTIONAL_DEFAULTS  # noqa: E402
from mnist3d.training import model as model_lib  # noqa: E402
from mnist3d.training import pipeline  # noqa: E402

# The seed's reference network, with the workflow's defaults for every other lever (all off).
REFERENCE = {
    **OPTIONAL_DEFAULTS, "filters": [16, 32, 64], "kernel_sizes": [3, 3, 3], "pool_sizes": [2, 2, 2],
    "dense": 256, "dropout": 0.5, "learning_rate": 0.001, "batch_size": 64, "epochs": 1, "seed": 1,
}
DEFAULT_DATA = REPO / "results" / "data" / "prepared.npz"
EPOCH_GRIDS = 8000  # training grids of the default generated data set
NOTEBOOK_RESULT = "NOTEBOOK_RESULT "  # the prefix of the child's one result line
VALIDATION_SHARE = 5  # the notebook validated on 2000 test grids per 10000 training grids


def instruction_set() -> str:
    """The widest x86 vector class the CPU reports in /proc/cpuinfo: "AMX", "AVX-512", "AVX2" or "older"."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return "unknown (no /proc/cpuinfo)"
    flags = set(flags)
    # TensorFlow turns oneDNN on by default when one of these is present (port.cc, IsMKLEnabled).
    onednn_default = sorted(flags & {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8"})
    if flags & {"amx_tile", "amx_bf16", "amx_int8"}:
        kind = "AMX"
    elif "avx512f" in flags:
        kind = "AVX-512"
    elif "avx2" in flags:
        kind = "AVX2"
    else:
        kind = "older than AVX2"
    default = f"oneDNN on by default ({', '.join(onednn_default)})" if onednn_default else "oneDNN off by default"
    return f"{kind}; {default}"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "?")
    except OSError:
        return "?"


def onednn_enabled() -> str:
    """Whether this process' TensorFlow runs its oneDNN kernels: "on", "off" or "unknown".

    TensorFlow decides once, at import, from TF_ENABLE_ONEDNN_OPTS and the CPU's features; the same
    function that decides (IsMklEnabled) is exposed, privately, in its Python bindings.
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return "unknown"
    return "on" if _pywrap_util_port.IsMklEnabled() else "off"


def seed_model(params: dict):
    """The notebook's create_model(), line by line."""
    from tensorflow.keras.layers import BatchNormalization, Conv3D, Dense, Dropout, Flatten, Input, MaxPooling3D
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
    from mnist3d.training import train

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


def notebook_child(args) -> None:
    """The notebook as written (its create_model and train_model), in this fresh process with
    TensorFlow's defaults; prints one NOTEBOOK_RESULT line of JSON."""
    samples = args.steps * args.batch_size
    x, y, source = load_data(args.data, samples, REFERENCE["seed"])
    x_val, y_val = x[: samples // VALIDATION_SHARE], y[: samples // VALIDATION_SHARE]
    path = args.data or (DEFAULT_DATA if DEFAULT_DATA.exists() else None)
    if path is not None:  # validate on test grids, as the notebook does
        with np.load(path) as arrays:
            x_val, y_val = arrays["x_test"][: len(x_val)], arrays["y_test"][: len(y_val)]
    # The notebook's arrays: float64 (h5py's dtype for the Kaggle vectors), reshaped to N x 16 x 16 x 16.
    X_train, X_test = x.astype(np.float64).reshape(-1, 16, 16, 16), x_val.astype(np.float64).reshape(-1, 16, 16, 16)
    import keras

    model = seed_model({**REFERENCE, "batch_size": args.batch_size})
    epochs = []

    class EpochTimer(keras.callbacks.Callback):  # epoch begin to end: training and validation
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epochs.append(time.perf_counter() - self.started)

    # Warm-up: one batch of training and of validation traces both functions, which later fit calls reuse.
    started = time.perf_counter()
    model.fit(X_train[: args.batch_size], y[: args.batch_size], epochs=1, batch_size=args.batch_size,
              validation_data=(X_test[: args.batch_size], y_val[: args.batch_size]), verbose=0)
    warmup = time.perf_counter() - started
    load = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(X_train, y, epochs=args.notebook_epochs, batch_size=args.batch_size,
              validation_data=(X_test, y_val), callbacks=[EpochTimer()])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    import tensorflow as tf

    rates = [samples / epoch for epoch in epochs]
    print(NOTEBOOK_RESULT + json.dumps({
        "samples_per_s": statistics.median(rates), "rates": rates, "warmup_s": warmup,
        "fit_s": seconds, "cpu_ms_per_sample": 1000 * cpu_seconds / (samples * args.notebook_epochs),
        "onednn": onednn_enabled(), "x_dtype": str(X_train.dtype), "x_shape": list(X_train.shape),
        "validation_grids": len(y_val), "source": source, "tensorflow": tf.__version__,
        "load_before": load, "load_after": os.getloadavg()[0],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }), flush=True)


def run_notebook(args) -> dict:
    """The notebook way in a subprocess with TensorFlow's default oneDNN setting (TF_ENABLE_ONEDNN_OPTS
    unset, whatever this process has)."""
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    command = [sys.executable, str(Path(__file__).resolve()), "--notebook-child", "--steps", str(args.notebook_steps),
               "--batch-size", str(args.batch_size), "--notebook-epochs", str(args.notebook_epochs)]
    if args.data:
        command += ["--data", str(args.data)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(NOTEBOOK_RESULT)]
    if done.returncode != 0 or not lines:
        sys.exit(f"the notebook way failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(NOTEBOOK_RESULT):])


def speed(args) -> None:
    params = {**REFERENCE, "batch_size": args.batch_size}
    samples = args.steps * args.batch_size
    x, y, source = load_data(args.data, samples, params["seed"])
    settings = pipeline.configure_tensorflow(args.threads, params["seed"])
    import tensorflow as tf

    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs; instruction set {instruction_set()}")
    print(f"data: {source}; {args.steps} steps x batch {args.batch_size} per measurement; "
          f"{args.rounds} rounds A B after a warm-up; TensorFlow {tf.__version__}; "
          f"load average {os.getloadavg()[0]:.1f}; oneDNN in this process (A, B): {onednn_enabled()}; {settings}")
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
    notebook = None
    for round_number in range(1, args.rounds + 1):
        if round_number == args.rounds // 2 + 1 and args.notebook_steps > 0:
            notebook = run_notebook(args)
            print(f"notebook as written (own process, oneDNN {notebook['onednn']}): "
                  f"{notebook['samples_per_s']:.0f} samples/s  (load average {notebook['load_before']:.1f}"
                  f"-{notebook['load_after']:.1f})", flush=True)
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
    if notebook is None:
        return
    print(f"N notebook as written             {notebook['samples_per_s']:6.0f} samples/s median of "
          f"{len(notebook['rates'])} epochs ({min(notebook['rates']):.0f}-{max(notebook['rates']):.0f}), "
          f"{args.notebook_steps} steps each + validation on {notebook['validation_grids']} grids; "
          f"{notebook['x_dtype']} {'x'.join(map(str, ['N'] + notebook['x_shape'][1:]))}; oneDNN {notebook['onednn']}; "
          f"{notebook['cpu_ms_per_sample']:.2f} CPU-ms per sample; "
          f"{EPOCH_GRIDS / notebook['samples_per_s']:5.1f} s per {EPOCH_GRIDS}-grid epoch")
    print(f"ratios ({instruction_set().split(';')[0]}, load average now {os.getloadavg()[0]:.1f}): "
          f"workflow vs notebook as written (B/N, oneDNN {onednn_enabled()} vs {notebook['onednn']}) "
          f"{medians['B'] / notebook['samples_per_s']:.2f}x samples/s, "
          f"{notebook['cpu_ms_per_sample'] / cpu_ms['B']:.2f}x less CPU time per sample; "
          f"workflow vs the notebook's network with oneDNN on (B/A, same process) {medians['B'] / medians['A']:.2f}x "
          f"samples/s, {cpu_ms['A'] / cpu_ms['B']:.2f}x less CPU time per sample")


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
    parser.add_argument("--rounds", type=int, default=4, help="A B rounds after the warm-up (default 4)")
    parser.add_argument("--notebook-steps", type=int, default=10,
                        help="training steps per epoch of the notebook way, 0 to skip it (default 10)")
    parser.add_argument("--notebook-epochs", type=int, default=2,
                        help="timed epochs of the notebook way, after a one-batch warm-up (default 2)")
    parser.add_argument("--notebook-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=REFERENCE["batch_size"])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="TensorFlow threads (default: all CPUs)")
    parser.add_argument("--data", type=Path, help=f"a prepared.npz (default {DEFAULT_DATA.relative_to(REPO)})")
    parser.add_argument("--accuracy", type=int, metavar="EPOCHS",
                        help="instead of timing, train both ways EPOCHS epochs on the prepared data; test accuracy")
    args = parser.parse_args()
    if args.notebook_child:
        notebook_child(args)
    else:
        accuracy(args) if args.accuracy else speed(args)


if __name__ == "__main__":
    main()
