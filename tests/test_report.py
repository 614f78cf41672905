"""The report's context and page: unit tests on written run directories, the page in headless
Chromium, and end-to-end on tiny data."""

from __future__ import annotations

import datetime
import html as html_module
import itertools
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import test_plots as plot_tests
from conftest import REPO, planned_jobs, snakemake, workflow_rules
from rundirs import DATA_SUMMARY, tables_of, write_report, write_run, write_runs, write_sweep

from mnist3d.config.names import entry_name, value_text
from mnist3d.plots import style as plotstyle
from mnist3d.plots import views as plotviews
from mnist3d.report import context, figures
from mnist3d.report import render as report
from mnist3d.results import metrics

HOSTILE = "<script>alert('x')</script>"
SUMMARY = {**DATA_SUMMARY, "attributes": {"source": "generated", "seed": 0, "note": "<b>bold?</b>"}}


class Page(HTMLParser):
    """What a browser would fetch or show: every src/href, the visible text, and each table's cells."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self.tables: dict[str, list[list[dict]]] = {}
        self._table: str | None = None
        self._cell = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]
        if tag == "table" and attributes.get("id"):
            self._table = attributes["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self.tables[self._table][-1].append({**attributes, "text": ""})
            self._cell = True

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th"):
            self._cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._table and self._cell:
            self.tables[self._table][-1][-1]["text"] += data


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def tiny_png(path: Path) -> Path:
    plotstyle.save(plotstyle.message_figure("figure", str(path.name)), path)
    return path


def views_files(root: Path) -> dict[str, Path]:
    """Views files as rules plot_examples and plot_misclassified write them: a few bars of voxels."""
    grids = np.zeros((3, 16, 16, 16), dtype=np.float32)  # [z, y, x]
    for index, grid in enumerate(grids):
        grid[2:14, 6 + index, 4:9] = np.linspace(0.3, 1.0, 5)
    paths = {name: root / f"{name}.json" for name in figures.names("digits")}
    plotviews.write_views(
        paths["examples"],
        "Test digits",
        [plotviews.view(grid, "Unrotated test digits", f"digit {i}") for i, grid in enumerate(grids)],
    )
    plotviews.write_views(
        paths["misclassified"], f"best: {HOSTILE}", [plotviews.view(grids[0], "", f"true 1 → predicted 7\n{HOSTILE}")]
    )
    return paths


def context_for(
    root: Path,
    directories: list[Path],
    specs: list[dict] = (),
    summary: dict = SUMMARY,
    entries_as=None,
    halving_images: dict | None = None,
    **halving,
) -> dict:
    """The report's context of these runs, with placeholder figures and small views files;
    `entries_as` changes the entry table first. `halving` (halving, decisions, histories) goes to
    build_context as it is, with `halving_images` as the halving sweeps' figures."""
    sweeps = {entry: spec["name"] for spec in specs for entry in spec["entries"]}
    table, entries = tables_of(directories, sweeps)
    entries = entries_as(entries) if entries_as else entries
    runs = [metrics.read_metrics(directory / "metrics.json") for directory in directories]
    png = tiny_png(root / "figure.png")
    images = report.ReportImages(
        runs={run["run"]: {name: png for name in figures.names("run")} for run in runs},
        entries={entry: png for entry in table.loc[table["replicate"] > 1, "entry"].unique()},
        comparison={name: png for name in figures.names("comparison")},
        digits={name: png for name in figures.names("digits")},
        sweeps=[(spec, png) for spec in specs],
        sweep_parallel={spec["name"]: png for spec in specs},
        views=views_files(root),
        halving=halving_images or {},
    )
    csv = root / "metrics.csv"
    metrics.write_csv(table, csv)
    return report.build_context(
        table,
        entries,
        runs,
        summary,
        images,
        split_sizes={"train": 6400, "validation": 1600, "test": 2000},
        metrics_csv=csv,
        now=datetime.datetime(2026, 1, 2, 3, 4),
        **halving,
    )


def cells(page: Page, table: str, column: int) -> list[dict]:
    return [row[column] for row in page.tables[table][1:]]


def test_best_entry_first_and_the_entries_tied_with_it_named(tmp_path):
    directories = [
        write_run(tmp_path, "baseline", level=0.55, test_size=400),
        write_run(tmp_path, "augmented", level=0.86, test_size=400),
        write_run(tmp_path, "wide", level=0.85, test_size=400),
    ]
    context = context_for(tmp_path, directories)
    _, entries = tables_of(directories)
    verdicts = entries.set_index("entry")["verdict"]
    # Two entries a point apart on 400 grids: either may come first, and the paired test must call their
    # runs alike; one replicate each, so no verdict on the settings either way.
    best = verdicts[verdicts == "best"].index[0]
    other = ({"augmented", "wide"} - {best}).pop()
    assert best in ("augmented", "wide") and verdicts[other].startswith("runs alike, settings untested")
    assert verdicts["baseline"].startswith("runs differ, settings untested")
    assert context["best"] == f"{best}/rep1"
    assert context["table"][0]["run"] == f"{best}/rep1" and context["table"][0]["best"]
    assert [row["best"] for row in context["table"]].count(True) == 1
    accuracies = [float(row["test_accuracy"]) for row in context["table"]]
    assert accuracies == sorted(accuracies, reverse=True)

    summary = context["summary"]
    assert summary["best_entry"] == best and summary["tied"] == [other]
    assert summary["sentences"][0].startswith(f"{best} has the highest test accuracy")
    tied_sentence = summary["sentences"][1]
    assert f"cannot tell it apart from 1 other entry: {other} (p = " in tied_sentence and "McNemar" in tied_sentence
    assert "baseline" not in tied_sentence
    assert any("McNemar's exact test" in sentence for sentence in summary["sentences"])
    assert summary["tests"] == ["McNemar"]
    assert any("fair coin toss" in caption for caption in summary["captions"])

    page = parse(report.render(context))
    entry_table = page.tables["entry-table"]
    header = [cell["text"].strip() for cell in entry_table[0]]
    assert header[:2] == ["#", "entry"] and {"mean test accuracy", "95 % interval", "p vs best", "verdict"} <= set(
        header
    )
    names = [cell["text"].strip().removesuffix("best") for cell in cells(page, "entry-table", 1)]
    assert names == [best, other, "baseline"]
    verdict_column = header.index("verdict")
    assert [row[verdict_column]["text"].strip() for row in entry_table[1:]] == [verdicts[name] for name in names]
    interval = cells(page, "entry-table", header.index("95 % interval"))[0]["text"]
    assert re.fullmatch(r"0\.\d{3}-0\.\d{3}", interval)
    text = " ".join(page.text)
    assert "How to read the intervals and verdicts" in text and "Wilson" in text


def test_replicated_entries_are_compared_with_welch_and_shown_as_mean_and_interval(tmp_path):
    directories = [write_run(tmp_path, "wide", k, level=0.80, test_size=400) for k in (1, 2, 3)]
    directories += [write_run(tmp_path, "narrow", k, level=0.60, test_size=400) for k in (1, 2, 3)]
    directories.append(write_run(tmp_path, "single", level=0.6))
    context = context_for(tmp_path, directories)
    table, entries = tables_of(directories)
    values = table.set_index("run").loc[[f"wide/rep{k}" for k in (1, 2, 3)], "test_accuracy"]
    wide = entries.set_index("entry").loc["wide"]
    section = next(section for section in context["sections"] if section["entry"] == "wide")
    assert section["replicates"] == 3
    assert section["mean"] == f"{values.mean():.3f}" and section["std"] == f"{values.std(ddof=1):.3f}"
    assert section["interval"] == f"{wide['test_accuracy_ci_low']:.3f}-{wide['test_accuracy_ci_high']:.3f}"
    assert section["band_uri"].startswith("data:image/png;base64,")
    assert context["summary"]["sentences"][0].startswith(
        f"wide has the highest mean test accuracy: {values.mean():.3f}"
    )
    assert context["summary"]["tests"][0] == "Welch"
    narrow = next(row for row in context["entries"] if row["entry"] == "narrow")
    assert narrow["test"] == "Welch" and narrow["verdict"].startswith("below the best") and narrow["class"] == "other"
    seed = next(item for item in section["params"] if item["name"] == "seed")
    assert seed["value"] == "1-3"


def test_failed_run_is_listed_with_its_error(tmp_path):
    directories = write_runs(tmp_path, 3)
    directories.append(write_run(tmp_path, "too-big", failed="ResourceExhaustedError: OOM when allocating tensor"))
    context = context_for(tmp_path, directories)
    assert context["failed"] == [
        {
            "run": "too-big/rep1",
            "anchor": context["failed"][0]["anchor"],
            "error": "ResourceExhaustedError: OOM when allocating tensor",
        }
    ]
    row = context["table"][-1]
    assert row["run"] == "too-big/rep1" and not row["ok"] and row["rank"] == ""
    assert context["summary"]["failed_runs"] == ["too-big/rep1"]
    assert next(row for row in context["entries"] if row["entry"] == "too-big")["verdict"] == "no finished run"
    html = report.render(context)
    assert html.count("ResourceExhaustedError: OOM when allocating tensor") >= 2  # table and failed section
    assert 'id="failed"' in html
    # A failed run keeps one cell per column, so sorting by any column moves whole rows.
    page = parse(html)
    widths = {len(row) for row in page.tables["metrics-table"]}
    assert widths == {len(page.tables["metrics-table"][0])}


def test_hostile_names_and_errors_are_escaped(tmp_path):
    directories = [
        write_run(tmp_path, HOSTILE, level=0.9),
        write_run(tmp_path, "plain", level=0.7),
        write_run(tmp_path, "broken", failed=f"error with {HOSTILE} and <img src=x onerror=alert(1)>"),
    ]
    html = report.render(context_for(tmp_path, directories))
    assert HOSTILE not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;/rep1" in html
    assert "<b>bold?</b>" not in html
    page = parse(html)
    # The page's own script, and its data as JSON that no browser runs: nothing injected.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts.count("") == 1 and set(scripts) == {
        "",
        ' type="application/json" id="views-examples"',
        ' type="application/json" id="views-misclassified"',
    }
    assert HOSTILE not in html and "\\u003cscript\\u003e" in html
    assert f"{HOSTILE}/rep1" in "".join(page.text)
    anchors = re.findall(r'id="([^"]+)"', html)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", anchor) for anchor in anchors), anchors
    assert len(anchors) == len(set(anchors))


def test_page_is_self_contained(tmp_path):
    html = report.render(context_for(tmp_path, write_runs(tmp_path, 4, failed=1, replicates=2)))
    page = parse(html)
    external = [link for link in page.links if not link.startswith(("data:", "#"))]
    assert external == []
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "<script src" not in html
    assert sum(link.startswith("data:image/png;base64,") for link in page.links) >= 4 * 3 + 6
    assert any(link.startswith("data:text/csv;base64,") for link in page.links)


def test_tables_carry_sort_keys_and_read_without_scripts(tmp_path):
    directories = write_runs(tmp_path, 5, failed=1)
    context = context_for(tmp_path, directories)
    html = report.render(context)
    page = parse(html)
    table, _ = tables_of(directories)
    rows = page.tables["metrics-table"][1:]
    # Every run is in the HTML itself, best first: nothing waits for a script to appear.
    assert len(rows) == len(table)
    header = [cell["text"].strip() for cell in page.tables["metrics-table"][0]]
    accuracy = header.index("test accuracy")
    keys = [row[accuracy]["data-sort"] for row in rows]
    expected = metrics.ranked_runs(table)["test_accuracy"]
    assert keys == ["" if np.isnan(value) else repr(float(value)) for value in expected]
    assert all("data-sort" in row[header.index("time")] for row in rows)
    # The filter boxes are hidden until the script shows them, so a page without scripts has no dead control.
    assert re.search(r'<input type="search" data-filter="metrics-table"[^>]* hidden>', html)
    start = html.index("<script>")
    script = html[start : html.index("</script>", start)]
    for piece in ("table.sortable", "data-sort", "input[data-filter]", "row.hidden", "data-report-script"):
        assert piece in script, piece
    # So are the 3D views and the sweep's interactive chart; their figures are what the page shows without.
    assert re.search(r'<div class="viewer" data-views="views-examples" hidden>', html)
    assert "[hidden] { display: none !important; }" in html


def test_run_sections_start_collapsed_and_entries_too_when_many(tmp_path):
    few = context_for(tmp_path / "few", write_runs(tmp_path / "few", 4, replicates=2))
    html = report.render(few)
    assert re.findall(r'<details class="run[^"]*" id="[^"]+" open', html) == []
    assert all(block["open"] for block in few["sections"])
    many = context_for(tmp_path / "many", write_runs(tmp_path / "many", 30, replicates=3))
    opened = [block["entry"] for block in many["sections"] if block["open"]]
    assert opened == [many["summary"]["best_entry"]]


def test_settings_show_where_a_run_departs_from_the_usual_value(tmp_path):
    directories = [
        write_run(tmp_path, "base", level=0.7),
        write_run(tmp_path, "augmented", level=0.8, params={"rotation_augmentation": 30.0}),
        write_run(tmp_path, "cosine", level=0.75, params={"lr_schedule": "cosine", "early_stopping_patience": 3}),
    ]
    context = context_for(tmp_path, directories)
    assert {lever["name"]: lever["usual"] for lever in context["levers"]} == {
        "rotation_augmentation": "0",
        "early_stopping_patience": "0",
        "lr_schedule": "constant",
    }
    settings = {row["run"]: row["settings"] for row in context["table"]}
    assert settings == {
        "augmented/rep1": ["rotation_augmentation=30"],
        "cosine/rep1": ["early_stopping_patience=3", "lr_schedule=cosine"],
        "base/rep1": [],
    }


def test_sweeps_get_a_section_each_with_their_entries_ranked(tmp_path):
    directories, spec = write_sweep(tmp_path, "width", {"dense": [64, 256], "dropout": [0.2, 0.5]}, replicates=3)
    directories.append(write_run(tmp_path, "baseline", level=0.5))
    context = context_for(tmp_path, directories, [spec])
    [sweep] = context["sweeps"]
    assert sweep["name"] == "width"
    assert sweep["fields"] == [
        {"name": "dense", "values": ["64", "256"]},
        {"name": "dropout", "values": ["0.2", "0.5"]},
    ]
    _, entries = tables_of(directories, {entry: "width" for entry in spec["entries"]})
    means = entries.set_index("entry").loc[list(spec["entries"]), "test_accuracy_mean"]
    assert [row["entry"] for row in sweep["rows"]] == means.sort_values(ascending=False).index.tolist()
    assert sweep["rows"][0]["values"] == ["256", "0.5"]
    assert all(row["verdict"] for row in sweep["rows"])
    page = parse(report.render(context))
    assert "sweep-table-0" in page.tables
    assert 'href="#sweeps"' in report.render(context)
    # A sweep's entry reads as its sweep and values, not its long name, and no sweep column repeats it.
    entry_header = [cell["text"].strip() for cell in page.tables["entry-table"][0]]
    assert "sweep" not in entry_header
    shown = {row[1]["text"].strip().removesuffix("best") for row in page.tables["entry-table"][1:]}
    assert "widthdense=256dropout=0.5" in shown and "baseline" in shown
    assert not any(entry in shown for entry in spec["entries"])
    assert all(f'title="{entry}"' in report.render(context) for entry in spec["entries"])

    plain = report.render(context_for(tmp_path / "plain", write_runs(tmp_path / "plain", 2)))
    assert 'id="sweeps"' not in plain and 'href="#sweeps"' not in plain


def example_sweep(root: Path) -> tuple[list[Path], dict]:
    """18 runs of a sweep shaped like config/models-sweep.yaml's (3 learning rates x 2 dropouts, 3
    replicates) under their real long names, and the sweep's spec as the rules give it."""
    grid = {"dropout": [0.25, 0.5], "learning_rate": [1.0e-4, 1.0e-3, 3.0e-3]}
    spec, directories = {"name": "lr-dropout", "fields": sorted(grid), "entries": {}}, []
    for dropout, rate in itertools.product(grid["dropout"], grid["learning_rate"]):
        labels = {"dropout": value_text(dropout), "learning_rate": value_text(rate)}
        entry = entry_name("lr-dropout", labels)
        spec["entries"][entry] = labels
        level = 0.45 if rate < 5e-4 else 0.70 + 0.03 * (dropout == 0.25) + 0.02 * (rate > 2e-3)
        directories += [write_run(root, entry, k, level=level, test_size=400) for k in (1, 2, 3)]
    return directories, spec


def with_adjusted_p(context_entries: pd.DataFrame) -> pd.DataFrame:
    """The entry table as it will be with Holm-adjusted p-values: the column, and verdicts that state it."""
    raw = context_entries["vs_best_p_value"].astype(float)
    adjusted = (raw * 5).clip(upper=1.0)
    verdicts = [
        verdict if pd.isna(p) else f"{verdict.split(' (')[0]} (p = {p:.2g}, adjusted {q:.2g}; Welch)"
        for verdict, p, q in zip(context_entries["verdict"], raw, adjusted)
    ]
    return context_entries.assign(vs_best_p_adjusted=adjusted, verdict=verdicts)


def test_sweep_entries_show_their_values_and_the_adjusted_p_stands_beside_the_raw_one(tmp_path):
    directories, spec = example_sweep(tmp_path)
    table, entries = tables_of(directories, {entry: spec["name"] for entry in spec["entries"]})
    rows = context.entry_rows(table, with_adjusted_p(entries), {}, [spec])
    top = rows[0]
    assert top["sweep"] == "lr-dropout" and top["values"] == [
        f"dropout={spec['entries'][top['entry']]['dropout']}",
        f"learning_rate={spec['entries'][top['entry']]['learning_rate']}",
    ]
    below = next(row for row in rows if row["class"] == "other")
    assert (
        below["p_value"]
        and below["p_adjusted"]
        and float(below["p_adjusted"].lstrip("< ")) >= float(below["p_value"].lstrip("< "))
    )
    assert top["p_adjusted"] == "" and below["sort"]["vs_best_p_adjusted"]
    # Where the entry table has no adjusted column (written before it existed) the rows read the same without it.
    before = entries.drop(columns="vs_best_p_adjusted", errors="ignore")
    assert {row["p_adjusted"] for row in context.entry_rows(table, before, {}, [spec])} == {""}
    html = report.render(context_for(tmp_path, directories, [spec], entries_as=with_adjusted_p))
    header = [cell["text"].strip() for cell in parse(html).tables["entry-table"][0]]
    assert header[header.index("p vs best") + 1] == "adjusted p"


def test_summary_names_the_cheapest_entry_tied_with_the_best_and_the_pareto_entries(tmp_path):
    directories = plot_tests.cost_runs(tmp_path)
    table, entries = tables_of(directories)
    sentences = context.cost_sentences(table, entries)
    assert sentences[:2] == [
        "Cheapest entry tied with the best: small, 3.9x faster to train (102 s against 6.7 min).",
        "Smallest entry tied with the best: small, 10x fewer parameters (50,000 against 500,000).",
    ]
    assert sentences[2:] == [
        "Pareto-optimal on training time (no other entry both cheaper and more accurate): big, small, weak.",
        "Pareto-optimal on parameters (no other entry both cheaper and more accurate): big, small, weak.",
    ]
    html = report.render(context_for(tmp_path, directories))
    assert "Cheapest entry tied with the best" in html and 'href="#chart-cost"' in html and 'id="chart-cost"' in html
    assert context.cost_sentences(*tables_of(directories[:3])) == []  # one entry: nothing to weigh


def test_sweep_block_carries_its_parallel_coordinates_for_the_script_and_the_png_for_the_rest(tmp_path):
    directories, spec = write_sweep(tmp_path, "width", {"dense": [64, 256], "dropout": [0.2, 0.5]}, replicates=3)
    directories.append(write_run(tmp_path, "width__dense-64_dropout-0.9", failed="boom"))
    spec["entries"]["width__dense-64_dropout-0.9"] = {"dense": "64", "dropout": "0.9"}
    built = context_for(tmp_path, directories, [spec])
    [sweep] = built["sweeps"]
    chart = sweep["parallel"]
    assert chart["fields"] == [
        {"name": "dense", "values": ["64", "256"]},
        {"name": "dropout", "values": ["0.2", "0.5", "0.9"]},
    ]
    assert len(chart["lines"]) == 4  # the failed combination has no line
    assert chart["lines"][-1]["layer"] == "best" and chart["lines"][-1]["entry"] == sweep["rows"][0]["entry"]
    layers = [line["layer"] for line in chart["lines"]]
    assert layers == sorted(layers, key=["other", "tied", "best"].index)
    assert all(line["verdict"] and line["text"].startswith("0.") for line in chart["lines"])
    html = report.render(built)
    anchor = sweep["anchor"]
    assert '<img src="data:image/png;base64,' in html and f'id="{anchor}-parallel-png"' in html
    assert re.search(
        f'<div class="parallel" data-parallel="{anchor}-parallel-data" data-fallback="{anchor}-parallel-png" hidden>',
        html,
    )
    data = re.search(f'<script type="application/json" id="{anchor}-parallel-data">(.*?)</script>', html).group(1)
    assert json.loads(data) == json.loads(json.dumps(chart))
    assert "Parallel coordinates of a sweep." in "".join(parse(html).text)


def test_the_digit_views_are_in_the_page_once_each_and_small(tmp_path):
    built = context_for(tmp_path, write_runs(tmp_path, 3))
    assert [view["label"] for view in built["views"]["examples"]["views"]] == ["digit 0", "digit 1", "digit 2"]
    html = report.render(built)
    for name in ("examples", "misclassified"):
        data = re.search(f'<script type="application/json" id="views-{name}">(.*?)</script>', html).group(1)
        assert json.loads(data) == built["views"][name]
    # 30 digits (20 examples, 10 mistakes) of about 5.5 kB: a fraction of a report of 60 runs.
    one = len(json.dumps(built["views"]["examples"]["views"][0]))
    assert 30 * one < 200_000
    script = html[html.index("<script>") :]
    assert len(script) < 40_000  # the page's own script: tables, views and chart together


def test_data_warnings_are_shown_and_nothing_when_there_are_none(tmp_path):
    directories = write_runs(tmp_path, 2)
    warned = {**SUMMARY, "warnings": ["test split: digit 7 has 150 grids, 25 % fewer than the mean <b>"]}
    html = report.render(context_for(tmp_path, directories, summary=warned))
    data = html[html.index('<section id="data">') :]
    assert "1 data warning:" in data and "digit 7 has 150 grids, 25 % fewer than the mean &lt;b&gt;" in data
    assert "The data checks raised 1 warning" in html
    for summary in (SUMMARY, {key: value for key, value in SUMMARY.items() if key != "warnings"}):
        html = report.render(context_for(tmp_path, directories, summary=summary))
        assert "data warning" not in html and 'class="warning"' not in html


def test_unknown_rotation_and_no_successful_run(tmp_path):
    context = context_for(tmp_path, [write_run(tmp_path, "real", rotation_known=False)])
    assert context["summary"]["rotated"] == ""
    assert "rotated noisy half" not in " ".join(context["summary"]["sentences"])
    report.render(context)

    nothing = tmp_path / "nothing"
    context = context_for(nothing, [write_run(nothing, "broken", failed="boom")])
    assert context["best"] is None
    html = report.render(context)
    assert "No run finished training" in html


def test_report_is_written_atomically(tmp_path):
    path = tmp_path / "out" / "report.html"
    report.write_report(path, context_for(tmp_path, write_runs(tmp_path, 2)))
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


# ----------------------------------------------------------------------------------------------
# The table of figures (mnist3d.report.figures): one caption per figure, for both reports.


@pytest.fixture(scope="module")
def rules_by_name(tmp_path_factory) -> dict:
    """Each rule's input names and its outputs marked for `snakemake --report`, by rule name."""
    return {rule["name"]: rule for rule in workflow_rules(REPO, tmp_path_factory.mktemp("rules"))}


def test_every_figure_has_its_caption_file_and_every_caption_file_is_a_figure():
    files = {path.name for path in figures.CAPTIONS.glob("*")}
    assert files == {f"{key}.rst" for key in figures.FIGURES}
    assert {figure.group for figure in figures.FIGURES.values()} == set(figures.GROUPS)
    for key, figure in figures.FIGURES.items():
        assert figure.caption_path.read_text().strip(), key
        assert figure.title and figure.title[0].isupper() and not figure.title.endswith("."), key


def test_captions_read_as_text_with_their_wildcards_filled():
    values = {"entry": "wide", "replicate": "2", "sweep": "width"}
    for key in figures.FIGURES:
        parts = figures.caption(key, **values)
        text = "".join(part["text"] for part in parts)
        assert text and "{" not in text and "``" not in text and "  " not in text, key
    curves = "".join(part["text"] for part in figures.caption("run_curves", **values))
    assert "of run wide/rep2:" in curves
    literal = [part["text"] for part in figures.caption("metrics_table") if part["literal"]]
    assert "16-32-64" in literal and "entry_test_accuracy_mean" in literal
    # A name is text, never markup: its backquotes and braces stay as they are.
    hostile = "``x`` {{ snakemake.wildcards.entry }} " + HOSTILE
    parts = figures.caption("entry_replicates", entry=hostile)
    assert not any(part["literal"] for part in parts) and hostile in parts[0]["text"]
    with pytest.raises(KeyError, match="wildcard 'entry'"):
        figures.caption("entry_replicates")
    with pytest.raises(KeyError, match="known: run_curves"):
        figures.figure("run_curve")


def test_rule_outputs_in_the_snakemake_report_use_the_table_captions(rules_by_name):
    by_path = {str(figure.caption_path): figure for figure in figures.FIGURES.values()}
    used = []
    for rule, found in rules_by_name.items():
        for output in found["reported"]:
            assert output["caption"] is not None, (rule, output)
            figure = by_path.get(str(Path(output["caption"]).resolve()))
            assert figure is not None, f"rule {rule}: caption {output['caption']} is not in mnist3d.report.figures"
            if output["name"] is not None:
                assert output["name"] == figure.name, (rule, output["name"], figure.key)
            used.append(figure.key)
    assert sorted(used) == sorted(figures.FIGURES), "each figure of the table is one output of one rule"


def test_report_rule_takes_every_figure_under_its_key(rules_by_name):
    shown = [
        figure.key for group in ("run", "entry", "comparison", "digits", "sweep") for figure in figures.group(group)
    ]
    inputs = rules_by_name["report"]["inputs"]
    assert set(shown) <= set(inputs), sorted(set(shown) - set(inputs))


def test_page_shows_each_figure_with_the_caption_of_the_table(tmp_path):
    context = context_for(tmp_path, write_runs(tmp_path, 3, replicates=2))
    text = re.sub(r"\s+", " ", "".join(parse(report.render(context)).text))
    for key in [figure.key for figure in figures.group("comparison")] + ["digits_examples"]:
        figure = figures.figure(key)
        caption = "".join(part["text"] for part in figures.caption(key))
        assert f"{figure.title}. {caption}" in text, key
    run = context["sections"][0]["runs"][0]
    assert [shown["title"] for shown in run["figures"]] == [figure.title for figure in figures.group("run")]


# ----------------------------------------------------------------------------------------------
# The page in a real browser (Debian's chromium): the script runs without errors, sorts and filters.

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium) to run the page's script"
)

# Appended to a copy of the page: sort the results table by test accuracy (lowest first), filter it,
# and write what the reader would see into attributes that --dump-dom prints.
DRIVER = """<script>
(function () {
  var table = document.getElementById("metrics-table"), header = table.tHead.rows[0].cells[2];
  header.click();
  var keys = Array.prototype.map.call(table.tBodies[0].rows, function (row) { return row.cells[2].getAttribute("data-sort"); });
  document.body.setAttribute("data-sorted", keys.join("|"));
  var input = document.querySelector('input[data-filter="metrics-table"]');
  input.value = "model_01";
  input.dispatchEvent(new Event("input"));
  var shown = Array.prototype.filter.call(table.tBodies[0].rows, function (row) { return !row.hidden; }).length;
  document.body.setAttribute("data-shown", String(shown) + (input.hidden ? " hidden" : " visible"));
})();
</script>
</body>"""


def chromium(page: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        *arguments,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@needs_chromium
def test_page_runs_its_script_in_chromium_without_errors(tmp_path):
    directories, spec = write_sweep(tmp_path, "width", {"dense": [64, 256]}, replicates=2)
    directories += write_runs(tmp_path, 4, failed=1)
    path = write_report(tmp_path, directories, [spec], real_figures=False)
    result = chromium(path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "Uncaught" in line or "Error" in line], console
    assert 'data-report-script="ready"' in result.stdout

    driven = tmp_path / "driven.html"
    driven.write_text(path.read_text().replace("</body>", DRIVER))
    result = chromium(driven, "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    keys = re.search(r'data-sorted="([^"]*)"', result.stdout).group(1).split("|")
    table, _ = tables_of(directories)
    finished = sorted(table["test_accuracy"].dropna())
    assert [float(key) for key in keys[: len(finished)]] == finished  # lowest first after one click
    assert keys[len(finished) :] == [""] * table["test_accuracy"].isna().sum()  # failed runs last
    assert re.search(r'data-shown="([^"]*)"', result.stdout).group(1) == "1 visible"


# Collects the page's script errors from the start (--dump-dom keeps no console), then, appended at
# the end, drags and wheels a 3D view, hovers a parallel-coordinates line and measures the entry
# table, writing what it found into an attribute. Every step is synchronous: the view redraws inside
# its event handlers, so nothing here waits for a frame or a timer.
ERRORS = """<head>
<script>window.pageErrors = []; window.addEventListener("error", function (event) { pageErrors.push(String(event.message)); });</script>"""
INTERACT = """<script>
(function () {
  var found = {errors: window.pageErrors, ready: document.documentElement.getAttribute("data-report-script")};
  try { interact(found); } catch (error) { found.errors.push("driver: " + error); }
  document.body.setAttribute("data-found", JSON.stringify(found));
})();
function interact(found) {
  var canvas = document.querySelector('[data-views="views-examples"] canvas'), box = canvas.getBoundingClientRect();
  var x = box.left + box.width / 2, y = box.top + box.height / 2;
  var start = canvas.toDataURL(), view = canvas.getAttribute("data-view");
  canvas.dispatchEvent(new PointerEvent("pointerdown", {clientX: x, clientY: y, button: 0, bubbles: true}));
  window.dispatchEvent(new PointerEvent("pointermove", {clientX: x + 60, clientY: y + 25, bubbles: true}));
  window.dispatchEvent(new PointerEvent("pointerup", {clientX: x + 60, clientY: y + 25, bubbles: true}));
  found.dragged = canvas.toDataURL() !== start;
  found.views = [view, canvas.getAttribute("data-view")];
  var turned = canvas.toDataURL();
  canvas.dispatchEvent(new WheelEvent("wheel", {deltaY: -400, clientX: x, clientY: y, bubbles: true, cancelable: true}));
  found.zoomed = canvas.toDataURL() !== turned;
  canvas.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));
  found.reset = canvas.getAttribute("data-view") === view;
  var buttons = canvas.parentElement.querySelectorAll(".viewer-picker button");
  buttons[1].click();
  found.picked = [buttons.length, buttons[1].getAttribute("aria-pressed"), canvas.parentElement.querySelector(".viewer-caption").textContent];
  var chart = document.querySelector("[data-parallel]");
  found.parallel = {shown: !chart.hidden, lines: chart.querySelectorAll("g.line").length,
                    fallbackHidden: document.getElementById(chart.getAttribute("data-fallback")).hidden};
  var best = chart.querySelector("g.line.best");
  best.dispatchEvent(new PointerEvent("pointerenter", {clientX: 200, clientY: 100}));
  var tip = chart.querySelector(".parallel-tip");
  found.parallel.tip = tip.hidden ? "" : tip.textContent;
  best.dispatchEvent(new PointerEvent("pointerleave", {clientX: 0, clientY: 0}));
  found.parallel.tipAfter = tip.hidden;
  var wrap = document.getElementById("entry-table").parentElement, verdict = document.querySelector("#entry-table td.verdict");
  found.table = {overflow: wrap.scrollWidth - wrap.clientWidth, verdictRight: verdict.getBoundingClientRect().right,
                 wrapRight: wrap.getBoundingClientRect().right, window: window.innerWidth};
}
</script>
</body>"""


@needs_chromium
def test_3d_views_turn_and_zoom_the_chart_hovers_and_the_verdict_fits_1100_pixels_in_chromium(tmp_path):
    # The 18-run example sweep, with the adjusted p column and the longer verdicts it brings.
    directories, spec = example_sweep(tmp_path)
    html = report.render(context_for(tmp_path, directories, [spec], entries_as=with_adjusted_p))
    assert "adjusted 0." in html and ">adjusted p</th>" in html
    page = tmp_path / "driven.html"
    page.write_text(html.replace("<head>", ERRORS, 1).replace("</body>", INTERACT))
    result = chromium(page, "--window-size=1100,2000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(html_module.unescape(re.search(r'data-found="([^"]*)"', result.stdout).group(1)))
    assert found["errors"] == [] and found["ready"] == "ready", found
    assert found["dragged"] and found["views"][0] != found["views"][1], found["views"]
    assert found["zoomed"] and found["reset"]
    assert found["picked"] == [3, "true", "Unrotated test digits: digit 1"]
    best = next(entry for entry in spec["entries"] if found["parallel"]["tip"].startswith(entry))
    assert f"dropout = {spec['entries'][best]['dropout']}" in found["parallel"]["tip"]
    assert "best" in found["parallel"]["tip"] and found["parallel"]["tipAfter"]
    assert found["parallel"] == {**found["parallel"], "shown": True, "lines": 6, "fallbackHidden": True}
    # At 1100 pixels the entry table needs no horizontal scrolling: the verdict is in sight.
    assert found["table"]["window"] == 1100
    assert found["table"]["overflow"] <= 0 and found["table"]["verdictRight"] <= found["table"]["wrapRight"] + 1, found


# ----------------------------------------------------------------------------------------------
# End to end: the tiny workflow that tests/conftest.py ran once for real


def run_ids(workdir: Path) -> list[str]:
    return [
        json.loads(path.read_text())["run"]
        for path in sorted((workdir / "results" / "runs").glob("*/rep*/metrics.json"))
    ]


def test_e2e_metrics_table_has_every_run(tiny_workflow):
    table = pd.read_csv(tiny_workflow / "results" / "metrics.csv")
    assert sorted(table["run"]) == sorted(run_ids(tiny_workflow))
    for column in metrics.IDENTITY_COLUMNS + metrics.MEASURE_COLUMNS + metrics.ENTRY_COLUMNS:
        assert column in table.columns, column
    failed = table[table["status"] == "failed"]
    assert failed["test_accuracy"].isna().all() and (failed["error"].str.len() > 0).all()
    entries = pd.read_csv(tiny_workflow / "results" / "metrics_by_entry.csv")
    assert sorted(entries["entry"]) == sorted(table["entry"].unique())


def test_e2e_report_names_every_run_and_embeds_its_images(tiny_workflow):
    html = (tiny_workflow / "results" / "report.html").read_text()
    page = parse(html)
    text = " ".join(page.text)
    runs = run_ids(tiny_workflow)
    for run in runs:
        assert run in text, run
    images = [link for link in page.links if link.startswith("data:image/png;base64,")]
    assert len(images) >= 3 * len(runs) + 6 + 2
    assert [link for link in page.links if not link.startswith(("data:", "#"))] == []
    for run_dir in sorted((tiny_workflow / "results" / "plots" / "runs").glob("*/rep*")):
        for name in ("curves", "confusion", "per_class"):
            assert (run_dir / f"{name}.png").stat().st_size > 2000


def test_e2e_report_shows_failed_runs_with_their_error(tiny_workflow):
    failed = [
        json.loads(path.read_text())
        for path in (tiny_workflow / "results" / "runs").glob("*/rep*/metrics.json")
        if json.loads(path.read_text())["status"] == "failed"
    ]
    assert failed, "the tiny config's too-big run should fail"
    html = (tiny_workflow / "results" / "report.html").read_text()
    section = html[html.index('<section id="failed">') :]
    text = " ".join(parse(section).text)
    for run in failed:
        assert run["run"] in text
        assert run["error"].split(":")[0] in text


def test_e2e_editing_plotting_code_replots_without_retraining(trained_copy):
    # Snakemake 9 re-runs a job for a newer input only when its content changed, so edit, not touch.
    plotting = trained_copy / "scripts" / "mnist3d" / "plots" / "style.py"
    plotting.write_text(plotting.read_text() + "\n# a changed chart\n")
    jobs = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert "train" not in jobs
    assert jobs["plot_run"] == len(run_ids(trained_copy))
    for rule in ("plot_comparison", "plot_examples", "plot_misclassified", "report"):
        assert jobs[rule] == 1, jobs


def test_e2e_editing_the_metrics_code_redraws_no_run_figure(trained_copy):
    # Per-run and per-entry figures read their run's files themselves (mnist3d.results.runfiles): one
    # job per run would otherwise rerun for every change to the tables' code.
    module = trained_copy / "scripts" / "mnist3d" / "results" / "metrics.py"
    module.write_text(module.read_text() + "\n# a changed table\n")
    jobs = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert "plot_run" not in jobs and "plot_entry" not in jobs and "plot_examples" not in jobs, jobs
    assert jobs["aggregate_metrics"] == 1 and jobs["plot_misclassified"] == 1, jobs


def test_e2e_snakemake_report_includes_the_figures(trained_copy):
    snakemake(trained_copy, "--report", "results/snakemake-report.html")
    html = (trained_copy / "results" / "snakemake-report.html").read_text()
    for name in ("metrics.csv", "test_accuracy.png", "curves.png", "examples.png"):
        assert name in html, name


def test_e2e_digit_views_of_the_prepared_test_set(tiny_workflow):
    with np.load(tiny_workflow / "results" / "data" / "prepared.npz") as prepared:
        assert prepared["x_test"].shape[1:] == (16, 16, 16, 1)
    html = (tiny_workflow / "results" / "report.html").read_text()
    for name in ("examples", "misclassified"):
        assert (tiny_workflow / "results" / "plots" / "digits" / f"{name}.png").stat().st_size > 5000
        # Beside each figure its digits as data, embedded once for the page's rotatable view.
        views = json.loads((tiny_workflow / "results" / "plots" / "digits" / f"{name}.json").read_text())
        assert views["views"] and html.count(f'id="views-{name}"') == 1
    assert (tiny_workflow / "results" / "plots" / "comparison" / "cost.png").stat().st_size > 5000
