"""What a run trains with: its optimizer, learning-rate schedule and loss, from its training levers.

With every lever at its default (mnist3d.config.levers) these are exactly the notebook's: Adam at a
constant (or cosine-decayed) rate and the sparse categorical cross-entropy.

- Weight decay is decoupled (Loshchilov & Hutter 2019, Keras' `weight_decay`: each step shrinks a
  kernel by weight_decay times the step's learning rate, apart from the gradient) and decays the
  kernels only: biases and batch-norm scales and offsets set no scale that decay should shrink.
  adam with a weight decay is therefore AdamW in effect.
- Schedules count optimizer steps, steps_per_epoch * epochs in all, and are pure functions of the
  optimizer's step counter, which the checkpoint restores: a resumed run goes on with the same rates.
- Label smoothing spreads a share of each label's probability evenly over the classes. The labels
  stay integers (the data pipeline, the accuracy metric and the predictions are unchanged); the loss
  makes them one-hot and smooths them. That loss is the run's loss, val_loss and test_loss alike, so
  the three stay comparable with each other (with smoothing, not with runs without it).

This module imports Keras when it is imported: the training code imports it inside its functions.
"""

from __future__ import annotations

import keras

from mnist3d.config.levers import WARMUP_SCHEDULES, with_levers
from mnist3d.grid import CLASSES

# Each optimizer's Keras class and its fixed settings.
OPTIMIZERS = {
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
    "sgd": ("SGD", {"momentum": 0.9, "nesterov": True}),
}
# Weight decay leaves out variables whose name contains one of these: the biases and the batch-norm
# gamma and beta (Keras' names), so that of the trainable variables only the kernels decay.
NOT_DECAYED = ("bias", "gamma", "beta")
# One-cycle's rates relative to its peak (PyTorch's OneCycleLR: div_factor 25, final_div_factor 1e4).
ONE_CYCLE_START = 1 / 25
ONE_CYCLE_END = 1 / 25e4


def make_optimizer(params: dict, steps_per_epoch: int):
    """The run's optimizer, at the rate or schedule `learning_rate` gives."""
    params = with_levers(params)
    class_name, settings = OPTIMIZERS[params["optimizer"]]
    # None, Keras' default, skips the decay step (adam and sgd without decay train as they always
    # did); AdamW refuses None, and decays by 0 as a no-op.
    decay = params["weight_decay"] if params["weight_decay"] or class_name == "AdamW" else None
    optimizer = getattr(keras.optimizers, class_name)(
        learning_rate=learning_rate(params, steps_per_epoch), weight_decay=decay, **settings)
    if decay is not None:
        optimizer.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
    return optimizer


def learning_rate(params: dict, steps_per_epoch: int):
    """The run's learning rate, or its schedule over optimizer steps (ReduceLROnPlateau, a callback,
    lowers a constant one)."""
    params = with_levers(params)
    rate, schedule = params["learning_rate"], params["lr_schedule"]
    steps = params["epochs"] * steps_per_epoch
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=steps)
    if schedule in WARMUP_SCHEDULES:
        start, end = (0.0, 0.0) if schedule == "warmup_cosine" else (rate * ONE_CYCLE_START, rate * ONE_CYCLE_END)
        warmup = params["warmup_epochs"] * steps_per_epoch
        # A linear ramp from `start` to `rate` over the warm-up steps, then a cosine from `rate`
        # to `end` (alpha is the end's share of the peak) over the remaining steps.
        return keras.optimizers.schedules.CosineDecay(
            start, decay_steps=steps - warmup, alpha=end / rate, warmup_target=rate, warmup_steps=warmup)
    return rate


def make_loss(params: dict):
    """The run's loss: the notebook's sparse categorical cross-entropy, smoothed with label_smoothing."""
    smoothing = with_levers(params)["label_smoothing"]
    return SmoothedSparseCrossentropy(smoothing) if smoothing else "sparse_categorical_crossentropy"


@keras.saving.register_keras_serializable(package="mnist3d")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against smoothed one-hot targets: (1 - label_smoothing) on the
    label plus label_smoothing / CLASSES on every class. Keras' SparseCategoricalCrossentropy has no
    label smoothing; this is its CategoricalCrossentropy(label_smoothing) on the one-hot labels.
    Registered, so that a compiled model that holds it (a failed run's) saves and loads."""

    def __init__(self, label_smoothing: float, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        # Labels of shape (batch,) or (batch, 1), as the sparse loss takes them.
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), keras.ops.shape(y_pred)[:-1])
        targets = keras.ops.one_hot(labels, CLASSES, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(targets, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
