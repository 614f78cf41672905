"""Fast drop-in replacements for Keras layers, same math, for training on CPUs with TensorFlow.

Profiling the notebook's network on 2-core CPUs (bench/README.md): after the convolutions, Keras'
BatchNormalization is the largest cost (about 16 of 44 ms per training step), because it runs as
a dozen separate element-wise and reduction ops over the largest activations, forward and backward.
`FusedBatchNormalization` computes the same function with TensorFlow's fused kernels (one op
forward, one op backward; about 6 ms). Conv3D and MaxPooling3D already run as single oneDNN
kernels, and the alternatives tried were slower, so they stay the stock Keras layers.

This module imports Keras at import time (TensorFlow when a layer runs): only import it where Keras is wanted
(mnist3d.training.model does so inside its functions). Importing it registers the layers with Keras, which
loading a saved model needs (mnist3d.training.model.load_model does both).
"""

from __future__ import annotations

import keras

# The fused kernels refuse a smaller epsilon (cuDNN's limit, also enforced on CPUs).
FUSED_MIN_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="mnist3d")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization over the last axis, computed by TensorFlow's fused kernels.

    Same weights (gamma, beta, moving_mean, moving_variance, in Keras' order), same configuration
    and the same semantics: in training the batch's mean and biased variance normalise the batch and
    update the moving averages with `momentum`; in inference the moving averages normalise. Cases the
    fused kernels do not cover (other backends, another axis, masks, renorm, synchronized, no scale
    or centre, epsilon below 1.001e-5) fall back to the Keras implementation, so a saved model
    loads and runs anywhere.
    """

    def _fused(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and 3 <= rank <= 5
            and self.axis in (-1, rank - 1)
            and self.scale
            and self.center
            and not self.renorm
            and not self.synchronized
            and self.epsilon >= FUSED_MIN_EPSILON
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        inputs = tf.cast(inputs, "float32")
        shape = tf.shape(inputs)
        channels = inputs.shape[-1]
        # The fused kernels take NHWC; fold the spatial axes after the first into W.
        folded = tf.reshape(inputs, [shape[0], shape[1], -1, channels])
        if training and self.trainable:
            outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
                folded, self.gamma, self.beta, epsilon=self.epsilon, is_training=True
            )
            # The kernel reports the variance with Bessel's correction; Keras averages the biased one.
            count = tf.cast(tf.size(inputs) // channels, "float32")
            variance = unbiased_variance * ((count - 1.0) / tf.maximum(count, 1.0))
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                folded, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance,
                epsilon=self.epsilon, is_training=False,
            )
        return tf.cast(tf.reshape(outputs, shape), self.compute_dtype)
