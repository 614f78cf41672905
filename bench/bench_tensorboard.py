"""What a run's TensorBoard event file costs, against a tiny run's training time.

Trains one tiny run in this process (the test suite's smallest network, tests/conftest.py's TINY_DEFAULTS,
on random grids as many as the tiny test config's: 240 training, 60 validation, 50 test), then times:
  - writing its event file from its metrics.json and history.csv (mnist3d.results.tensorboard), the
    median of --repeats writes: this is all the tensorboard job does after its imports;
  - importing the module in a fresh Python (the job's own import cost), median of 3.
Prints each as a share of the run's training time, the sum of its history's per-epoch seconds.
Training itself is untouched by the event files, so it pays nothing inside `fit`.

  python3 bench/bench_tensorboard.py              # one epoch, as the tiny test runs
  python3 bench/bench_tensorboard.py --epochs 4 --repeats 50
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mnist3d.config.runs import OPTIONAL_DEFAULTS  # noqa: E402
from mnist3d.data import prepare  # noqa: E402
from mnist3d.results import runfiles  # noqa: E402
from mnist3d.results.tensorboard import write_run_events  # noqa: E402

TINY = {"filters": [4], "kernel_sizes": [3], "pool_sizes": [4], "dense": 16, "dropout": 0.2,
        "learning_rate": 0.003, "batch_size": 32, "seed": 1, **OPTIONAL_DEFAULTS}
SPLITS = {"train": 240, "val": 60, "test": 50}
IMPORT = ("import sys, time; sys.path.insert(0, sys.argv[1]); started = time.perf_counter(); "
          "import mnist3d.results.tensorboard; print(time.perf_counter() - started)")


def train_tiny(directory: Path, epochs: int) -> Path:
    from mnist3d.training.train import Run, RunPaths, TrainingEnvironment, train_run

    rng = np.random.default_rng(0)
    arrays = {"test_rotated": np.zeros(SPLITS["test"], dtype=np.int8), "source": np.array("generated")}
    for split, count in SPLITS.items():
        arrays[f"x_{split}"] = rng.random((count, 16, 16, 16, 1), dtype=np.float32)
        arrays[f"y_{split}"] = np.arange(count, dtype=np.int64) % 10
    prepare.save(directory / "prepared.npz", arrays)
    run_dir = directory / "runs" / "tiny" / "rep1"
    paths = RunPaths.in_directory(directory / "prepared.npz", run_dir, checkpoint_dir=directory / "checkpoint")
    environment = TrainingEnvironment(threads=2, training_code="bench", record_failure=False)
    train_run(Run("tiny", 1, {**TINY, "epochs": epochs}), paths, environment, log=lambda _: None)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        run_dir = train_tiny(scratch, options.epochs)
        training = float(np.sum(runfiles.read_history(run_dir / "history.csv")["seconds"]))
        writes = []
        for index in range(options.repeats):
            started = time.perf_counter()
            write_run_events(scratch / "tensorboard" / str(index), run_dir / "metrics.json", run_dir / "history.csv")
            writes.append(time.perf_counter() - started)
    imports = [float(subprocess.run([sys.executable, "-c", IMPORT, str(REPO / "scripts")], capture_output=True,
                                    text=True, check=True).stdout) for _ in range(3)]
    write, load = statistics.median(writes), statistics.median(imports)
    print(f"tiny run: {options.epochs} epoch(s), training {training:.3f} s (history seconds)")
    print(f"event file write: {write * 1e3:.2f} ms = {write / training:.3%} of training")
    print(f"module import (fresh process): {load * 1e3:.0f} ms = {load / training:.1%} of training")
    print(f"write + import: {(write + load) / training:.1%} of training")


if __name__ == "__main__":
    main()
