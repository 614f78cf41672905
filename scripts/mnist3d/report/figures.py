"""The table of figures: every file the reports show, with its name, group, title and caption.

One row per figure (and per table that `snakemake --report` shows). The rules wrap each such output
in `report(..., caption=...)` with the caption file named here; the report adapter, the report's
sections and its figure captions take the figures' names, titles and captions from here too.

The caption text lives in captions/<key>.rst, where <key> is "<group>_<name>": Snakemake renders
those files (Jinja, then reStructuredText) for `snakemake --report`, and `caption` reads the same
files for results/report.html, so each figure is described once. A caption may use
``literal`` text and the wildcards of its rule, written `{{ snakemake.wildcards.entry }}`.

Standard library only: the rules read this table while Snakemake parses the workflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

CAPTIONS = Path(__file__).resolve().parent / "captions"
GROUPS = ("run", "entry", "comparison", "digits", "sweep", "data", "metrics")


@dataclass(frozen=True)
class Figure:
    group: str  # one of GROUPS: which rule draws it, and where results/report.html shows it
    name: str  # the rule's output name and the key in report.sections.ReportImages
    title: str  # its heading in results/report.html
    label: str = ""  # its "figure" label in `snakemake --report`; "" where the rule gives none

    @property
    def key(self) -> str:
        return f"{self.group}_{self.name}"

    @property
    def caption_path(self) -> Path:
        return CAPTIONS / f"{self.key}.rst"


FIGURES = {
    figure.key: figure
    for figure in (
        Figure("run", "curves", "Learning curves", "learning curves"),
        Figure("run", "confusion", "Confusion matrix", "confusion matrix"),
        Figure("run", "per_class", "Accuracy per digit", "accuracy per digit"),
        Figure("entry", "replicates", "Mean curves across replicates"),
        Figure("comparison", "test_accuracy", "Test accuracy per entry", "test accuracy per entry"),
        Figure("comparison", "accuracy_curves", "Accuracy curves of every run", "accuracy curves"),
        Figure("comparison", "loss_curves", "Loss curves of every run", "loss curves"),
        Figure(
            "comparison",
            "measure_bars",
            "Time, validation accuracy and validation loss",
            "time, validation accuracy and loss",
        ),
        Figure("comparison", "grouped_by_time", "The same measures, fastest run first", "grouped by training time"),
        Figure("comparison", "time_vs_accuracy", "Test accuracy against training time", "test accuracy against time"),
        Figure("comparison", "cost", "Accuracy against cost, per entry", "accuracy against cost"),
        Figure("digits", "examples", "What the data looks like"),
        Figure("digits", "misclassified", "What the best run gets wrong", "mistakes of the best run"),
        Figure("sweep", "accuracy", "Test accuracy against the fields of a sweep"),
        Figure("sweep", "parallel", "Parallel coordinates of a sweep"),
        Figure("sweep", "halving", "Successive halving: every run and the rung cut-offs"),
        Figure("data", "summary", "Data set summary"),
        Figure("metrics", "table", "Metrics of every run"),
        Figure("metrics", "entries", "Metrics per entry"),
    )
}


def figure(key: str) -> Figure:
    """The figure `key` ("run_curves"); an unknown key is an error that lists the known ones."""
    try:
        return FIGURES[key]
    except KeyError:
        raise KeyError(f"no figure {key!r} in mnist3d.report.figures; known: {', '.join(FIGURES)}") from None


def group(name: str) -> list[Figure]:
    """The figures of one group, in the order the report shows them."""
    if name not in GROUPS:
        raise KeyError(f"no figure group {name!r}; known: {', '.join(GROUPS)}")
    return [figure for figure in FIGURES.values() if figure.group == name]


def names(group_name: str) -> list[str]:
    """The names of the figures of one group ("run" -> ["curves", "confusion", "per_class"])."""
    return [figure.name for figure in group(group_name)]


def caption_path(key: str) -> str:
    """The caption file of figure `key`, for `report(..., caption=...)` in the rules."""
    return str(figure(key).caption_path)


def label(key: str) -> str:
    """The "figure" label of figure `key` in `snakemake --report`."""
    return figure(key).label


LITERAL = re.compile(r"``(.+?)``", re.DOTALL)
WILDCARD = re.compile(r"\{\{\s*snakemake\.wildcards\.(\w+)\s*\}\}")
# Jinja, roles and links, emphasis, substitutions: what `caption` would show as written.
UNREAD = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|`[^`]*`_?|\*\*?[^*]+\*|\|\w+\|")


def caption(key: str, **wildcards: str) -> list[dict]:
    """The caption of figure `key` for results/report.html: its .rst text as one paragraph of parts,
    each {"text": ..., "literal": bool} (``literal`` spans to be shown as code), with each
    `{{ snakemake.wildcards.X }}` replaced by the value given for X. The parts are plain text, for
    the template to escape.

    A wildcard without a value, or any other Jinja or reStructuredText markup that this reading
    would show as written, is an error naming the file.
    """
    path = figure(key).caption_path
    text = " ".join(path.read_text().split())
    parts = []
    for index, piece in enumerate(LITERAL.split(text)):
        literal = index % 2 == 1
        if not literal:
            # Checked before the values go in: a run or sweep name is text, never markup.
            unread = UNREAD.search(WILDCARD.sub("", piece))
            if unread:
                raise ValueError(f"{path}: markup the HTML report cannot show: {unread.group(0)!r}")
            piece = WILDCARD.sub(lambda match: _wildcard(path, match.group(1), wildcards), piece)
        if piece:
            parts.append({"text": piece, "literal": literal})
    return parts


def _wildcard(path: Path, name: str, wildcards: dict) -> str:
    if name not in wildcards:
        raise KeyError(f"{path} uses wildcard {name!r}; give its value (given: {', '.join(wildcards) or 'none'})")
    return str(wildcards[name])
