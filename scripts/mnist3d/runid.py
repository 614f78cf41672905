"""A run's id, defined once: `entry/repN`, which is also its folder under results/runs/ and logs/.

The rules build their paths from RUN_ID; `run_id` writes an id and `parse_run_id` reads one back.
Standard library only: the Snakefile, the training code and the scripts all use it.
"""

from __future__ import annotations

import re

# A run name is a directory name: letters, digits, '_', '.', '-', not starting with '.' or '-'
# (mnist3d.config.names.check_name also refuses '..').
NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
RUN_ID = "{entry}/rep{replicate}"
RUN_ID_PATTERN = re.compile(rf"^({NAME_PATTERN})/rep(\d+)$")


def run_id(entry: str, replicate: int | str) -> str:
    return RUN_ID.format(entry=entry, replicate=replicate)


def parse_run_id(text: str) -> tuple[str, int]:
    """(entry, replicate) of a run id written by `run_id`."""
    match = RUN_ID_PATTERN.match(text)
    if match is None or ".." in match.group(1):
        raise ValueError(f"{text!r} is not a run id (entry/repN)")
    return match.group(1), int(match.group(2))
