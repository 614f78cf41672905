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

INPUT_EDGE = 16
LAYER_LISTS = ("filters", "kernel_sizes", "pool_sizes")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# Parameters that describe how many runs there are, not how one run trains: changing them must not
# retrain the runs that already exist.
NOT_TRAINING_PARAMS = ("replicates",)


class RunConfigError(ValueError):
    """A models file that cannot be run; the message names the file, the run and the field."""


class LayerError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Run:
    entry: str
    replicate: int
    params: dict = field(hash=False)

    @property
    def seed(self) -> int:
        return self.params["seed"]

    @property
    def id(self) -> str:
        return f"{self.entry}/rep{self.replicate}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a duplicated run name must be an error."""


def _construct_unique_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise RunConfigError(
                f"{loader.name}: line {key_node.start_mark.line + 1}: "
                f"'{key}' is defined twice; every run name must be unique"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RunConfigError(f"{path}: file not found") from None
    loader = _UniqueKeyLoader(text)
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


def load_runs(models_path: str | Path, run_schema_path: str | Path, models_schema_path: str | Path) -> list[Run]:
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
    _validate(defaults, partial_schema, f"{models_path}: defaults")

    runs = []
    for entry, overrides in models["runs"].items():
        where = f"{models_path}: run '{entry}'"
        try:
            check_name(str(entry))
        except ValueError as error:
            raise RunConfigError(f"{where}: {error}") from None
        params = {**defaults, **(overrides or {})}
        _validate(params, run_schema, where)
        try:
            check_layers(params)
        except LayerError as error:
            raise RunConfigError(f"{where}, field '{error.field}': {error}") from None
        params = {**params, **{k: v for k, v in OPTIONAL_DEFAULTS.items() if k not in params}}
        for replicate in range(1, params["replicates"] + 1):
            run_params = {k: v for k, v in params.items() if k not in NOT_TRAINING_PARAMS}
            run_params["seed"] = params["seed"] + replicate - 1
            runs.append(Run(entry=str(entry), replicate=replicate, params=run_params))
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
