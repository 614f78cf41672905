"""The 3D CNN of a run's parameters, as stock Keras layers or as the workflow's faster equivalent.

With every lever at its default (mnist3d.config.levers) it is the notebook's network, layer for layer.
TensorFlow and Keras are imported inside the functions: `check_architecture` runs while Snakemake
parses the workflow, where importing TensorFlow would cost seconds.
"""

from __future__ import annotations

from mnist3d.config.levers import with_levers
from mnist3d.grid import CLASSES, INPUT_SHAPE
from mnist3d.training.geometry import check_layers, spatial_sizes

IMPLEMENTATIONS = ("fast", "keras")
# The layer of each `head`, named as the setting.
HEAD_LAYERS = {"flatten": "Flatten", "global_average": "GlobalAveragePooling3D"}
POOLINGS = ("max", "average", "strided")


def check_architecture(params: dict) -> list[int]:
    """The grid edge after each block; ValueError naming the field when the layers cannot be built."""
    check_layers(params)
    return spatial_sizes(params["pool_sizes"])


def build_model(params: dict, implementation: str = "fast"):
    """The run's network, uncompiled: per block `convs_per_block` Conv3D(same), each followed by batch
    normalisation (`batch_norm`), optionally wrapped in a skip connection (`residual`), then the block's
    downsampling (`pooling`); then the head (`head`: Flatten or GlobalAveragePooling3D), one Dense +
    Dropout per hidden width (`dense`) and Dense(10, softmax).

    At the defaults: Conv3D(relu) + BatchNormalization + MaxPooling3D per block, Flatten, Dense(relu),
    Dropout, softmax, the notebook's network, with its layer names. "keras" uses stock layers only;
    "fast" swaps BatchNormalization for layers.FusedBatchNormalization (same weights, same function,
    fused kernels) and Conv3D for layers.FastConv3D (the same, with a faster weight gradient where
    oneDNN runs at AVX2). Both have the same layer names and weights, so weights copy between them. With
    params["mixed_precision"] the layers compute in float16 and the classifier stays float32.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, not {implementation!r}")
    params = with_levers(params)
    check_architecture(params)
    import keras

    make = _Layers(keras, implementation, params)
    inputs = keras.Input(shape=INPUT_SHAPE, name="grid")
    x = inputs
    convolve = _residual_block if params["residual"] else _plain_block
    blocks = zip(params["filters"], params["kernel_sizes"], params["pool_sizes"])
    for block, (filters, kernel_size, pool_size) in enumerate(blocks, start=1):
        x = convolve(make, x, block, filters, kernel_size, params["convs_per_block"])
        x = _downsample(make, x, block, pool_size, params["pooling"])
    x = _head(make, x, params["head"], params["dense"], params["dropout"])
    outputs = keras.layers.Dense(CLASSES, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"cnn3d_{implementation}")


def _layer_classes(keras, implementation: str):
    """The Conv3D and BatchNormalization classes of an implementation: the one place that picks them."""
    if implementation == "keras":
        return keras.layers.Conv3D, keras.layers.BatchNormalization
    from mnist3d.training.layers import FastConv3D, FusedBatchNormalization

    return FastConv3D, FusedBatchNormalization


def _policy(keras, params: dict) -> str:
    if not params.get("mixed_precision"):
        return "float32"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            raise ValueError("mixed_precision needs a GPU: TensorFlow has no float16 MaxPool3D kernel for CPUs")
    return "mixed_float16"


class _Layers:
    """Makes the network's layers in the run's implementation, precision and activation, and applies them."""

    def __init__(self, keras, implementation: str, params: dict):
        self.keras = keras
        self.conv3d, self.batch_norm = _layer_classes(keras, implementation)
        self.policy = _policy(keras, params)
        self.activation = params["activation"]
        self.normalises = params["batch_norm"]

    def conv(self, x, filters: int, kernel_size: int, name: str, activation=None, strides: int = 1,
             use_bias: bool = True):
        """Conv3D with 'same' padding: every convolution of the network is made here."""
        return self.conv3d(filters, kernel_size, strides=strides, activation=activation, padding="same",
                           use_bias=use_bias, dtype=self.policy, name=name)(x)

    def normalise(self, x, name: str):
        """Batch normalisation where the run has it."""
        return self.batch_norm(dtype=self.policy, name=name)(x) if self.normalises else x

    def stock(self, kind: str, *args, **kwargs):
        """A stock Keras layer (keras.layers.`kind`) in the run's precision."""
        return getattr(self.keras.layers, kind)(*args, dtype=self.policy, **kwargs)


def _conv_name(block: int, index: int, convs: int) -> str:
    """"2" for block 2's only convolution (the notebook's names), "2_1", "2_2", ... for several."""
    return f"{block}" if convs == 1 else f"{block}_{index}"


def _plain_block(make: _Layers, x, block: int, filters: int, kernel_size: int, convs: int):
    """Conv3D(activation) then batch norm, `convs` times: the notebook's order (it normalises after the relu)."""
    for index in range(1, convs + 1):
        suffix = _conv_name(block, index, convs)
        x = make.conv(x, filters, kernel_size, f"conv{suffix}", activation=make.activation)
        x = make.normalise(x, f"batchnorm{suffix}")
    return x


def _residual_block(make: _Layers, x, block: int, filters: int, kernel_size: int, convs: int):
    """He et al. (2016)'s block: conv-bn-act ... conv-bn, plus the block's input (through a 1x1x1
    Conv3D and batch norm where the width changes), then the activation. A convolution that batch norm
    follows directly has no bias: the norm subtracts it again, and its beta is the bias."""
    shortcut = x
    for index in range(1, convs + 1):
        suffix = _conv_name(block, index, convs)
        x = make.conv(x, filters, kernel_size, f"conv{suffix}", use_bias=not make.normalises)
        x = make.normalise(x, f"batchnorm{suffix}")
        if index < convs:
            x = make.stock("Activation", make.activation, name=f"activation{suffix}")(x)
    if shortcut.shape[-1] != filters:
        shortcut = make.conv(shortcut, filters, 1, f"conv{block}_projection", use_bias=not make.normalises)
        shortcut = make.normalise(shortcut, f"batchnorm{block}_projection")
    x = make.stock("Add", name=f"add{block}")([x, shortcut])
    return make.stock("Activation", make.activation, name=f"activation{block}")(x)


def _downsample(make: _Layers, x, block: int, pool_size: int, pooling: str):
    """Shrink the grid by `pool_size` ('same' padding: the edge becomes ceil(edge / pool_size))."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    if pooling == "max":  # a pool of 1 keeps its identity layer: the notebook's network has it
        return make.stock("MaxPooling3D", pool_size, padding="same", name=f"maxpool{block}")(x)
    if pool_size == 1:
        return x
    if pooling == "average":
        return make.stock("AveragePooling3D", pool_size, padding="same", name=f"averagepool{block}")(x)
    # strided: a learned pooling, one more convolution of the block's width, as the others.
    x = make.conv(x, x.shape[-1], pool_size, f"conv{block}_strided", activation=make.activation, strides=pool_size)
    return make.normalise(x, f"batchnorm{block}_strided")


def _head(make: _Layers, x, head: str, dense, dropout: float):
    """Features (Flatten or GlobalAveragePooling3D), then Dense(activation) + Dropout per hidden width;
    without hidden layers, Dropout on the features."""
    if head not in HEAD_LAYERS:
        raise ValueError(f"head must be one of {tuple(HEAD_LAYERS)}, not {head!r}")
    x = make.stock(HEAD_LAYERS[head], name=head)(x)
    widths = dense if isinstance(dense, list) else [dense]
    for index, width in enumerate(widths, start=1):
        suffix = "" if len(widths) == 1 else str(index)  # one hidden layer: the notebook's names
        x = make.stock("Dense", width, activation=make.activation, name=f"dense{suffix}")(x)
        x = make.stock("Dropout", dropout, name=f"dropout{suffix}")(x)
    return x if widths else make.stock("Dropout", dropout, name="dropout")(x)


def stock_copy(network, params: dict):
    """The same network built from stock Keras layers only, holding `network`'s weights.

    The fused batch-norm layer is a training-time detail: its weights map one to one onto
    keras.layers.BatchNormalization's, so this copy computes the same function, and a file saved
    from it loads with plain Keras, without this project.
    """
    stock = build_model(params, "keras")
    stock.set_weights(network.get_weights())
    return stock


def load_model(path):
    """A model saved by either implementation (registers the fast layers first)."""
    import keras

    import mnist3d.training.layers  # noqa: F401  (registers FastConv3D and FusedBatchNormalization for loading)

    return keras.saving.load_model(path)
