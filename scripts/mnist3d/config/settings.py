"""The workflow's settings (config/config.yaml, --configfile, --config) checked against their schema,
each mistake as one line that names the field.

Imported by the Snakefile at parse time: standard library, jsonschema and the package's plain modules.
"""

from __future__ import annotations

import math

import jsonschema

from mnist3d.config.names import unknown_field
from mnist3d.grid import CLASSES

WHERE = "workflow settings (config/config.yaml, --configfile or --config)"


class SettingsError(ValueError):
    """Settings that cannot run; the message names the field."""


def read_command_line_values(settings: dict, schema: dict) -> dict:
    """`settings` with each text where the schema wants a number or a boolean read as one.

    Snakemake reads `--config data='{validation_fraction: 0.2}'` with every value inside the
    braces a string ('0.2'); a text that is not such a value is left for the check to name.
    """
    properties = schema.get("properties", {})
    read = {}
    for name, value in settings.items():
        spec = properties.get(name, {})
        if isinstance(value, dict):
            read[name] = read_command_line_values(value, spec)
        elif isinstance(value, str):
            read[name] = _typed(value, spec.get("type"))
        else:
            read[name] = value
    return read


def _typed(text: str, kind: str | None):
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            return number if math.isfinite(number) else text  # 'nan', 'inf': no setting means them
    except ValueError:
        return text
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def check_settings(settings: dict, schema: dict) -> None:
    """SettingsError naming a wrong field of `settings`: the first by its dotted name, so the same
    mistakes always give the same line."""
    _check_finite(settings, [])
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(settings), key=lambda error: [str(part) for part in error.path])
    if not errors:
        return
    error = errors[0]
    path = [str(part) for part in error.path]
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        name = ".".join([*path, unknown[0]])
        raise SettingsError(f"{WHERE}, field '{name}': {unknown_field(unknown[0], allowed)}")
    name = ".".join(path) or "top level"
    raise SettingsError(f"{WHERE}, field '{name}': {error.message}")



def _check_finite(settings: dict, path: list[str]) -> None:
    """JSON Schema's `number` admits NaN and infinity (`.nan`, `.inf` in YAML), which no setting means."""
    for name, value in settings.items():
        if isinstance(value, dict):
            _check_finite(value, [*path, str(name)])
        elif isinstance(value, float) and not math.isfinite(value):
            raise SettingsError(f"{WHERE}, field '{'.'.join([*path, str(name)])}': {value!r} is not a finite number")


def check_generated_split(data: dict) -> None:
    """SettingsError when the embedded data set's validation split cannot be made: it is stratified
    over the source digits (a digit's rotated copies stay on its side), so each side needs at least
    one digit per class (scikit-learn's rule: the validation side gets ceil(fraction x digits))."""
    digits = data["generated"]["train_per_class"] * CLASSES
    fraction = data["validation_fraction"]
    validation = math.ceil(fraction * digits)
    if min(validation, digits - validation) < CLASSES:
        raise SettingsError(
            f"{WHERE}, field 'data.generated.train_per_class': {digits} training digits split at "
            f"data.validation_fraction {fraction:g} leave {validation} for validation and "
            f"{digits - validation} for training; each side needs one digit per class ({CLASSES}), so "
            "raise train_per_class or move validation_fraction towards 0.5"
        )
