"""The notebook's 3D CNN, as stock Keras layers or as the workflow's faster equivalent.

TensorFlow and Keras are imported inside the functions: `check_architecture` runs while Snakemake
parses the workflow, where importing TensorFlow would cost seconds.
"""

from __future__ import annotations

from mnist3d.grid import CLASSES, INPUT_SHAPE
from mnist3d.training.geometry import check_layers, spatial_sizes

IMPLEMENTATIONS = ("fast", "keras")


def check_architecture(params: dict) -> list[int]:
    """The grid edge after each block; ValueError naming the field when the layers cannot be built."""
    check_layers(params)
    return spatial_sizes(params["pool_sizes"])


def build_model(params: dict, implementation: str = "fast"):
    """The notebook's network, uncompiled: per block Conv3D(relu, same) + BatchNormalization +
    MaxPooling3D(same), then Flatten, Dense(relu), Dropout, Dense(10, softmax).

    "keras" uses exactly the notebook's layers; "fast" swaps BatchNormalization for
    layers.FusedBatchNormalization (same weights, same function, fused kernels). Both have the same
    layer names and weights, so weights copy between them. With params["mixed_precision"] the layers
    compute in float16 and the classifier stays float32.
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, not {implementation!r}")
    check_architecture(params)
    import keras

    if implementation == "fast":
        from mnist3d.training.layers import FusedBatchNormalization as BatchNormalization
    else:
        BatchNormalization = keras.layers.BatchNormalization
    policy = "mixed_float16" if params.get("mixed_precision") else "float32"
    if policy == "mixed_float16" and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            raise ValueError("mixed_precision needs a GPU: TensorFlow has no float16 MaxPool3D kernel for CPUs")

    inputs = keras.Input(shape=INPUT_SHAPE, name="grid")
    x = inputs
    blocks = zip(params["filters"], params["kernel_sizes"], params["pool_sizes"])
    for block, (filters, kernel_size, pool_size) in enumerate(blocks, start=1):
        x = keras.layers.Conv3D(filters, kernel_size, activation="relu", padding="same",
                                dtype=policy, name=f"conv{block}")(x)
        x = BatchNormalization(dtype=policy, name=f"batchnorm{block}")(x)
        x = keras.layers.MaxPooling3D(pool_size, padding="same", dtype=policy, name=f"maxpool{block}")(x)
    x = keras.layers.Flatten(dtype=policy, name="flatten")(x)
    x = keras.layers.Dense(params["dense"], activation="relu", dtype=policy, name="dense")(x)
    x = keras.layers.Dropout(params["dropout"], dtype=policy, name="dropout")(x)
    outputs = keras.layers.Dense(CLASSES, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"cnn3d_{implementation}")


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

    import mnist3d.training.layers  # noqa: F401  (registers FusedBatchNormalization for deserialisation)

    return keras.saving.load_model(path)
