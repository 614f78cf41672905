"""TensorFlow set-up and the tf.data input pipeline for training and evaluation.

TensorFlow is imported inside the functions: this module is importable where only NumPy is.
"""

from __future__ import annotations

import os


def configure_tensorflow(threads: int, seed: int) -> dict:
    """Thread pools, oneDNN and reproducibility; call before TensorFlow runs its first op.

    - oneDNN kernels stay on (TF_ENABLE_ONEDNN_OPTS=1, read when TensorFlow is imported): without
      them the 3D convolutions ran 3-4x slower on these CPUs.
    - `threads` threads in both pools: one op's work split over them (intra-op) and as many
      independent ops at once (inter-op), TensorFlow's own choice when `threads` is the core count.
      Give a job no more threads than the cores it may use: on a busy machine, an op split over more
      threads than it gets cores waits for the slowest (bench/README.md).
    - Keras' seeds (Python, NumPy, TensorFlow) and deterministic TensorFlow ops, so the same seed
      gives the same numbers on a CPU.

    Thread pools can be set only once per process; later calls keep the first values. With another
    Keras backend (JAX on the GPU machines) only the seeds are set. Returns the settings in force.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import keras

    if keras.backend.backend() != "tensorflow":
        keras.utils.set_random_seed(seed)
        return {"backend": keras.backend.backend(), "seed": seed}
    import tensorflow as tf

    threads = max(1, int(threads))
    for setter, value in (
        (tf.config.threading.set_intra_op_parallelism_threads, threads),
        (tf.config.threading.set_inter_op_parallelism_threads, threads),
    ):
        try:
            setter(value)
        except RuntimeError:
            pass  # the runtime already started in this process; its pools stay as they are
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return {
        "backend": "tensorflow",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ["TF_ENABLE_ONEDNN_OPTS"],
        "seed": seed,
    }


def make_dataset(x, y, batch_size: int, shuffle: bool, seed: int, augment=None):
    """Batches of (x, y) as a tf.data.Dataset, built once and iterated once per epoch.

    The arrays become tensors once; each batch is one gather of shuffled indices, so no epoch copies
    or reshuffles the arrays in NumPy. With `shuffle`, every epoch (every new iterator) sees a new
    order, the same sequence of orders for the same `seed`. The last batch may be smaller, as in
    `model.fit` on arrays. `augment`, a function (x_batch, y_batch) -> (x_batch, y_batch), runs on
    every batch in order (it may keep a batch counter for its random draws). Batches are prefetched
    so the next one is ready while the model trains on this one.
    """
    import tensorflow as tf

    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    features = tf.convert_to_tensor(x, dtype=tf.float32)
    labels = tf.convert_to_tensor(y)
    count = len(y)
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size).map(
        lambda batch: (tf.gather(features, batch), tf.gather(labels, batch))
    )
    if augment is not None:
        dataset = dataset.map(augment)
    return dataset.prefetch(tf.data.AUTOTUNE)
