"""Cost of on-the-fly rotation augmentation against one training step of the seed's network.

    python3 bench/bench_augmentation.py     # a few seconds; prints ms per batch of 64 and the share

The augmentation runs in the tf.data pipeline, beside training on the same cores, so its cost per
batch should stay a small fraction of a training step. See bench/README.md.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from bench_training import REFERENCE, seed_model  # noqa: E402  (the seed notebook's network)

from mnist3d.training import augment, pipeline  # noqa: E402


def seconds_per_call(step, repeats: int = 10) -> float:
    step()  # tracing and first allocations
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    pipeline.configure_tensorflow(os.cpu_count() or 1, seed=0)
    import tensorflow as tf

    batch = np.random.default_rng(0).random((64, 16, 16, 16, 1), dtype=np.float32)
    labels = np.zeros(64, dtype=np.int64)
    rotate = tf.function(augment.random_rotation(90.0, seed=0))
    model = seed_model(REFERENCE)

    augmenting = seconds_per_call(lambda: rotate(batch, labels)[0].numpy())
    training = seconds_per_call(lambda: model.train_on_batch(batch, labels))
    print(f"augmentation {augmenting * 1000:.1f} ms per batch of 64, training step {training * 1000:.1f} ms "
          f"({augmenting / training:.0%} of a step)")


if __name__ == "__main__":
    main()
