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

    features, labels = _tensors(x, y, batch_size)
    count = len(y)
    indices = tf.data.Dataset.range(count)
    if shuffle:
        indices = indices.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = indices.batch(batch_size).map(
        lambda batch: (tf.gather(features, batch), tf.gather(labels, batch))
    )
    if augment is not None:
        dataset = dataset.map(augment)
    return _prefetched(dataset)


def _tensors(x, y, batch_size: int):
    """x and y as tensors, once, after checking that they can be batched together."""
    import tensorflow as tf

    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    return tf.convert_to_tensor(x, dtype=tf.float32), tf.convert_to_tensor(y)


def steps_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def make_training_dataset(x, y, batch_size: int, seed: int, first_epoch: int, epochs: int, augment=None):
    """The shuffled (and augmented) training batches of epochs first_epoch .. epochs - 1, one stream.

    Every epoch's order is a stateless permutation keyed on (seed, epoch), and `augment(x, y, step)`
    gets the batch's number over the whole run (epoch x batches per epoch + batch), so each batch is
    a pure function of (seed, epoch, batch): a run resumed at epoch K sees exactly the batches an
    uninterrupted run sees from epoch K on. Fit it with `steps_per_epoch` and `initial_epoch`: Keras
    then keeps one iterator over the stream instead of starting it again each epoch.
    """
    import tensorflow as tf

    features, labels = _tensors(x, y, batch_size)
    count = len(y)
    steps = steps_per_epoch(count, batch_size)

    def epoch_batches(epoch):
        key = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.argsort(tf.random.stateless_uniform([count], seed=key), stable=True)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(lambda index, batch: (epoch * steps + index, batch))

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_batches)
    dataset = dataset.map(lambda step, batch: (step, tf.gather(features, batch), tf.gather(labels, batch)))
    if augment is not None:
        dataset = dataset.map(lambda step, batch_x, batch_y: augment(batch_x, batch_y, step=step))
    else:
        dataset = dataset.map(lambda step, batch_x, batch_y: (batch_x, batch_y))
    return _prefetched(dataset)


def _prefetched(dataset):
    """The next two batches made while the model trains on this one, without tf.data's autotuning.

    Autotuning's background thread was seen to hold up the end of `fit` for 15-55 s while the
    iterator was destroyed (bench/README.md, "Per-run overhead"). The batches are made in order by
    sequential maps, so a fixed prefetch of two does as well as a tuned one.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)
