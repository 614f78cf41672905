"""The optional levers added after the first release, and their defaults: today's network and training.

A run's canonical parameters (its identity: Snakemake retrains a run when their text changes) leave
a lever out while it holds its default, so adding a lever never changes an existing run. The
training code reads every lever through `with_levers`, which puts the defaults back.

Plain data, imported by the config (at parse time) and by training.
"""

from __future__ import annotations

LEVER_DEFAULTS = {
    # Per block.
    "convs_per_block": 1,
    "activation": "relu",
    "batch_norm": True,
    "pooling": "max",
    "residual": False,
    # Head.
    "head": "flatten",
    # Training.
    "optimizer": "adam",
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "warmup_epochs": 0,
}

# Learning-rate schedules that warm up, and the share of the epochs they warm up for when
# warmup_epochs is not given (one-cycle as Smith & Topin 2019 and PyTorch's OneCycleLR: 30 %).
WARMUP_SCHEDULES = {"warmup_cosine": 0.1, "one_cycle": 0.3}
# AdamW's weight decay when none is given: Keras' own default.
ADAMW_WEIGHT_DECAY = 0.004


def with_levers(params: dict) -> dict:
    """`params` with every lever it leaves out at its default."""
    return {**LEVER_DEFAULTS, **params}


def without_default_levers(params: dict) -> dict:
    """`params` without the levers that hold their default (the run's identity)."""
    # The values are already in their schema types (runs.canonical), so equality is enough.
    return {name: value for name, value in params.items()
            if name not in LEVER_DEFAULTS or value != LEVER_DEFAULTS[name]}


def implied_levers(params: dict) -> dict:
    """Levers whose default depends on another field, made explicit: adamw's weight decay and a
    warm-up schedule's warm-up epochs (at least 1, fewer than the epochs)."""
    implied = {}
    if params.get("optimizer") == "adamw" and "weight_decay" not in params:
        implied["weight_decay"] = ADAMW_WEIGHT_DECAY
    share = WARMUP_SCHEDULES.get(params.get("lr_schedule"))
    if share is not None and "warmup_epochs" not in params and "epochs" in params:
        implied["warmup_epochs"] = max(1, min(round(share * params["epochs"]), params["epochs"] - 1))
    return implied
