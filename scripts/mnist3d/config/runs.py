"""Reads config/models.yaml into the list of training runs, rejecting bad entries by name and field.

Imported by the Snakefile at parse time, so it must stay free of TensorFlow and fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema

from mnist3d.config.levers import WARMUP_SCHEDULES, implied_levers, without_default_levers
from mnist3d.config.names import check_name, unknown_field
from mnist3d.config.sweeps import SweepError, check_no_clash, expand_sweeps
from mnist3d.config.yamlfile import RunConfigError, read_yaml
from mnist3d.runid import run_id
from mnist3d.training.geometry import LayerError, check_layers

# Parameters that describe how many runs there are, not how one run trains: changing them must not
# retrain the runs that already exist.
NOT_TRAINING_PARAMS = ("replicates",)
# Runs a models file may ask for unless config/config.yaml's max_runs says otherwise: enough for
# real sweeps, few enough that a typo (replicates: 100000) fails in a second instead of hanging.
DEFAULT_MAX_RUNS = 500
# Replicate k trains with seed + k - 1, which Keras hands to NumPy: at most 2^32 - 1.
MAX_SEED = 2**32 - 1
# A hand-written run name names files such as results/plots/entries/NAME.png, written first as
# .NAME.<8 hex digits>.png (mnist3d.atomic): 240 keeps each within a file name's 255 characters.
MAX_RUN_NAME_LENGTH = 240


@dataclass(frozen=True)
class Run:
    """One training run: replicate `replicate` of entry `entry`, with its canonical parameters.

    `sweep` names the sweep an entry was expanded from, and `varied` holds that combination's
    values as short labels, by field; both are empty for a hand-written entry.
    """

    entry: str
    replicate: int
    params: dict = field(hash=False)
    sweep: str | None = None
    varied: dict = field(default_factory=dict, hash=False)

    @property
    def seed(self) -> int:
        return self.params["seed"]

    @property
    def id(self) -> str:
        return run_id(self.entry, self.replicate)


def _schema_error_field(error: jsonschema.ValidationError, allowed: list[str]) -> tuple[str, str]:
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(allowed))
        name = unknown[0] if unknown else "?"
        return name, unknown_field(name, allowed)
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        return (missing[0] if missing else "?"), "missing (set it in the entry or in defaults)"
    return ".".join(str(part) for part in error.path) or "?", error.message


def _validate(instance: dict, schema: dict, where: str) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        name, message = _schema_error_field(errors[0], list(schema["properties"]))
        raise RunConfigError(f"{where}, field '{name}': {message}")


def _models_error(error: jsonschema.ValidationError) -> str:
    """The models file's own shape (not a run's fields) is wrong: where and what, in the user's terms."""
    path = list(error.path)
    if len(path) == 2 and path[0] == "runs":
        return f"run '{path[1]}': must be a mapping of fields (or empty), not {error.instance!r}"
    return f"{'.'.join(str(part) for part in path) or 'top level'}: {error.message}"


def canonical(value, schema: dict):
    """`value` cast to the type its schema names, so that equal settings have one spelling.

    A run's parameters are its identity (Snakemake compares their text to decide what retrains):
    90 and 90.0 of a number field, or 8.0 and 8 of an integer field, must give the same run.
    """
    kind = schema.get("type")
    if isinstance(kind, list):  # dense: one width or a list of widths
        if not isinstance(value, list):
            return canonical(value, {**schema, "type": kind[0]})
        widths = [canonical(item, schema.get("items", {})) for item in value]
        return widths[0] if len(widths) == 1 else widths  # [256] is the same network as 256
    if kind == "number":
        return float(value)
    if kind == "integer":
        return int(value)
    if kind == "array":
        return [canonical(item, schema.get("items", {})) for item in value]
    return value


def canonical_params(params: dict, run_schema: dict) -> dict:
    """The run's parameters, keys sorted, values in their schema types (see `canonical`), and the
    levers at their default left out (mnist3d.config.levers)."""
    properties = run_schema["properties"]
    typed = {name: canonical(params[name], properties.get(name, {})) for name in sorted(params)}
    return without_default_levers(typed)


def check_levers(params: dict, implied: Collection[str] = ()) -> None:
    """Combinations of levers the schema cannot reject alone; LayerError names the field the user
    wrote (not one of the `implied` ones, filled in from the others)."""
    if "warmup_epochs" in params:
        if params.get("lr_schedule") not in WARMUP_SCHEDULES:
            raise LayerError("warmup_epochs", f"warmup_epochs applies to lr_schedule {' or '.join(WARMUP_SCHEDULES)}, "
                                              f"not {params.get('lr_schedule', 'constant')!r}")
        if params["warmup_epochs"] >= params["epochs"]:
            if "warmup_epochs" in implied:
                raise LayerError("epochs", f"lr_schedule {params['lr_schedule']!r} warms up for at least 1 epoch, "
                                           f"so it needs 2 epochs or more, not {params['epochs']}")
            raise LayerError("warmup_epochs", f"warmup_epochs {params['warmup_epochs']} leaves no epoch after the "
                                              f"warm-up of {params['epochs']} epochs")


def _check_finite(params: dict, where: str) -> None:
    """JSON Schema's `number` admits NaN and infinity, which no setting means."""
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, float) and not math.isfinite(item) for item in values):
            raise RunConfigError(f"{where}, field '{name}': {value!r} is not a finite number")


def value_type(spec: dict) -> str | None:
    """The JSON type of a field's values (dense's list of widths counts as its integers)."""
    kind = spec.get("type")
    return kind[0] if isinstance(kind, list) else kind


def count_runs(entries: dict, defaults: dict) -> int:
    """How many runs the entries ask for, read before any is built, so a typo fails fast."""
    total = 0
    for overrides in entries.values():
        replicates = (overrides or {}).get("replicates", defaults.get("replicates", 1))
        # The schema takes 1e3 or 3.0 as a whole number, so they count as such here.
        if isinstance(replicates, float) and replicates.is_integer():
            replicates = int(replicates)
        if isinstance(replicates, int) and not isinstance(replicates, bool) and replicates > 0:
            total += replicates
    return total


def check_run_count(count: int, max_runs: int, where: str, what: str) -> None:
    if count > max_runs:
        raise RunConfigError(
            f"{where}: {what} ask for {count} training runs (entries x replicates), more than "
            f"max_runs = {max_runs}; check for a typo, or raise max_runs in config/config.yaml"
        )


def resolve_entry(entry: str, overrides: dict, defaults: dict, run_schema: dict, where: str,
                  sweep: str | None = None, varied: dict | None = None) -> list[Run]:
    """One entry's runs: defaults and overrides merged, checked, made canonical, one per replicate."""
    params = {**defaults, **(overrides or {})}
    _check_finite(params, where)
    _validate(params, run_schema, where)
    implied = implied_levers(params)
    params = {**params, **implied}
    try:
        check_layers(params)
        check_levers(params, implied)
    except LayerError as error:
        raise RunConfigError(f"{where}, field '{error.field}': {error}") from None
    params = canonical_params({**OPTIONAL_DEFAULTS, **params}, run_schema)
    last_seed = params["seed"] + params["replicates"] - 1
    if last_seed > MAX_SEED:
        raise RunConfigError(
            f"{where}, field 'seed': replicate {params['replicates']} would use seed {last_seed}, above "
            f"{MAX_SEED}, the largest NumPy takes; lower seed or replicates"
        )
    runs = []
    for replicate in range(1, params["replicates"] + 1):
        run_params = {k: v for k, v in params.items() if k not in NOT_TRAINING_PARAMS}
        run_params["seed"] = params["seed"] + replicate - 1
        runs.append(Run(entry=entry, replicate=replicate, params=run_params, sweep=sweep, varied=varied or {}))
    return runs


def load_runs(models_path: str | Path, run_schema_path: str | Path, models_schema_path: str | Path,
              max_runs: int = DEFAULT_MAX_RUNS) -> list[Run]:
    """Every run of the models file, replicates expanded, in file order."""
    models = read_yaml(models_path)
    run_schema = read_yaml(run_schema_path)
    models_schema = read_yaml(models_schema_path)
    try:
        jsonschema.validate(models, models_schema)
    except jsonschema.ValidationError as error:
        raise RunConfigError(f"{models_path}: {_models_error(error)}") from None

    defaults = models.get("defaults") or {}
    partial_schema = {key: value for key, value in run_schema.items() if key != "required"}
    _check_finite(defaults, f"{models_path}: defaults")
    _validate(defaults, partial_schema, f"{models_path}: defaults")

    entries = models.get("runs") or {}
    handwritten = count_runs(entries, defaults)
    check_run_count(handwritten, max_runs, str(models_path), "the runs")
    try:
        sweep_entries = expand_sweeps(
            models.get("sweeps"), str(models_path), max_runs, list(run_schema["properties"]),
            runs_before=handwritten,
            default_replicates=defaults.get("replicates", 1),
            field_types={name: value_type(spec) for name, spec in run_schema["properties"].items()},
        )
        check_no_clash(sweep_entries, entries, str(models_path))
    except SweepError as error:
        raise RunConfigError(str(error)) from None

    runs = []
    for entry, overrides in entries.items():
        where = f"{models_path}: run '{entry}'"
        try:
            check_name(entry)
        except ValueError as error:
            raise RunConfigError(f"{where}: {error}") from None
        if len(entry) > MAX_RUN_NAME_LENGTH:
            raise RunConfigError(f"{where}: the name has {len(entry)} characters; at most {MAX_RUN_NAME_LENGTH}")
        runs.extend(resolve_entry(entry, overrides, defaults, run_schema, where))
    for sweep_entry in sweep_entries:
        where = f"{models_path}: sweep '{sweep_entry.sweep}', combination {sweep_entry.label}"
        runs.extend(resolve_entry(sweep_entry.name, sweep_entry.overrides, defaults, run_schema, where,
                                  sweep=sweep_entry.sweep, varied=sweep_entry.varied))
    if not runs:
        raise RunConfigError(f"{models_path}: no runs; add an entry under runs: or a sweep under sweeps:")
    return runs


# Values of the optional levers when neither the entry nor defaults names them.
OPTIONAL_DEFAULTS = {
    "implementation": "fast",
    "rotation_augmentation": 0.0,
    "early_stopping_patience": 0,
    "lr_schedule": "constant",
    "mixed_precision": False,
    "jit_compile": False,
}
