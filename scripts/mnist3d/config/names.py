"""Names of runs, defined once: what a run name may hold, a sweep combination's name and value
labels, and the "did you mean" hint for a mistyped field. A run's id is in mnist3d.runid.

Parse-time code: standard library only.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Collection, Mapping

from mnist3d.runid import NAME_PATTERN

SAFE_NAME = re.compile(f"^{NAME_PATTERN}$")
MAX_NAME_LENGTH = 100
UNSAFE_CHARACTERS = re.compile(r"[^A-Za-z0-9_.-]+")


def check_name(name: str) -> None:
    """ValueError, saying what is allowed, when `name` cannot be a run name."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or ".." in name:
        raise ValueError(
            f"{name!r} is not a safe directory name: use letters, digits, '-', '_' and '.', "
            "start with a letter, digit or '_', and never '..'"
        )


def unsafe_reason(name) -> str | None:
    """Why `name` cannot be (part of) a run name, or None when it can."""
    try:
        check_name(name)
    except ValueError as error:
        return str(error)
    return None


def closest(name: str, known: Collection[str]) -> str | None:
    """The known name closest to a mistyped `name`, if one is close."""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return close[0] if close else None


def unknown_field(name: str, known: Collection[str]) -> str:
    """'unknown field' with the closest known field as a hint, or the list of known fields."""
    close = closest(name, known)
    if close:
        return f"unknown field (did you mean '{close}'?)"
    return f"unknown field; known fields: {', '.join(known)}"


def value_text(value) -> str:
    """The shortest exact text of a value, safe inside a directory name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        mantissa, _, exponent = repr(value).partition("e")
        return f"{mantissa}e{int(exponent)}" if exponent else mantissa
    if isinstance(value, (list, tuple)):
        return "-".join(value_text(item) for item in value) or "empty"
    if value is None:
        return "null"
    return UNSAFE_CHARACTERS.sub("_", str(value)).replace("..", "._") or "empty"


def entry_name(sweep: str, varied: Mapping[str, str]) -> str:
    """A sweep combination's entry name: the sweep, then each varied key and its text, keys sorted;
    past MAX_NAME_LENGTH its readable start and 8 hex digits of a digest of the full name."""
    name = sweep + "".join(f".{key}-{text}" for key, text in sorted(varied.items()))
    if len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME_LENGTH - 9].rstrip('._-')}.{digest}"


def ordered_labels(labels) -> list[str]:
    """Distinct value labels (value_text), numerically when every one is a number, else in first-seen order."""
    distinct = list(dict.fromkeys(str(label) for label in labels))
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return distinct
