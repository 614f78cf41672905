"""The fast layers compute what the Keras layers they replace compute: forward, gradients, state."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mnist3d.training import layers  # noqa: E402
from mnist3d.training.layers import FastConv3D, FusedBatchNormalization  # noqa: E402

SHAPES = [(4, 5, 7, 3, 6), (3, 16, 16, 16, 16), (2, 3, 1, 2, 5), (6, 9, 4, 3)]


def pair(shape, **options):
    """A Keras BatchNormalization and a FusedBatchNormalization with the same (non-trivial) weights."""
    keras_layer = keras.layers.BatchNormalization(**options)
    fast_layer = FusedBatchNormalization(**options)
    keras_layer.build(shape)
    fast_layer.build(shape)
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    channels = shape[options.get("axis", -1)]
    weights = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.5, channels), rng.normal(0, 1, channels),
               rng.uniform(0.5, 2.0, channels)]
    weights = [w.astype(np.float32) for w in weights]
    keras_layer.set_weights(weights)
    fast_layer.set_weights(weights)
    return keras_layer, fast_layer


def inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    # Shifted and scaled per channel, with relu zeros as in the network.
    x = rng.normal(1.0, 2.0, shape) * rng.uniform(0.1, 3.0, shape[-1])
    return tf.constant(np.maximum(x, 0).astype(np.float32))


def forward_and_gradients(layer, x, training):
    upstream = tf.constant(np.random.default_rng(7).normal(size=x.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * upstream)
    gradients = tape.gradient(loss, [x, *layer.trainable_variables])
    return y, gradients


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_keras(shape, training):
    keras_layer, fast_layer = pair(shape)
    x = inputs(shape)
    expected, expected_gradients = forward_and_gradients(keras_layer, x, training)
    actual, actual_gradients = forward_and_gradients(fast_layer, x, training)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
    for name, got, want in zip(["input", "gamma", "beta"], actual_gradients, expected_gradients):
        scale = float(tf.reduce_max(tf.abs(want))) + 1e-6
        np.testing.assert_allclose(got / scale, want / scale, atol=2e-5, err_msg=name)
    # The moving statistics move in training (batch mean, biased variance) and stay put in inference.
    for fast_weight, keras_weight in zip(fast_layer.non_trainable_weights, keras_layer.non_trainable_weights):
        np.testing.assert_allclose(fast_weight.numpy(), keras_weight.numpy(), rtol=1e-5, atol=1e-6)
    if training:
        assert not np.allclose(fast_layer.moving_mean.numpy(), pair(shape)[1].moving_mean.numpy())


def test_moving_statistics_converge_to_the_batch_statistics():
    shape = (8, 4, 4, 4, 3)
    keras_layer, fast_layer = pair(shape, momentum=0.5)
    x = inputs(shape, seed=3)
    for _ in range(30):
        keras_layer(x, training=True)
        fast_layer(x, training=True)
    mean, variance = tf.nn.moments(x, axes=[0, 1, 2, 3])
    np.testing.assert_allclose(fast_layer.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast_layer.moving_variance.numpy(), variance, rtol=1e-4)
    np.testing.assert_allclose(fast_layer.moving_variance.numpy(), keras_layer.moving_variance.numpy(), rtol=1e-4)


def test_frozen_layer_normalises_with_moving_statistics_even_in_training():
    shape = (4, 3, 3, 3, 2)
    keras_layer, fast_layer = pair(shape)
    keras_layer.trainable = fast_layer.trainable = False
    x = inputs(shape)
    np.testing.assert_allclose(fast_layer(x, training=True), keras_layer(x, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast_layer(x, training=True), fast_layer(x, training=False))


def test_cases_the_fused_kernel_does_not_cover_fall_back_to_keras():
    shape = (4, 6, 5)
    keras_layer, fast_layer = pair(shape, axis=1)
    x = inputs(shape)
    np.testing.assert_allclose(fast_layer(x, training=True), keras_layer(x, training=True), rtol=1e-5, atol=1e-5)
    assert not fast_layer._fused(x, None)
    assert FusedBatchNormalization(epsilon=1e-6)._fused(inputs((2, 3, 3, 3, 1)), None) is False


def test_serialises_with_its_configuration():
    layer = FusedBatchNormalization(momentum=0.9, epsilon=2e-3, name="batchnorm7")
    config = keras.saving.serialize_keras_object(layer)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is FusedBatchNormalization
    assert (restored.momentum, restored.epsilon, restored.name) == (0.9, 2e-3, "batchnorm7")


# (batch, edge, input channels, filters, kernel): the network's first blocks, kernels 3 and 5, odd edges.
CONV_SHAPES = [(4, 16, 1, 8, 3), (3, 8, 16, 32, 3), (2, 8, 16, 32, 5), (3, 7, 3, 5, 5), (2, 4, 32, 64, 3)]


def conv_pair(cin, filters, kernel_size, weight_gradient="padded", **options):
    """keras.layers.Conv3D and a FastConv3D with the same (random) weights."""
    options = {"padding": "same", "activation": "relu", **options}
    stock = keras.layers.Conv3D(filters, kernel_size, **options)
    fast = FastConv3D(filters, kernel_size, weight_gradient=weight_gradient, **options)
    shape = (None, 6, 6, 6, cin)
    stock.build(shape)
    fast.build(shape)
    rng = np.random.default_rng(cin * 100 + filters)
    weights = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in stock.get_weights()]
    stock.set_weights(weights)
    fast.set_weights(weights)
    return stock, fast


def conv_gradients(layer, x, upstream):
    """The layer's output and the gradients of sum(output * upstream) for input, kernel and bias, in a tf.function
    (graph mode, as fit runs it)."""

    @tf.function
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * upstream)
        return y, tape.gradient(loss, [x, layer.kernel, layer.bias])

    return run(x)


@pytest.mark.parametrize("batch, edge, cin, filters, kernel_size", CONV_SHAPES)
def test_padded_weight_gradient_matches_the_stock_gradient(batch, edge, cin, filters, kernel_size):
    stock, fast = conv_pair(cin, filters, kernel_size)
    x = tf.constant(np.random.default_rng(edge).normal(size=(batch, edge, edge, edge, cin)).astype(np.float32))
    assert fast.padded(x, fast.kernel)
    upstream = tf.constant(np.random.default_rng(5).normal(size=(batch, edge, edge, edge, filters)).astype(np.float32))
    want, want_gradients = conv_gradients(stock, x, upstream)
    got, got_gradients = conv_gradients(fast, x, upstream)
    # Forward pass and input gradient are the stock ops on the same inputs; the bias gradient the same sum.
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(got_gradients[0].numpy(), want_gradients[0].numpy())
    np.testing.assert_allclose(got_gradients[2].numpy(), want_gradients[2].numpy(), rtol=1e-6, atol=1e-5)
    # The kernel gradient sums the same products, maybe in another order (another oneDNN kernel): equal to
    # float32 rounding, a few ulps of its largest value (1.5e-6 seen with oneDNN capped at AVX2).
    kernel_got, kernel_want = got_gradients[1].numpy(), want_gradients[1].numpy()
    scale = np.max(np.abs(kernel_want))
    np.testing.assert_allclose(kernel_got / scale, kernel_want / scale, rtol=0, atol=1e-5)


def test_padded_weight_gradient_is_a_real_gradient():
    """Against the derivative by finite differences (float64 sums of float32 outputs): not only agreement with stock."""
    _, fast = conv_pair(2, 3, 3, activation=None)  # linear in the kernel: central differences are exact but rounding
    x = tf.constant(np.random.default_rng(3).normal(size=(2, 5, 5, 5, 2)).astype(np.float32))
    upstream = tf.constant(np.random.default_rng(4).normal(size=(2, 5, 5, 5, 3)).astype(np.float32))
    _, (_, kernel_gradient, _) = conv_gradients(fast, x, upstream)
    kernel = fast.kernel.numpy()
    for index in [(0, 0, 0, 0, 0), (1, 2, 0, 1, 2), (2, 1, 2, 0, 1)]:
        step = np.zeros_like(kernel)
        step[index] = 0.5
        values = []
        for sign in (1, -1):
            fast.kernel.assign(kernel + sign * step)
            values.append(np.sum(np.float64(fast(x).numpy()) * upstream.numpy()))
        fast.kernel.assign(kernel)
        np.testing.assert_allclose(kernel_gradient.numpy()[index], (values[0] - values[1]) / 1.0, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "options",
    [
        {"strides": 2},
        {"kernel_size": 2},
        {"kernel_size": 1},
        {"kernel_size": (3, 4, 3)},
        {"dilation_rate": 2},
        {"padding": "valid"},
        {"weight_gradient": "stock"},
    ],
)
def test_other_convolutions_are_the_stock_call(options):
    options = {"kernel_size": 3, **options}
    kernel_size = options.pop("kernel_size")
    stock, fast = conv_pair(4, 6, kernel_size, **options)
    x = tf.constant(np.random.default_rng(1).normal(size=(2, 6, 6, 6, 4)).astype(np.float32))
    assert not fast.padded(x, fast.kernel)
    np.testing.assert_array_equal(fast(x).numpy(), stock(x).numpy())


def test_float16_is_the_stock_call():
    # The decision only: oneDNN has no float16 Conv3D below AVX-512, where even the stock call fails on a CPU.
    _, fast = conv_pair(4, 6, 3, dtype="float16")
    assert not fast.padded(tf.zeros((1, 6, 6, 6, 4), "float16"), fast.kernel)


def test_auto_follows_the_machine_decision(monkeypatch):
    _, fast = conv_pair(1, 8, 3, weight_gradient="auto")
    x = tf.zeros((1, 4, 4, 4, 1))
    for here in (True, False):
        monkeypatch.setattr(layers, "padded_weight_gradient_here", lambda here=here: here)
        assert fast.padded(x, fast.kernel) is here
    with pytest.raises(ValueError, match="weight_gradient"):
        FastConv3D(8, 3, weight_gradient="fast")


AVX2_FLAGS = {"sse4_1", "avx", "avx2", "fma"}
AVX512_FLAGS = AVX2_FLAGS | {"avx512f", "avx512bw", "avx512_vnni", "amx_tile"}


@pytest.mark.parametrize(
    "flags, environ, onednn, wins",
    [
        (AVX2_FLAGS, {}, True, True),  # AVX2-only CPUs: the stock gradient falls back to im2col + sgemm
        (AVX2_FLAGS | {"avx_vnni"}, {}, True, True),
        (AVX2_FLAGS, {}, False, False),  # Eigen's kernels: no oneDNN fallback to avoid
        (AVX512_FLAGS, {}, True, False),  # AVX-512 has a direct stock kernel: today's numbers stay
        (AVX512_FLAGS, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, True, True),  # oneDNN capped: an AVX2 CPU's kernels
        (AVX512_FLAGS, {"ONEDNN_MAX_CPU_ISA": "avx2_vnni"}, True, True),
        (AVX512_FLAGS, {"DNNL_MAX_CPU_ISA": "AVX2"}, True, True),
        (AVX512_FLAGS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, True, False),
        (AVX2_FLAGS, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, True, True),  # a cap above the CPU changes nothing
        (AVX2_FLAGS, {"ONEDNN_MAX_CPU_ISA": "AVX"}, True, False),  # below AVX2: no direct kernel either way
        ({"sse4_1", "avx"}, {}, True, False),
    ],
)
def test_padded_weight_gradient_wins_by_cpu_class(flags, environ, onednn, wins):
    assert layers.padded_weight_gradient_wins(flags, environ, onednn) is wins


def test_conv_keeps_keras_configuration_and_weights():
    stock, fast = conv_pair(3, 5, 3)
    assert fast.get_config() == {**stock.get_config(), "name": fast.name}
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fast))
    assert type(restored) is FastConv3D and restored.weight_gradient == "auto"
    copy = keras.layers.Conv3D.from_config(fast.get_config())  # what stock_copy builds, holding fast's weights
    copy.build((None, 6, 6, 6, 3))
    copy.set_weights(fast.get_weights())
    x = tf.constant(np.random.default_rng(2).normal(size=(1, 6, 6, 6, 3)).astype(np.float32))
    np.testing.assert_array_equal(copy(x).numpy(), fast(x).numpy())
