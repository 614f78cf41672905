"""The training levers: optimizer, weight decay, learning-rate schedules and label smoothing."""

import math

import keras
import numpy as np
import pytest

from mnist3d.config.runs import OPTIONAL_DEFAULTS
from mnist3d.training import optimizers

PARAMS = {
    "filters": [4, 8],
    "kernel_sizes": [3, 3],
    "pool_sizes": [2, 2],
    "dense": 16,
    "dropout": 0.2,
    "learning_rate": 0.01,
    "epochs": 10,
    "batch_size": 16,
    "seed": 5,
    **OPTIONAL_DEFAULTS,
}
STEPS_PER_EPOCH = 5


def config(optimizer) -> dict:
    """The optimizer's configuration without its name, which Keras numbers within a process."""
    return {name: value for name, value in optimizer.get_config().items() if name != "name"}


@pytest.mark.parametrize("levers", [{}, {"optimizer": "adam", "weight_decay": 0.0, "label_smoothing": 0.0}])
def test_default_levers_are_the_notebooks_adam_and_loss(levers):
    constant = optimizers.make_optimizer({**PARAMS, **levers}, STEPS_PER_EPOCH)
    assert type(constant) is keras.optimizers.Adam
    assert config(constant) == config(keras.optimizers.Adam(learning_rate=0.01))
    assert constant.weight_decay is None  # no decay step at all
    cosine = optimizers.make_optimizer({**PARAMS, **levers, "lr_schedule": "cosine"}, STEPS_PER_EPOCH)
    assert config(cosine) == config(
        keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.CosineDecay(0.01, decay_steps=50))
    )
    assert optimizers.make_loss({**PARAMS, **levers}) == "sparse_categorical_crossentropy"


@pytest.mark.parametrize(
    "levers, kind, weight_decay, settings",
    [
        ({"optimizer": "adamw", "weight_decay": 0.004}, keras.optimizers.AdamW, 0.004, {}),
        # AdamW needs a number: 0 decays nothing.
        ({"optimizer": "adamw"}, keras.optimizers.AdamW, 0.0, {}),
        ({"optimizer": "adam", "weight_decay": 0.01}, keras.optimizers.Adam, 0.01, {}),
        ({"optimizer": "sgd"}, keras.optimizers.SGD, None, {"momentum": 0.9, "nesterov": True}),
        ({"optimizer": "sgd", "weight_decay": 1e-4}, keras.optimizers.SGD, 1e-4, {"momentum": 0.9, "nesterov": True}),
    ],
)
def test_optimizer_class_and_settings(levers, kind, weight_decay, settings):
    optimizer = optimizers.make_optimizer({**PARAMS, **levers}, STEPS_PER_EPOCH)
    assert type(optimizer) is kind
    assert optimizer.weight_decay == weight_decay
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert {name: optimizer.get_config()[name] for name in settings} == settings


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_weight_decay_shrinks_the_kernels_alone(optimizer):
    from mnist3d.training.model import build_model

    network = build_model({**PARAMS, "dense": 8}, "fast")
    decaying = optimizers.make_optimizer({**PARAMS, "optimizer": optimizer, "weight_decay": 0.1}, STEPS_PER_EPOCH)
    variables = network.trainable_variables
    for index, variable in enumerate(variables):  # non-zero everywhere, so that a decay would show
        variable.assign(np.full(variable.shape, 0.5 + index, dtype="float32"))
    before = [keras.ops.convert_to_numpy(variable) for variable in variables]
    # Zero gradients: the optimizer's own update is zero, what changes is the weight decay alone.
    decaying.apply_gradients([(keras.ops.zeros_like(variable), variable) for variable in variables])
    names = {variable.name for variable in variables}
    assert {"kernel", "bias", "gamma", "beta"} <= names
    for variable, old in zip(variables, before, strict=True):
        new = keras.ops.convert_to_numpy(variable)
        if variable.name == "kernel":
            np.testing.assert_allclose(new, old * (1 - 0.1 * 0.01), rtol=1e-6, err_msg=variable.path)
        else:
            np.testing.assert_array_equal(new, old, err_msg=variable.path)


def rates(params: dict, steps: list[int]) -> list[float]:
    schedule = optimizers.learning_rate({**PARAMS, **params}, STEPS_PER_EPOCH)
    return [float(schedule(step)) for step in steps]


def test_warmup_cosine_rises_from_zero_then_decays_to_zero():
    # 10 epochs of 5 steps, 2 of them warm-up: steps 0-10 ramp up, 10-50 decay.
    got = rates({"lr_schedule": "warmup_cosine", "warmup_epochs": 2}, [0, 5, 10, 30, 50, 60])
    assert got == pytest.approx([0.0, 0.005, 0.01, 0.005, 0.0, 0.0], abs=1e-9)


def test_one_cycle_rises_from_a_25th_and_ends_at_a_250000th():
    peak, end = 0.01, 0.01 / 25e4
    got = rates({"lr_schedule": "one_cycle", "warmup_epochs": 3}, [0, 15, 15 + 35 // 2, 50])
    middle = end + (peak - end) * 0.5 * (1 + math.cos(math.pi * (35 // 2) / 35))
    assert got == pytest.approx([peak / 25, peak, middle, end], rel=1e-5)


def test_the_optimizer_follows_its_schedule_by_step():
    optimizer = optimizers.make_optimizer(
        {**PARAMS, "optimizer": "sgd", "lr_schedule": "warmup_cosine", "warmup_epochs": 2}, STEPS_PER_EPOCH
    )
    optimizer.iterations.assign(5)
    assert float(optimizer.learning_rate) == pytest.approx(0.005)


def test_cosine_schedule_is_unchanged():
    assert rates({"lr_schedule": "cosine"}, [0, 25, 50]) == pytest.approx([0.01, 0.005, 0.0], abs=1e-9)


def test_smoothed_loss_against_a_hand_computation():
    probabilities = np.array([[0.1, 0.8] + [0.0125] * 8, [0.1] * 10], dtype="float32")
    labels = np.array([1, 2])
    loss = optimizers.make_loss({**PARAMS, "label_smoothing": 0.1})
    # Targets: 0.9 on the label plus 0.01 on every class.
    first = -(0.91 * math.log(0.8) + 0.01 * math.log(0.1) + 8 * 0.01 * math.log(0.0125))
    second = -math.log(0.1)  # uniform predictions: the targets sum to 1
    assert float(loss(labels, probabilities)) == pytest.approx((first + second) / 2, rel=1e-6)
    assert float(loss(labels[:, None], probabilities)) == pytest.approx((first + second) / 2, rel=1e-6)
    unsmoothed = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    assert float(optimizers.SmoothedSparseCrossentropy(0.0)(labels, probabilities)) == pytest.approx(
        float(unsmoothed), rel=1e-6
    )
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is optimizers.SmoothedSparseCrossentropy and again.label_smoothing == 0.1
