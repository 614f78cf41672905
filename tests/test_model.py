"""The network: architecture checks without TensorFlow, today's network at the default levers, and both
implementations computing the same, for every design (the levers' own networks: test_architectures.py)."""

import json
import os
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
# Every lever away from its default, among them; over ODD's odd edges where the grid allows.
DESIGNS = {
    "seed": SEED,
    "odd": ODD,
    "vgg-residual-strided": {
        **ODD,
        "convs_per_block": 2,
        "residual": True,
        "pooling": "strided",
        "activation": "gelu",
        "head": "global_average",
        "dense": [6, 5],
        "dropout": 0.3,
    },
    "plain-average-no-bn": {
        "filters": [3, 4],
        "kernel_sizes": [3, 2],
        "pool_sizes": [2, 3],
        "convs_per_block": 3,
        "batch_norm": False,
        "pooling": "average",
        "activation": "elu",
        "dense": [],
        "dropout": 0.2,
    },
    # Block 2 keeps the width: an identity skip; block 1 projects 1 -> 4 channels.
    "residual-identity": {
        "filters": [4, 4],
        "kernel_sizes": [3, 3],
        "pool_sizes": [2, 4],
        "residual": True,
        "activation": "leaky_relu",
        "dense": [5],
        "dropout": 0.1,
    },
    "residual-no-bn-silu": {
        "filters": [2, 3],
        "kernel_sizes": [3, 3],
        "pool_sizes": [4, 1],
        "residual": True,
        "convs_per_block": 2,
        "batch_norm": False,
        "pooling": "average",
        "activation": "silu",
        "head": "global_average",
        "dense": 4,
        "dropout": 0.0,
    },
}


def todays_network(params, implementation):
    """build_model as it was before the levers, frozen: the network every existing run trained."""
    import keras

    from mnist3d.training.layers import FastConv3D, FusedBatchNormalization

    # FastConv3D came with the levers: Conv3D, the same weights and forward pass, its weight gradient
    # taken another way where oneDNN runs at AVX2 (elsewhere the stock call, bit for bit).
    norm = FusedBatchNormalization if implementation == "fast" else keras.layers.BatchNormalization
    conv = FastConv3D if implementation == "fast" else keras.layers.Conv3D
    inputs = keras.Input(shape=(16, 16, 16, 1), name="grid")
    x = inputs
    blocks = zip(params["filters"], params["kernel_sizes"], params["pool_sizes"])
    for block, (filters, kernel_size, pool_size) in enumerate(blocks, start=1):
        x = conv(
            filters, kernel_size, activation="relu", padding="same", dtype="float32", name=f"conv{block}"
        )(x)
        x = norm(dtype="float32", name=f"batchnorm{block}")(x)
        x = keras.layers.MaxPooling3D(pool_size, padding="same", dtype="float32", name=f"maxpool{block}")(x)
    x = keras.layers.Flatten(dtype="float32", name="flatten")(x)
    x = keras.layers.Dense(params["dense"], activation="relu", dtype="float32", name="dense")(x)
    x = keras.layers.Dropout(params["dropout"], dtype="float32", name="dropout")(x)
    outputs = keras.layers.Dense(10, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"cnn3d_{implementation}")


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


@pytest.mark.parametrize("implementation", ["keras", "fast"])
@pytest.mark.parametrize(
    "params",
    [
        SEED,
        ODD,
        {
            **ODD,
            "convs_per_block": 1,
            "activation": "relu",
            "batch_norm": True,
            "pooling": "max",
            "residual": False,
            "head": "flatten",
        },
    ],
    ids=["seed", "odd", "odd-levers-spelled-out"],
)
def test_default_levers_build_todays_network(params, implementation, keras):
    """Same layers, configuration, order and seeded initial weights: today's runs train to the same numbers."""
    keras.utils.set_random_seed(11)
    today = todays_network(params, implementation)
    keras.utils.set_random_seed(11)
    network = model_lib.build_model(params, implementation)
    assert [layer.get_config() for layer in network.layers] == [layer.get_config() for layer in today.layers]
    assert [type(layer) for layer in network.layers] == [type(layer) for layer in today.layers]
    assert network.name == today.name
    for got, want in zip(network.get_weights(), today.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # A dropout layer that drops draws its seed in the same order too.
    seeds = [
        [layer.seed_generator.state.numpy().tolist() for layer in model.layers if hasattr(layer, "seed_generator")]
        for model in (network, today)
    ]
    assert seeds[0] == seeds[1] and len(seeds[0]) == (params["dropout"] > 0)


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


@pytest.mark.parametrize("params", DESIGNS.values(), ids=DESIGNS.keys())
def test_both_implementations_compute_the_same(params, keras):
    import tensorflow as tf

    reference, fast = twins(params, keras)
    assert reference.count_params() == fast.count_params()
    assert [layer.name for layer in reference.layers] == [layer.name for layer in fast.layers]
    # The fused batch norm wherever there is batch norm (projections and strided convolutions too).
    norms = {type(layer).__name__ for layer in fast.layers if "batchnorm" in layer.name}
    assert norms == ({"FusedBatchNormalization"} if params.get("batch_norm", True) else set())
    assert {type(layer).__name__ for layer in reference.layers if "batchnorm" in layer.name} <= {"BatchNormalization"}
    assert {type(layer).__name__ for layer in fast.layers if layer.name.startswith("conv")} == {"FastConv3D"}
    assert {type(layer).__name__ for layer in reference.layers if layer.name.startswith("conv")} == {"Conv3D"}
    x = tf.constant(grids(6))
    labels = tf.constant([0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(fast(x, training=False), reference(x, training=False), rtol=1e-4, atol=1e-6)
    # Training mode with dropout off on both sides: batch statistics and every weight's gradient.
    results = []
    for network in (reference, fast):
        for layer in network.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        with tf.GradientTape() as tape:
            probabilities = network(x, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
        results.append((probabilities, tape.gradient(loss, network.trainable_variables), network.non_trainable_weights))
    (p_ref, g_ref, s_ref), (p_fast, g_fast, s_fast) = results
    # Batch statistics in float32, two ways: normalising a 1x1x1 projection of the sparse grid (small
    # variance) moves them apart by about 1e-4, both as far from the float64 result.
    np.testing.assert_allclose(p_fast, p_ref, rtol=1e-3, atol=1e-6)
    # A gradient that batch norm all but cancels (a bias or shift the next norm subtracts again, a
    # kernel it makes scale-free, e.g. a 1x1x1 projection of the one-channel grid) is rounding residue
    # of the float32 batch statistics: each is measured at a tenth of the largest gradient at least.
    largest = max(float(tf.reduce_max(tf.abs(want))) for want in g_ref)
    for variable, got, want in zip(reference.trainable_variables, g_fast, g_ref):
        scale = max(float(tf.reduce_max(tf.abs(want))), 0.1 * largest)
        np.testing.assert_allclose(got / scale, want / scale, atol=5e-3, err_msg=variable.path)
    for got, want in zip(s_fast, s_ref):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_fast_model_saves_and_loads(keras, tmp_path):
    _, fast = twins(ODD, keras)
    path = tmp_path / "model.keras"
    fast.save(path)
    loaded = model_lib.load_model(path)
    assert type(loaded.get_layer("batchnorm1")).__name__ == "FusedBatchNormalization"
    assert type(loaded.get_layer("conv1")).__name__ == "FastConv3D"
    x = grids(4)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), fast.predict(x, verbose=0))


@pytest.mark.parametrize("params", DESIGNS.values(), ids=DESIGNS.keys())
def test_stock_copy_holds_the_weights_in_stock_layers(params, keras, tmp_path):
    reference, fast = twins(params, keras)
    stock = model_lib.stock_copy(fast, params)
    assert {type(layer).__module__.split(".")[0] for layer in stock.layers} == {"keras"}
    for got, want in zip(stock.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    path = tmp_path / "stock.keras"
    stock.save(path)
    x = grids(4)
    # Plain Keras loads it (no registration of this project's layers needed) to the same function.
    np.testing.assert_array_equal(keras.saving.load_model(path).predict(x, verbose=0), reference.predict(x, verbose=0))


def gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def test_mixed_precision_without_a_gpu_is_an_error(keras):
    if gpus():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="mixed_precision needs a GPU"):
        model_lib.build_model({**ODD, "mixed_precision": True}, "fast")


def test_mixed_precision_computes_in_float16_and_classifies_in_float32(keras, monkeypatch):
    if not gpus():  # a CPU has no float16 MaxPool3D kernel: build the network, do not run it
        monkeypatch.setattr(model_lib, "_policy", lambda keras, params: "mixed_float16")
    network = model_lib.build_model({**ODD, "mixed_precision": True}, "fast")
    assert network.get_layer("conv1").compute_dtype == "float16"
    assert network.get_layer("conv1").kernel.dtype == "float32"
    assert network.get_layer("classifier").compute_dtype == "float32"
    assert network.outputs[0].dtype == "float32"
    if gpus():
        assert network(grids(2), training=True).dtype == "float32"


# What a user does with model.keras: plain Keras in a fresh process, this project not importable.
FRESH_PROCESS = """
import json, sys
import keras, numpy
with numpy.load(sys.argv[2]) as data:
    grids = data["grids"]
for path in json.loads(sys.argv[1]):
    with numpy.load(path + ".npz") as recorded:
        expected = recorded["probabilities"]
    predicted = keras.saving.load_model(path + ".keras").predict(grids, batch_size=8, verbose=0)
    assert (predicted == expected).all(), (path, abs(predicted - expected).max())
assert not [name for name in sys.modules if name.startswith("mnist3d")]
print("reproduced", len(json.loads(sys.argv[1])))
"""


def test_plain_keras_in_a_fresh_process_reproduces_every_design(keras, tmp_path):
    """Each design as train.py saves it (the stock copy of the trained fast network) predicts, loaded by
    plain Keras elsewhere, exactly the probabilities recorded here."""
    x = grids(8, seed=2)
    np.savez(tmp_path / "grids.npz", grids=x)
    paths = []
    for name, params in DESIGNS.items():
        _, fast = twins(params, keras)
        stock = model_lib.stock_copy(fast, params)
        stock.save(tmp_path / f"{name}.keras")
        np.savez(tmp_path / f"{name}.npz", probabilities=stock.predict(x, batch_size=8, verbose=0))
        paths.append(str(tmp_path / name))
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    # The same kernels as this process: on AVX2-only CPUs oneDNN is off by default, and an earlier
    # test may have set TF_ENABLE_ONEDNN_OPTS after TensorFlow was imported here with another value.
    from tensorflow.python.util import _pywrap_util_port

    onednn = "1" if _pywrap_util_port.IsMklEnabled() else "0"
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, json.dumps(paths), str(tmp_path / "grids.npz")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**environment, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": onednn},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"reproduced {len(DESIGNS)}" in result.stdout
