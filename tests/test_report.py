"""The report's context and page: unit tests on written run directories, and end-to-end on tiny data."""

from __future__ import annotations

import datetime
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mnist3d import metrics, plots, report

sys.path.insert(0, str(Path(__file__).parent))
from conftest import planned_jobs, snakemake  # noqa: E402
from rundirs import table_of, write_run, write_runs  # noqa: E402

HOSTILE = "<script>alert('x')</script>"
SUMMARY = {
    "file": "results/data/generated-3dmnist.h5",
    "source": "generated",
    "value_range": [0.0, 1.0],
    "splits": {
        split: {
            "samples": n,
            "class_counts": {str(digit): n // 10 for digit in range(10)},
            "nonzero_share": 0.08,
            "rotated_samples": n // 2,
        }
        for split, n in (("train", 8000), ("test", 2000))
    },
    "attributes": {"source": "generated", "seed": 0, "note": "<b>bold?</b>"},
}


class Page(HTMLParser):
    """What a browser would fetch or show: every src/href, and the visible text."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


def tiny_png(path: Path) -> Path:
    plots.save(plots.message_figure("figure", str(path.name)), path)
    return path


def context_for(root: Path, directories: list[Path], **kwargs) -> dict:
    table = table_of(directories)
    runs = [metrics.read_metrics(directory / "metrics.json") for directory in directories]
    png = tiny_png(root / "figure.png")
    images = report.ReportImages(
        runs={run["run"]: {name: png for name, _ in report.RUN_FIGURES} for run in runs},
        entries={entry: png for entry in table.loc[table["replicate"] > 1, "entry"].unique()},
        comparison={name: png for name, _, _ in report.COMPARISON_FIGURES},
        digits={name: png for name, _ in report.DIGIT_FIGURES},
    )
    csv = root / "metrics.csv"
    metrics.write_csv(table, csv)
    return report.build_context(
        table,
        metrics.entry_table(table),
        runs,
        SUMMARY,
        images,
        split_sizes={"train": 6400, "validation": 1600, "test": 2000},
        metrics_csv=csv,
        now=datetime.datetime(2026, 1, 2, 3, 4),
        **kwargs,
    )


def test_best_run_is_marked_first_and_named_in_the_summary(tmp_path):
    directories = [
        write_run(tmp_path, "seed_example", level=0.70),
        write_run(tmp_path, "augmented", level=0.86),
        write_run(tmp_path, "wide", level=0.78),
    ]
    context = context_for(tmp_path, directories)
    table = table_of(directories).set_index("run")
    assert context["best"] == "augmented/rep1"
    assert context["table"][0]["run"] == "augmented/rep1" and context["table"][0]["best"]
    assert [row["best"] for row in context["table"]].count(True) == 1
    accuracies = [float(row["test_accuracy"]) for row in context["table"]]
    assert accuracies == sorted(accuracies, reverse=True)
    margin = table.loc["augmented/rep1", "test_accuracy"] - table.loc["wide/rep1", "test_accuracy"]
    assert context["summary"]["margin"] == f"{100 * margin:.1f} points"
    assert context["summary"]["runner_up"] == "wide/rep1"
    assert "augmented/rep1 has the highest test accuracy" in context["summary"]["sentences"][0]

    html = report.render(context)
    assert 'class="best"' in html
    assert "+" + context["summary"]["margin"] in html


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
    html = report.render(context)
    assert html.count("ResourceExhaustedError: OOM when allocating tensor") >= 2  # table and failed section
    assert 'id="failed"' in html


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
    assert "script" not in page.tags
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
    assert sum(link.startswith("data:image/png;base64,") for link in page.links) >= 4 * 3 + 6
    assert any(link.startswith("data:text/csv;base64,") for link in page.links)


def test_replicated_entries_report_mean_and_std(tmp_path):
    directories = [write_run(tmp_path, "wide", replicate, level=0.7 + 0.05 * replicate) for replicate in (1, 2, 3)]
    directories.append(write_run(tmp_path, "single", level=0.6))
    context = context_for(tmp_path, directories)
    values = table_of(directories).set_index("run").loc[[f"wide/rep{k}" for k in (1, 2, 3)], "test_accuracy"]
    section = next(section for section in context["sections"] if section["entry"] == "wide")
    assert section["replicates"] == 3
    assert section["mean"] == f"{values.mean():.3f}" and section["std"] == f"{values.std(ddof=1):.3f}"
    assert section["band_uri"].startswith("data:image/png;base64,")
    assert any(
        "entries trained with several seeds, wide is best on average" in s for s in context["summary"]["sentences"]
    )
    seed = next(item for item in section["params"] if item["name"] == "seed")
    assert seed["value"] == "1-3"


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
    if not failed:
        pytest.skip("the tiny config has no failing run")
    html = (tiny_workflow / "results" / "report.html").read_text()
    section = html[html.index('<section id="failed">') :]
    text = " ".join(parse(section).text)
    for run in failed:
        assert run["run"] in text
        assert run["error"].split(":")[0] in text


def test_e2e_editing_plotting_code_replots_without_retraining(trained_copy):
    # Snakemake 9 re-runs a job for a newer input only when its content changed, so edit, not touch.
    plotting = trained_copy / "scripts" / "mnist3d" / "plots.py"
    plotting.write_text(plotting.read_text() + "\n# a changed chart\n")
    jobs = planned_jobs(snakemake(trained_copy, "-n").stdout)
    assert "train" not in jobs
    assert jobs["plot_run"] == len(run_ids(trained_copy))
    for rule in ("plot_comparison", "plot_digits", "report"):
        assert jobs[rule] == 1, jobs


def test_e2e_snakemake_report_includes_the_figures(trained_copy):
    snakemake(trained_copy, "--report", "results/snakemake-report.html")
    html = (trained_copy / "results" / "snakemake-report.html").read_text()
    for name in ("metrics.csv", "test_accuracy.png", "curves.png", "examples.png"):
        assert name in html, name


def test_e2e_digit_views_of_the_prepared_test_set(tiny_workflow):
    with np.load(tiny_workflow / "results" / "data" / "prepared.npz") as prepared:
        assert prepared["x_test"].shape[1:] == (16, 16, 16, 1)
    for name in ("examples", "misclassified"):
        assert (tiny_workflow / "results" / "plots" / "digits" / f"{name}.png").stat().st_size > 5000
