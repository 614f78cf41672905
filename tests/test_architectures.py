"""The network levers, each by the network it builds: layers, shapes, parameter counts and what they compute.

Both implementations and plain-Keras reloading over the same designs: test_model.py.
"""

import math
import textwrap

import numpy as np
import pytest
from conftest import REPO

from mnist3d.config.levers import LEVER_DEFAULTS, WARMUP_SCHEDULES
from mnist3d.config.runs import RunConfigError, load_runs
from mnist3d.config.yamlfile import read_yaml
from mnist3d.training import model as model_lib

keras = pytest.importorskip("keras")

SCHEMAS = REPO / "config" / "schemas"
RUN_SCHEMA = read_yaml(SCHEMAS / "run.schema.yaml")["properties"]
# Two blocks, 16 -> 8 -> 4: 4^3 x 3 = 192 features after Flatten.
BASE = {"filters": [2, 3], "kernel_sizes": [3, 3], "pool_sizes": [2, 2], "dense": 4, "dropout": 0.0}
FEATURES = 4**3 * 3
# The activations as their papers define them (leaky_relu: Keras' slope of 0.2 below zero).
ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "gelu": lambda z: 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2))),
    "silu": lambda z: z / (1 + np.exp(-z)),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.2 * z),
}


def build(implementation="keras", **levers):
    keras.utils.set_random_seed(0)
    return model_lib.build_model({**BASE, **levers}, implementation)


def names(network, kind=None):
    return [layer.name for layer in network.layers if kind is None or type(layer).__name__ == kind]


def conv_params(kernel, inputs, outputs, bias=True):
    return kernel**3 * inputs * outputs + (outputs if bias else 0)


def dense_params(inputs, outputs):
    return inputs * outputs + outputs


def outputs_of(network, *layer_names):
    return keras.Model(network.input, [network.get_layer(name).output for name in layer_names])


def grids(count=2, seed=0):
    return np.random.default_rng(seed).random((count, 16, 16, 16, 1), dtype=np.float32)


def test_the_schema_offers_what_the_tests_cover():
    assert set(RUN_SCHEMA["activation"]["enum"]) == set(ACTIVATIONS)
    assert set(RUN_SCHEMA["head"]["enum"]) == set(model_lib.HEAD_LAYERS)
    assert tuple(RUN_SCHEMA["pooling"]["enum"]) == model_lib.POOLINGS


def test_convs_per_block_stacks_convolutions_before_each_pooling():
    network = build(convs_per_block=3)
    assert names(network) == [
        "grid",
        "conv1_1",
        "batchnorm1_1",
        "conv1_2",
        "batchnorm1_2",
        "conv1_3",
        "batchnorm1_3",
        "maxpool1",
        "conv2_1",
        "batchnorm2_1",
        "conv2_2",
        "batchnorm2_2",
        "conv2_3",
        "batchnorm2_3",
        "maxpool2",
        "flatten",
        "dense",
        "dropout",
        "classifier",
    ]
    widths = {"conv1_1": (1, 2), "conv1_2": (2, 2), "conv1_3": (2, 2), "conv2_1": (2, 3), "conv2_2": (3, 3)}
    for name, (inputs, outputs) in widths.items():
        assert tuple(network.get_layer(name).kernel.shape) == (3, 3, 3, inputs, outputs)
        assert network.get_layer(name).get_config()["activation"] == "relu"
    convs = sum(conv_params(3, *pair) for pair in [(1, 2), (2, 2), (2, 2), (2, 3), (3, 3), (3, 3)])
    norms = 4 * (2 * 3 + 3 * 3)
    assert network.count_params() == convs + norms + dense_params(FEATURES, 4) + dense_params(4, 10)
    assert names(build(convs_per_block=1), "Conv3D") == ["conv1", "conv2"]  # the notebook's names


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_activation_is_that_of_every_convolution_and_hidden_dense_layer(activation, residual):
    network = build(activation=activation, residual=residual, convs_per_block=2, dense=[5, 4])
    activated = [
        layer
        for layer in network.layers
        if type(layer).__name__ in ("Conv3D", "Dense", "Activation")
        and layer.get_config().get("activation") not in ("linear", "softmax")
    ]
    # Plain: each Conv3D and hidden Dense. Residual: its convolutions stay linear for the batch norm,
    # and an Activation layer follows every norm but the last, and the sum.
    expected = (
        {"conv1_1", "conv1_2", "conv2_1", "conv2_2"}
        if not residual
        else {"activation1_1", "activation1", "activation2_1", "activation2"}
    )
    assert {layer.name for layer in activated} == expected | {"dense1", "dense2"}
    assert {layer.get_config()["activation"] for layer in activated} == {activation}
    # It computes the named function: the hidden Dense layer on values either side of 0.
    dense = network.get_layer("dense2")
    z = np.linspace(-3, 3, 5 * 7, dtype=np.float32).reshape(7, 5)
    linear = z @ dense.kernel.numpy() + dense.bias.numpy()
    np.testing.assert_allclose(dense(z), ACTIVATIONS[activation](linear), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("implementation", model_lib.IMPLEMENTATIONS)
def test_batch_norm_false_leaves_out_every_normalisation(implementation):
    for levers in ({}, {"residual": True}, {"pooling": "strided"}):
        with_norm = build(implementation, **levers)
        without = build(implementation, batch_norm=False, **levers)
        assert names(without) == [name for name in names(with_norm) if "batchnorm" not in name]
        norms = [layer for layer in with_norm.layers if "batchnorm" in layer.name]
        expected_kind = "FusedBatchNormalization" if implementation == "fast" else "BatchNormalization"
        assert {type(layer).__name__ for layer in norms} == {expected_kind}
        # 4 weights per channel each; a residual block's convolutions get back their bias (1 per channel).
        channels = sum(layer.gamma.shape[0] for layer in norms)
        biases = channels if levers.get("residual") else 0
        assert with_norm.count_params() - without.count_params() == 4 * channels - biases


def test_average_pooling_averages_each_window_and_pool_1_adds_no_layer():
    network = build(pooling="average", pool_sizes=[1, 2])
    assert names(network)[1:] == [
        "conv1",
        "batchnorm1",
        "conv2",
        "batchnorm2",
        "averagepool2",
        "flatten",
        "dense",
        "dropout",
        "classifier",
    ]
    before, after = outputs_of(network, "batchnorm2", "averagepool2")(grids())
    assert tuple(after.shape) == (2, 8, 8, 8, 3)
    windows = np.asarray(before).reshape(2, 8, 2, 8, 2, 8, 2, 3).mean(axis=(2, 4, 6))
    np.testing.assert_allclose(after, windows, rtol=1e-5, atol=1e-6)
    assert tuple(network.get_layer("dense").kernel.shape) == (8**3 * 3, 4)
    assert network.count_params() == build(pool_sizes=[1, 2]).count_params()  # pooling has no weights
    assert names(build(pooling="max", pool_sizes=[1, 2]), "MaxPooling3D") == ["maxpool1", "maxpool2"]  # as today


@pytest.mark.parametrize("batch_norm", [True, False])
def test_strided_pooling_is_a_learned_convolution_of_kernel_and_stride_the_pool(batch_norm):
    network = build(pooling="strided", pool_sizes=[1, 4], activation="elu", batch_norm=batch_norm)
    assert not names(network, "MaxPooling3D")
    strided = network.get_layer("conv2_strided")
    assert tuple(strided.kernel.shape) == (4, 4, 4, 3, 3)
    assert strided.get_config()["strides"] == (4, 4, 4) and strided.get_config()["activation"] == "elu"
    assert names(network, "Conv3D") == ["conv1", "conv2", "conv2_strided"]  # pool 1: no layer at block 1
    assert ("batchnorm2_strided" in names(network)) == batch_norm
    assert tuple(network.get_layer("flatten").output.shape) == (None, 4**3 * 3)
    convs = conv_params(3, 1, 2) + conv_params(3, 2, 3) + conv_params(4, 3, 3)
    norms = 4 * (2 + 3 + 3) if batch_norm else 0
    assert network.count_params() == convs + norms + dense_params(4**3 * 3, 4) + dense_params(4, 10)


def test_residual_blocks_add_their_input_projected_where_the_width_changes():
    params = {"filters": [4, 4, 6], "pool_sizes": [2, 1, 2], "kernel_sizes": [3, 3, 3]}
    network = build(residual=True, **params)
    assert names(network, "Add") == ["add1", "add2", "add3"]
    assert names(network, "Conv3D") == ["conv1", "conv1_projection", "conv2", "conv3", "conv3_projection"]
    assert tuple(network.get_layer("conv3_projection").kernel.shape) == (1, 1, 1, 4, 6)
    # Convolutions that batch norm follows directly have no bias.
    assert not any(layer.use_bias for layer in network.layers if type(layer).__name__ == "Conv3D")
    convs = conv_params(3, 1, 4, False) + conv_params(3, 4, 4, False) + conv_params(3, 4, 6, False)
    projections = conv_params(1, 1, 4, False) + conv_params(1, 4, 6, False)
    norms = 4 * (4 + 4 + 4 + 6 + 6)
    assert network.count_params() == convs + projections + norms + dense_params(4**3 * 6, 4) + dense_params(4, 10)
    # With its convolutions' path switched off (the last norm's scale and shift at 0), a block passes
    # on the activation of its shortcut: the block's input itself at block 2, its projection at block 3.
    for block in ("batchnorm2", "batchnorm3"):
        layer = network.get_layer(block)
        layer.set_weights([np.zeros_like(layer.gamma), np.zeros_like(layer.beta), *layer.get_weights()[2:]])
    block_1, block_2, projected, block_3 = outputs_of(
        network, "maxpool1", "activation2", "batchnorm3_projection", "activation3"
    )(grids())
    np.testing.assert_array_equal(block_2, np.maximum(block_1, 0))
    assert float(np.abs(block_2).max()) > 0
    np.testing.assert_array_equal(block_3, np.maximum(projected, 0))


def test_residual_block_of_several_convolutions_activates_between_them():
    network = build(residual=True, convs_per_block=2, batch_norm=False, filters=[2, 2])
    assert set(names(network)[1:7]) == {
        "conv1_1",
        "activation1_1",
        "conv1_2",
        "conv1_projection",
        "add1",
        "activation1",
    }
    assert names(network, "Conv3D") == ["conv1_1", "conv1_2", "conv1_projection", "conv2_1", "conv2_2"]
    assert all(layer.use_bias for layer in network.layers if type(layer).__name__ == "Conv3D")  # no norm follows


def test_global_average_head_averages_each_channel_over_the_grid():
    network = build(head="global_average")
    assert "flatten" not in names(network) and names(network, "GlobalAveragePooling3D") == ["global_average"]
    assert tuple(network.get_layer("dense").kernel.shape) == (3, 4)
    grid, features = outputs_of(network, "maxpool2", "global_average")(grids())
    np.testing.assert_allclose(features, np.asarray(grid).mean(axis=(1, 2, 3)), rtol=1e-5, atol=1e-7)
    assert build().count_params() - network.count_params() == (FEATURES - 3) * 4
    # After a grid of 1 voxel too: then the same features as Flatten.
    assert tuple(build(head="global_average", pool_sizes=[4, 4]).get_layer("global_average").output.shape) == (None, 3)


def test_dense_list_is_one_hidden_layer_and_dropout_per_width():
    network = build(dense=[5, 3], dropout=0.25)
    assert names(network)[-6:] == ["flatten", "dense1", "dropout1", "dense2", "dropout2", "classifier"]
    assert [tuple(network.get_layer(name).kernel.shape) for name in ("dense1", "dense2", "classifier")] == [
        (FEATURES, 5),
        (5, 3),
        (3, 10),
    ]
    assert {layer.rate for layer in network.layers if type(layer).__name__ == "Dropout"} == {0.25}
    # The dropout acts on its own hidden layer's output: each value dropped or scaled by 1 / (1 - rate).
    hidden, dropped = outputs_of(network, "dense1", "dropout1")(grids(64), training=True)
    hidden, dropped = np.asarray(hidden), np.asarray(dropped)
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], hidden[kept] / 0.75, rtol=1e-6)
    assert 0.6 < kept[hidden != 0].mean() < 0.9
    one = build(dense=[5])
    assert names(one) == names(build(dense=5)) and one.count_params() == build(dense=5).count_params()


def test_no_hidden_layer_puts_the_dropout_on_the_features():
    network = build(dense=[], dropout=0.5)
    assert names(network)[-3:] == ["flatten", "dropout", "classifier"] and not names(network, "Dense")[:-1]
    assert tuple(network.get_layer("classifier").kernel.shape) == (FEATURES, 10)
    assert network.get_layer("dropout").rate == 0.5


def test_unknown_lever_values_are_refused():
    for levers, field in (({"pooling": "min"}, "pooling"), ({"pooling": "min", "pool_sizes": [1, 1]}, "pooling"),
                          ({"head": "mean"}, "head")):
        with pytest.raises(ValueError, match=field):
            build(**levers)


# --- The levers in a models file: checked before any job, and the shipped file of every lever.

LEVERS_FILE = REPO / "config" / "test" / "models-levers.yaml"
DEFAULTS = """\
defaults:
  filters: [4, 8, 8]
  kernel_sizes: [3, 3, 3]
  pool_sizes: [4, 4, 1]
  dense: 8
  dropout: 0.1
  learning_rate: 0.001
  epochs: 2
  batch_size: 16
  seed: 1
  replicates: 1
"""


def runs_of(tmp_path, text):
    path = tmp_path / "models.yaml"
    path.write_text(DEFAULTS + textwrap.dedent(text))
    return load_runs(path, SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")


def test_unusual_but_valid_designs_pass_the_config_and_build(tmp_path):
    runs = runs_of(
        tmp_path,
        """\
        runs:
          residual-single-conv: {residual: true}
          global-average-of-1-voxel: {head: global_average}
          strided-beyond-the-grid: {pooling: strided, pool_sizes: [3, 3, 2]}   # 16 -> 6 -> 2 -> 1
          straight-from-flatten: {dense: [], pooling: average}
        """,
    )
    for run in runs:
        network = model_lib.build_model(run.params, "keras")
        assert network.output.shape == (None, 10), run.entry
    sizes = {run.entry: model_lib.check_architecture(run.params) for run in runs}
    assert sizes["strided-beyond-the-grid"] == [6, 2, 1] and sizes["global-average-of-1-voxel"] == [4, 1, 1]


@pytest.mark.parametrize("pooling", ["max", "average", "strided"])
def test_pooling_a_1_voxel_grid_stops_with_the_field_named(tmp_path, pooling):
    with pytest.raises(RunConfigError, match=r"run 'deep', field 'pool_sizes': pool_sizes \[4, 4, 2\] leave nothing"):
        runs_of(tmp_path, f"runs:\n  deep: {{pooling: {pooling}, pool_sizes: [4, 4, 2]}}\n")


def test_the_levers_models_file_pulls_every_lever_and_builds():
    runs = load_runs(LEVERS_FILE, SCHEMAS / "run.schema.yaml", SCHEMAS / "models.schema.yaml")
    # A run's params leave out a lever at its default: present means pulled.
    assert {name for run in runs for name in run.params if name in LEVER_DEFAULTS} == set(LEVER_DEFAULTS)
    for lever in ("activation", "pooling", "head", "optimizer"):
        assert {run.params.get(lever, LEVER_DEFAULTS[lever]) for run in runs} == set(RUN_SCHEMA[lever]["enum"]), lever
    assert {run.params["lr_schedule"] for run in runs} >= set(WARMUP_SCHEDULES)
    assert {run.params.get("convs_per_block", 1) for run in runs} >= {1, 2}
    dense = [run.params["dense"] for run in runs]
    assert [] in dense and any(isinstance(widths, list) and len(widths) > 1 for widths in dense)
    assert {run.params["implementation"] for run in runs} == {"fast", "keras"}
    assert any(run.params.get("optimizer") != "adamw" and run.params.get("weight_decay") for run in runs)
    assert all(run.params["epochs"] <= 2 and max(run.params["filters"]) <= 8 for run in runs)
    for run in runs:
        network = model_lib.build_model(run.params, run.params["implementation"])
        assert network.output.shape == (None, 10), run.entry
