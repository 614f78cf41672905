"""The fast layers compute what the Keras layers they replace compute: forward, gradients, state."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from mnist3d.training.layers import FusedBatchNormalization  # noqa: E402

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
