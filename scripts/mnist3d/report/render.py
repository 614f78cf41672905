"""results/report.html: one self-contained page that says which model is best, how sure that is, and why.

`context.build_context` gathers and formats everything the page shows (testable without
rendering); `render` fills the Jinja2 template (autoescaped); `write_report` writes the file
atomically. Images are embedded as base64 data URIs, the digits of the rotatable 3D views and the
sweeps' parallel coordinates as JSON, and styles and scripts (templates/*.js: tables, views, chart)
are inline, so the page opens from disk or as an e-mail attachment with no network, and reads the
same with scripts off (each figure's PNG stands where a script would draw).
"""

from __future__ import annotations

import json
from pathlib import Path

import jinja2
import numpy as np

from mnist3d.atomic import write_text
from mnist3d.report.context import build_context
from mnist3d.report.sections import ReportImages
from mnist3d.results.halving import read_decision
from mnist3d.results.metrics import read_entry_table, read_metrics, read_table
from mnist3d.results.runfiles import read_history

__all__ = [
    "ReportImages",
    "build_context",
    "render",
    "write_report",
    "write_report_from_files",
]

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(context: dict) -> str:
    return environment().get_template(TEMPLATE).render(**context)


def write_report(path: str | Path, context: dict) -> None:
    write_text(path, render(context))


def split_sizes_from_prepared(prepared) -> dict:
    """Rows in each split of results/data/prepared.npz (y arrays only; the grids are not loaded)."""
    return {
        name: int(len(prepared[f"y_{key}"]))
        for name, key in (("train", "train"), ("validation", "val"), ("test", "test"))
    }


def write_report_from_files(
    output: str | Path,
    *,
    table_path,
    entries_path,
    summary_path,
    prepared_path,
    metrics_paths,
    images: ReportImages,
    halving: list[dict] = (),
    decision_paths=(),
    history_paths=(),
) -> None:
    """results/report.html from the workflow's files (what the Snakemake adapter calls): `halving` the
    halving sweeps' plans, with their decisions and the runs' histories (in `metrics_paths`' order)."""
    table = read_table(table_path)
    entries = read_entry_table(entries_path)
    runs = [read_metrics(path) for path in metrics_paths]
    summary = json.loads(Path(summary_path).read_text())
    with np.load(prepared_path) as prepared:
        sizes = split_sizes_from_prepared(prepared)
    histories = {run["run"]: read_history(path) for run, path in zip(runs, history_paths)} if halving else {}
    context = build_context(
        table,
        entries,
        runs,
        summary,
        images,
        split_sizes=sizes,
        metrics_csv=table_path,
        entries_csv=entries_path,
        halving=halving,
        decisions=[read_decision(path) for path in decision_paths],
        histories=histories,
    )
    write_report(output, context)
