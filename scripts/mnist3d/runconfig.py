"""Reads config/models.yaml into the list of training runs, rejecting bad entries by name and field.

Imported by the Snakefile at parse time, so it must stay free of TensorFlow and fast.
"""

from __future__ import annotations

import difflib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import yaml

from mnist3d.sweeps import SweepError, check_no_clash, expand_sweeps

INPUT_EDGE = 16
LAYER_LISTS = ("filters", "kernel_sizes", "pool_sizes")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Parameters that describe how many runs there are, not how one run trains: changing them must not
# retrain the runs that already exist.
NOT_TRAINING_PARAMS = ("replicates",)
# Runs a models file may ask for unless config/config.yaml's max_runs says otherwise: enough for
# real sweeps, few enough that a typo (replicates: 100000) fails in a second instead of hanging.
DEFAULT_MAX_RUNS = 500


class RunConfigError(ValueError):
    """A models file that cannot be run; the message names the file, the run and the field."""


class LayerError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


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
        return f"{self.entry}/rep{self.replicate}"


class _ModelsLoader(yaml.SafeLoader):
    """YAML as people write a models file.

    - Mapping keys stay the text written: a run named 064, 1e-3, yes or null keeps that name (YAML 1.1
      would read 52, '1e-3', True and None).
    - Numbers as YAML 1.2 reads them: `1e-3` and `5E-4` are floats (YAML 1.1 needs a dot), `064`
      is 64, not octal.
    - A key given twice is an error (PyYAML would keep the last silently).
    """


_ModelsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (
        "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ModelsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
_ModelsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+.0123456789"),
)


def _construct_int(loader, node):
    return int(loader.construct_scalar(node))


_ModelsLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_mapping(loader, node, deep=False):
    # Keys pulled in by a merge (`<<: *base`) come first and may be overridden by the keys written
    # in the mapping itself; a key written twice there is an error.
    written_count = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)
    merged_count = len(node.value) - written_count
    mapping, written = {}, set()
    for index, (key_node, value_node) in enumerate(node.value):
        is_plain_scalar = isinstance(key_node, yaml.ScalarNode) and key_node.style is None
        key = key_node.value if is_plain_scalar else loader.construct_object(key_node, deep=deep)
        if index >= merged_count:
            if key in written:
                raise RunConfigError(
                    f"{loader.name}: line {key_node.start_mark.line + 1}: '{key}' is written twice in "
                    "one mapping; every run name and every field must be unique"
                )
            written.add(key)
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_ModelsLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RunConfigError(f"{path}: file not found") from None
    loader = _ModelsLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data() or {}
    except yaml.YAMLError as error:
        raise RunConfigError(f"{path}: not valid YAML: {error}") from None
    finally:
        loader.dispose()


def check_name(name: str) -> None:
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(
            f"{name!r} is not a safe directory name: use letters, digits, '-', '_' and '.', "
            "start with a letter, digit or '_', and never '..'"
        )


def spatial_sizes(pool_sizes: list[int], input_edge: int = INPUT_EDGE) -> list[int]:
    """Grid edge after each pooling block ('same' padding: ceil); raises when a block would pool a
    grid already shrunk to 1 voxel (a pool of 1 there is allowed: it changes nothing)."""
    sizes = []
    edge = input_edge
    for index, pool in enumerate(pool_sizes):
        if edge == 1 and pool > 1:
            raise LayerError(
                "pool_sizes",
                f"pool_sizes {pool_sizes} leave nothing to pool at block {index + 1}: the {input_edge}^3 grid "
                f"is already 1 voxel (product of the pools before it {math.prod(pool_sizes[:index])} >= {input_edge})"
            )
        edge = math.ceil(edge / pool)
        sizes.append(edge)
    return sizes


def check_layers(params: dict) -> None:
    lengths = {name: len(params[name]) for name in LAYER_LISTS}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        counts = Counter(lengths.values())
        odd_one = min(lengths, key=lambda name: counts[lengths[name]])  # the list whose length is rarest
        raise LayerError(odd_one, f"filters, kernel_sizes and pool_sizes need one value per block: {described}")
    spatial_sizes(params["pool_sizes"])


def _schema_error_field(error: jsonschema.ValidationError, allowed: list[str]) -> tuple[str, str]:
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(allowed))
        name = unknown[0] if unknown else "?"
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; known fields: {', '.join(allowed)}"
        return name, f"unknown field{hint}"
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
    if kind == "number":
        return float(value)
    if kind == "integer":
        return int(value)
    if kind == "array":
        return [canonical(item, schema.get("items", {})) for item in value]
    return value


def canonical_params(params: dict, run_schema: dict) -> dict:
    """The run's parameters, keys sorted and values in their schema types (see `canonical`)."""
    properties = run_schema["properties"]
    return {name: canonical(params[name], properties.get(name, {})) for name in sorted(params)}


def _check_finite(params: dict, where: str) -> None:
    """JSON Schema's `number` admits NaN and infinity, which no setting means."""
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(item, float) and not math.isfinite(item) for item in values):
            raise RunConfigError(f"{where}, field '{name}': {value!r} is not a finite number")


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
    try:
        check_layers(params)
    except LayerError as error:
        raise RunConfigError(f"{where}, field '{error.field}': {error}") from None
    params = canonical_params({**OPTIONAL_DEFAULTS, **params}, run_schema)
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
            field_types={name: spec.get("type") for name, spec in run_schema["properties"].items()},
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
