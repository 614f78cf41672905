"""The input pipeline: every sample once per epoch, reproducible shuffles, augmentation on batches."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from mnist3d.training import pipeline  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def arrays(count=50):
    x = np.arange(count * 16**3, dtype=np.float32).reshape(count, 16, 16, 16, 1)
    return x, np.arange(count, dtype=np.int64)


def epochs(dataset, count):
    """The label order of `count` epochs, and the batch sizes of the first, checking x matches y."""
    orders, sizes = [], []
    for _ in range(count):
        order = []
        for x, y in dataset:
            assert x.shape[1:] == (16, 16, 16, 1) and x.dtype == tf.float32
            np.testing.assert_array_equal(x.numpy()[:, 0, 0, 0, 0], y.numpy() * 16**3)
            order.extend(y.numpy().tolist())
            sizes.append(len(y))
        orders.append(order)
    return orders, sizes[: len(sizes) // count]


def test_shuffled_epochs_see_every_sample_once_in_new_orders():
    x, y = arrays()
    orders, sizes = epochs(pipeline.make_dataset(x, y, 16, shuffle=True, seed=1), 3)
    assert sizes == [16, 16, 16, 2]
    for order in orders:
        assert sorted(order) == list(range(50))
    assert len({tuple(order) for order in orders}) == 3 and orders[0] != list(range(50))


def test_same_seed_same_orders_other_seed_other_orders():
    x, y = arrays()
    first, _ = epochs(pipeline.make_dataset(x, y, 16, shuffle=True, seed=1), 2)
    again, _ = epochs(pipeline.make_dataset(x, y, 16, shuffle=True, seed=1), 2)
    other, _ = epochs(pipeline.make_dataset(x, y, 16, shuffle=True, seed=2), 2)
    assert first == again
    assert first != other


def test_without_shuffle_the_order_is_kept():
    x, y = arrays(10)
    orders, sizes = epochs(pipeline.make_dataset(x, y, 4, shuffle=False, seed=1), 2)
    assert orders == [list(range(10))] * 2 and sizes == [4, 4, 2]


def test_augment_runs_on_batches_in_order():
    x, y = arrays(10)
    seen = []

    def augment(batch_x, batch_y):
        seen.append(batch_x.shape[0])  # traced once: the function is graph code on whole batches
        return batch_x + 1.0, batch_y

    dataset = pipeline.make_dataset(x, y, 4, shuffle=False, seed=1, augment=augment)
    batch_x, batch_y = next(iter(dataset))
    np.testing.assert_array_equal(batch_x.numpy(), x[:4] + 1.0)
    np.testing.assert_array_equal(batch_y.numpy(), y[:4])
    assert len(seen) == 1


def test_mismatched_arrays_are_refused():
    x, y = arrays(10)
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        pipeline.make_dataset(x, y[:9], 4, shuffle=False, seed=1)
    with pytest.raises(ValueError, match="batch_size"):
        pipeline.make_dataset(x, y, 0, shuffle=False, seed=1)


def test_configure_tensorflow_sets_threads_and_seeds():
    # A fresh process: thread pools can only be set before TensorFlow's runtime starts.
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); from mnist3d.training import pipeline; "
        "s = pipeline.configure_tensorflow(threads=3, seed=4); print(s['intra_op_threads'], s['inter_op_threads'], "
        "s['onednn']); import tensorflow as tf; print(tf.random.uniform([2]).numpy().tolist()); "
        "pipeline.configure_tensorflow(threads=1, seed=4); print(tf.random.uniform([2]).numpy().tolist()); "
        "print(tf.config.threading.get_intra_op_parallelism_threads())"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    settings, first_draw, second_draw, threads_after = result.stdout.splitlines()
    assert settings == "3 3 1"
    assert first_draw == second_draw  # same seed, same random numbers
    assert threads_after == "3"  # the pools keep their first size; a second call does not fail


def test_fast_training_is_deterministic():
    """Same seed, same numbers: the fused kernels, pooling and the pipeline are deterministic on CPUs."""
    keras = pytest.importorskip("keras")
    from mnist3d.training import model as model_lib

    params = {"filters": [4, 8], "kernel_sizes": [3, 3], "pool_sizes": [2, 2], "dense": 16, "dropout": 0.5}
    rng = np.random.default_rng(0)
    x = rng.random((48, 16, 16, 16, 1), dtype=np.float32)
    y = rng.integers(0, 10, 48)

    def train():
        pipeline.configure_tensorflow(threads=2, seed=11)
        network = model_lib.build_model(params, "fast")
        network.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        dataset = pipeline.make_dataset(x, y, 16, shuffle=True, seed=11)
        history = network.fit(dataset, epochs=2, verbose=0, shuffle=False)  # the dataset shuffles
        return history.history["loss"], network.get_weights()

    (loss_a, weights_a), (loss_b, weights_b) = train(), train()
    assert loss_a == loss_b
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)


def test_training_stream_is_a_pure_function_of_seed_and_epoch():
    x, y = arrays(10)
    steps = pipeline.steps_per_epoch(10, 4)

    def stream(seed, first_epoch, epochs=3):
        dataset = pipeline.make_training_dataset(x, y, 4, seed=seed, first_epoch=first_epoch, epochs=epochs)
        batches = [batch_y.numpy().tolist() for _, batch_y in dataset]
        assert len(batches) == steps * (epochs - first_epoch)
        return [sum(batches[i:i + steps], []) for i in range(0, len(batches), steps)]

    whole = stream(1, 0)
    assert all(sorted(order) == list(range(10)) for order in whole)  # every sample once per epoch
    assert len({tuple(order) for order in whole}) == 3  # a new order each epoch
    assert stream(1, 2) == whole[2:] and stream(1, 1) == whole[1:]  # a resumed stream goes on alike
    assert stream(2, 0) != whole
