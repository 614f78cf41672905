"""The network: architecture checks without TensorFlow, and both implementations computing the same."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnist3d.training import model as model_lib

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SEED = {"filters": [16, 32, 64], "kernel_sizes": [3, 3, 3], "pool_sizes": [2, 2, 2], "dense": 256, "dropout": 0.5}
# Odd kernels, pools 1, 2 and 3 with 'same' padding over odd edges (16 -> 16 -> 8 -> 3 -> 2).
ODD = {"filters": [3, 5, 4, 2], "kernel_sizes": [3, 2, 5, 1], "pool_sizes": [1, 2, 3, 2], "dense": 7, "dropout": 0.0}


def test_check_architecture_gives_the_edge_after_each_block():
    assert model_lib.check_architecture(SEED) == [8, 4, 2]
    assert model_lib.check_architecture(ODD) == [16, 8, 3, 2]
    assert model_lib.check_architecture({**SEED, "pool_sizes": [16, 1, 1]}) == [1, 1, 1]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"pool_sizes": [4, 4, 2]}, "pool_sizes"),
        ({"pool_sizes": [17]}, "pool_sizes"),
        ({"filters": [16, 32]}, "filters"),
        ({"kernel_sizes": [3, 3, 3, 3]}, "kernel_sizes"),
    ],
)
def test_check_architecture_names_the_field(change, field):
    with pytest.raises(ValueError, match=field) as error:
        model_lib.check_architecture({**SEED, **change})
    assert error.value.field == field


def test_check_architecture_does_not_import_tensorflow():
    code = (
        f"import sys; sys.path.insert(0, {str(SCRIPTS)!r}); from mnist3d.training import model; "
        f"model.check_architecture({SEED!r}); assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_implementation_is_refused():
    with pytest.raises(ValueError, match="implementation"):
        model_lib.build_model(SEED, "fastest")


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def twins(params, keras):
    """The Keras and the fast model with the same weights."""
    keras.utils.set_random_seed(3)
    reference = model_lib.build_model(params, "keras")
    fast = model_lib.build_model(params, "fast")
    rng = np.random.default_rng(1)
    for layer in reference.layers:
        if "batchnorm" in layer.name:  # not the identity: random scale, shift and moving statistics
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.3, channels),
                               rng.normal(0, 0.3, channels), rng.uniform(0.5, 2.0, channels)])
    weights = reference.get_weights()
    reference.set_weights(weights)
    fast.set_weights(weights)
    return reference, fast


def grids(count, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((count, 16, 16, 16, 1)) * (rng.random((count, 16, 16, 16, 1)) < 0.2)).astype(np.float32)


@pytest.mark.parametrize("params", [SEED, ODD], ids=["seed", "odd"])
def test_both_implementations_compute_the_same(params, keras):
    import tensorflow as tf

    reference, fast = twins(params, keras)
    assert reference.count_params() == fast.count_params()
    assert [layer.name for layer in reference.layers] == [layer.name for layer in fast.layers]
    assert [type(layer).__name__ for layer in fast.layers if "batchnorm" in layer.name][0] == "FusedBatchNormalization"
    x = tf.constant(grids(6))
    labels = tf.constant([0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(fast(x, training=False), reference(x, training=False), rtol=1e-4, atol=1e-6)
    # Training mode with dropout off on both sides: batch statistics and every weight's gradient.
    results = []
    for network in (reference, fast):
        network.get_layer("dropout").rate = 0.0
        with tf.GradientTape() as tape:
            probabilities = network(x, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
        results.append((probabilities, tape.gradient(loss, network.trainable_variables), network.non_trainable_weights))
    (p_ref, g_ref, s_ref), (p_fast, g_fast, s_fast) = results
    np.testing.assert_allclose(p_fast, p_ref, rtol=1e-4, atol=1e-6)
    for variable, got, want in zip(reference.trainable_variables, g_fast, g_ref):
        scale = float(tf.reduce_max(tf.abs(want))) + 1e-8
        np.testing.assert_allclose(got / scale, want / scale, atol=1e-3, err_msg=variable.path)
    for got, want in zip(s_fast, s_ref):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_fast_model_saves_and_loads(keras, tmp_path):
    _, fast = twins(ODD, keras)
    path = tmp_path / "model.keras"
    fast.save(path)
    loaded = model_lib.load_model(path)
    assert type(loaded.get_layer("batchnorm1")).__name__ == "FusedBatchNormalization"
    x = grids(4)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), fast.predict(x, verbose=0))


def test_stock_copy_holds_the_weights_in_stock_layers(keras, tmp_path):
    reference, fast = twins(ODD, keras)
    stock = model_lib.stock_copy(fast, ODD)
    assert {type(layer).__module__.split(".")[0] for layer in stock.layers} == {"keras"}
    for got, want in zip(stock.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    path = tmp_path / "stock.keras"
    stock.save(path)
    x = grids(4)
    # Plain Keras loads it (no registration of this project's layers needed) to the same function.
    np.testing.assert_array_equal(keras.saving.load_model(path).predict(x, verbose=0), reference.predict(x, verbose=0))


def test_mixed_precision_keeps_the_classifier_in_float32(keras):
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ValueError, match="mixed_precision needs a GPU"):
            model_lib.build_model({**ODD, "mixed_precision": True}, "fast")
        return
    network = model_lib.build_model({**ODD, "mixed_precision": True}, "fast")
    assert network.get_layer("conv1").compute_dtype == "float16"
    assert network.get_layer("conv1").kernel.dtype == "float32"
    assert network(grids(2), training=True).dtype == "float32"
