"""Fast drop-in replacements for Keras layers, same math, for training on CPUs with TensorFlow.

Profiling the notebook's network on 2-core CPUs (bench/README.md): after the convolutions, Keras'
BatchNormalization is the largest cost (about 16 of 44 ms per training step), because it runs as
a dozen separate element-wise and reduction ops over the largest activations, forward and backward.
`FusedBatchNormalization` computes the same function with TensorFlow's fused kernels (one op
forward, one op backward; about 6 ms). MaxPooling3D already runs as one oneDNN kernel and stays
stock. `FastConv3D` is keras.layers.Conv3D with the kernel's gradient computed on the explicitly
padded input with VALID padding where oneDNN runs at AVX2: there the stock SAME gradient falls back
to im2col + sgemm, the VALID one gets oneDNN's direct AVX2 kernel (bench/bench_weight_gradient.py).

This module imports Keras at import time (TensorFlow when a layer runs): only import it where Keras is wanted
(mnist3d.training.model does so inside its functions). Importing it registers the layers with Keras, which
loading a saved model needs (mnist3d.training.model.load_model does both).
"""

from __future__ import annotations

import functools
import os

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


# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) at which its direct AVX2 weight-gradient kernel is the best
# it has, and those below it, which have no direct weight-gradient kernel at all.
AVX2_ISAS = ("AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
BELOW_AVX2_ISAS = ("SSE41", "AVX")
WEIGHT_GRADIENTS = ("auto", "padded", "stock")


def padded_weight_gradient_wins(flags: set[str], environ: dict, onednn: bool) -> bool:
    """Whether the padded-VALID kernel gradient beats the stock one on this CPU class (pure; see below).

    oneDNN's direct AVX2 weight-gradient kernel (jit_avx2_convolution_bwd_weights_t) refuses any
    padding in depth, so a stock padding="same" gradient falls back to im2col + sgemm (x64:gemm:jit);
    on the padded input with VALID padding it takes the direct kernel (jit:avx2): 1.2-1.7x faster on
    an AVX2-only AMD EPYC Zen 3, 1.3-1.8x on every block shape of the workflow's networks with oneDNN
    capped at AVX2 (bench/bench_weight_gradient.py), so the CPU class alone decides, not the shape.
    With AVX-512 the stock gradient already has a direct kernel (jit:avx512_core) and the padded one
    measured slower: keep the stock one there.
    The effective ISA is the CPU's (`flags`, /proc/cpuinfo) capped by ONEDNN_MAX_CPU_ISA; `onednn`
    is whether TensorFlow runs its oneDNN kernels at all (Eigen has no such fallback to avoid).
    """
    if not onednn or "avx2" not in flags:
        return False
    cap = (environ.get("ONEDNN_MAX_CPU_ISA") or environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap in BELOW_AVX2_ISAS:
        return False
    return "avx512f" not in flags or cap in AVX2_ISAS


@functools.cache
def padded_weight_gradient_here() -> bool:
    """padded_weight_gradient_wins for this machine and process, decided once: every layer of a
    process takes the same path, and a machine class with the same settings always takes it."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((set(line.split(":", 1)[1].split()) for line in handle if line.startswith("flags")), set())
    except OSError:
        flags = set()
    try:  # TensorFlow's own decision (TF_ENABLE_ONEDNN_OPTS and the CPU), made when it was imported
        from tensorflow.python.util import _pywrap_util_port

        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except ImportError:
        onednn = False
    return padded_weight_gradient_wins(flags, os.environ, onednn)


@keras.saving.register_keras_serializable(package="mnist3d")
class FastConv3D(keras.layers.Conv3D):
    """keras.layers.Conv3D whose kernel gradient is computed on the explicitly padded input, VALID.

    Same weights, configuration and forward pass (the same TensorFlow op), the same input and bias
    gradients (the same ops as stock); the kernel gradient is `Conv3DBackpropFilterV2` on the input
    padded by kernel_size // 2 on every spatial side with VALID padding: the same sums, in another
    order (equal to float32 rounding). Taken only where it is faster (`padded_weight_gradient_here`)
    and for stride 1, dilation 1, odd kernels deeper than 1, padding "same", channels last, one group,
    float32 on TensorFlow; anything else is exactly the stock call, so machines where it is not taken keep their
    numbers bit for bit. `weight_gradient` ("auto", "padded" to force it where it applies, "stock")
    is a property of the process, not of the model: it is not saved, and a loaded model is "auto".
    """

    def __init__(self, *args, weight_gradient: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if weight_gradient not in WEIGHT_GRADIENTS:
            raise ValueError(f"weight_gradient must be one of {WEIGHT_GRADIENTS}, not {weight_gradient!r}")
        self.weight_gradient = weight_gradient

    def padded(self, inputs, kernel) -> bool:
        """Whether this call computes the kernel gradient on the padded input."""
        if self.weight_gradient == "stock":
            return False
        applies = (
            keras.backend.backend() == "tensorflow"
            and self.padding == "same"
            and self.data_format == "channels_last"
            and self.groups == 1
            and all(stride == 1 for stride in self.strides)
            and all(rate == 1 for rate in self.dilation_rate)
            and all(size % 2 == 1 for size in self.kernel_size)
            and self.kernel_size[0] > 1  # depth padding is what the direct kernel refuses; none, nothing to gain
            and len(inputs.shape) == 5
            and keras.backend.standardize_dtype(inputs.dtype) == "float32"
            and keras.backend.standardize_dtype(kernel.dtype) == "float32"
        )
        return applies and (self.weight_gradient == "padded" or padded_weight_gradient_here())

    def convolution_op(self, inputs, kernel):
        if not self.padded(inputs, kernel):
            return super().convolution_op(inputs, kernel)
        return _same_conv3d_padded_weight_gradient(inputs, kernel)


def _same_conv3d_padded_weight_gradient(inputs, kernel):
    """Conv3D(stride 1, SAME, NDHWC) of `inputs` by `kernel`, its kernel gradient taken VALID on the padded input."""
    import tensorflow as tf

    ones = [1] * 5
    pads = [[0, 0]] + [[size // 2, size // 2] for size in kernel.shape[:3]] + [[0, 0]]

    @tf.custom_gradient
    def convolution(x, w):
        def gradient(dy):
            # The same op, attributes and inputs as TensorFlow's own Conv3D gradient: bit for bit stock.
            dx = tf.raw_ops.Conv3DBackpropInputV2(input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=ones,
                                                  padding="SAME", dilations=ones)
            dw = tf.raw_ops.Conv3DBackpropFilterV2(input=tf.pad(x, pads), filter_sizes=tf.shape(w), out_backprop=dy,
                                                   strides=ones, padding="VALID", dilations=ones)
            return dx, dw

        return tf.raw_ops.Conv3D(input=x, filter=w, strides=ones, padding="SAME", dilations=ones), gradient

    return convolution(tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel))
