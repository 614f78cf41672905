"""Reads a models file as people write it (YAML 1.2 numbers, keys as written, no key twice)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml


class RunConfigError(ValueError):
    """A models file that cannot be run; the message names the file, the run and the field."""


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
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise RunConfigError(f"{path}: is a folder; name the models file inside it") from None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise RunConfigError(f"{path}: line {line}: not UTF-8 text ({error.reason}); save the file as UTF-8") from None
    except OSError as error:
        raise RunConfigError(f"{path}: cannot be read: {error.strerror}") from None
    loader = _ModelsLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data() or {}
    except yaml.YAMLError as error:
        raise RunConfigError(f"{path}: not valid YAML: {error}") from None
    finally:
        loader.dispose()
