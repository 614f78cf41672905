"""The report's successive halving section and its figure: on run directories and decisions written
by the real decision code (mnist3d.results.halving), and end to end through Snakemake on tiny data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from conftest import TEST_CONFIG, copy_workflow, snakemake
from rundirs import write_run, write_runs
from test_plots import assert_png
from test_report import Page, context_for, parse

from mnist3d.config.halving import HalvingPlan, rung_epochs
from mnist3d.plots import halving as plots_halving
from mnist3d.plots.style import FAINT
from mnist3d.report import halving as report_halving
from mnist3d.report import render as report
from mnist3d.report.format import fmt_seconds
from mnist3d.results import halving as decisions_code
from mnist3d.results.runfiles import read_history
from mnist3d.results.rungs import rung_record, stopped_text

SWEEP = "h"
FIELDS = ["dense"]
# Four combinations, two replicates, eta 2, rungs at 1, 2 and 4: 4 -> 2 -> 1. Each combination's
# validation accuracy per epoch, and its seconds per epoch (the first epoch of each job slower).
LEVELS = {"8": 0.30, "16": 0.40, "32": 0.50, "64": 0.45}
SECONDS = {"8": 1.0, "16": 2.0, "32": 3.0, "64": 4.0}
START_UP = 5.0


def entry(dense: str) -> str:
    return f"{SWEEP}.dense-{dense}"


def spec() -> dict:
    return {"name": SWEEP, "fields": FIELDS, "entries": {entry(dense): {"dense": dense} for dense in LEVELS}}


def plan() -> dict:
    return HalvingPlan(SWEEP, eta=2, min_epochs=1, epochs=4, rungs=rung_epochs(1, 2, 4),
                       entries=tuple(sorted(entry(dense) for dense in LEVELS)), replicates=2).as_param()


def history(dense: str, replicate: int, epochs: int) -> pd.DataFrame:
    """Validation accuracy climbing to its combination's level; a job starts at epochs 1, 2 and 3."""
    rows = [
        {"epoch": epoch, "loss": 1.0, "accuracy": 0.5, "val_loss": 2.0 - LEVELS[dense] - 0.01 * epoch,
         "val_accuracy": LEVELS[dense] - 0.1 / epoch + 0.001 * replicate,
         "seconds": SECONDS[dense] + (START_UP if epoch in (1, 2, 3) else 0.0), "learning_rate": 0.001}
        for epoch in range(1, epochs + 1)
    ]
    return pd.DataFrame(rows)


def halving_runs(root: Path) -> tuple[list[Path], list[dict]]:
    """The sweep's run directories as its runs' own jobs leave them, and its decisions, made by the
    decision code from rung records of the same histories."""
    sweep_plan, decisions, alive = plan(), [], list(plan()["entries"])
    for rung in range(1, len(sweep_plan["rungs"])):
        epoch = sweep_plan["rungs"][rung - 1]
        records = [
            rung_record(f"{name}/rep{replicate}", name, replicate, epoch,
                        history(spec()["entries"][name]["dense"], replicate, epoch).to_dict("records"))
            for name in alive for replicate in (1, 2)
        ]
        decisions.append(decisions_code.decide(sweep_plan, rung, alive, records))
        alive = decisions[-1]["kept"]
    directories = []
    for name in sweep_plan["entries"]:
        dense = spec()["entries"][name]["dense"]
        epoch, stopping = decisions_code.outcome(name, decisions)
        for replicate in (1, 2):
            directory = write_run(root, name, replicate, history=history(dense, replicate, epoch or 4),
                                  level=LEVELS[dense], params={"dense": int(dense), "epochs": 4})
            if stopping is not None:
                metrics = json.loads((directory / "metrics.json").read_text())
                metrics.update(status="stopped", stopped=stopped_text(epoch, stopping["rung"], stopping["rungs"]))
                (directory / "metrics.json").write_text(json.dumps(metrics))
            directories.append(directory)
    return directories, decisions


def histories_of(directories: list[Path]) -> dict:
    return {f"{d.parent.name}/{d.name}": read_history(d / "history.csv") for d in directories}


def halving_context(root: Path) -> tuple[dict, list[dict]]:
    directories, decisions = halving_runs(root)
    context = context_for(root, directories, [spec()], halving=[plan()], decisions=decisions,
                          histories=histories_of(directories), halving_images={SWEEP: root / "figure.png"})
    return context, decisions


def test_the_decisions_stop_three_combinations_and_keep_the_best(tmp_path):
    # The fixture itself: 32 leads at every rung, 64 is cut at rung 2, 8 and 16 at rung 1.
    _, decisions = halving_runs(tmp_path)
    assert [decision["kept"] for decision in decisions] == [[entry("32"), entry("64")], [entry("32")]]


def test_section_counts_each_rung_and_the_cost_against_the_full_grid(tmp_path):
    context, _ = halving_context(tmp_path)
    [section] = context["halving"]
    assert section["name"] == SWEEP and section["rung_epochs"] == "1, 2, 4"
    [reached] = section["reached"]
    assert reached["title"] == ""
    assert [(row["epoch"], row["combinations"], row["runs"]) for row in reached["rungs"]] == [(1, 4, 8), (2, 2, 4),
                                                                                            (4, 1, 2)]
    cost = section["cost"]
    # Epochs: 8 runs x 1, 4 x 1 more, 2 x 2 more = 16 of 4 x 2 x 4 = 32.
    assert (cost["epochs"], cost["full_epochs"], cost["epochs_share"]) == ("16", "32", "50 %")
    # Spent: every epoch as timed; jobs start at epochs 1, 2 (rung 2) and 3 (rung 3).
    spent = 2 * (SECONDS["8"] + SECONDS["16"] + START_UP * 2) + 2 * 2 * (SECONDS["64"] + START_UP) \
        + 2 * (4 * SECONDS["32"] + 3 * START_UP)
    assert cost["seconds"] == fmt_seconds(spent)
    # Estimate: each run's epoch 1 as timed, 3 more at the median epoch that started no job (epoch 4: 32's, 3 s).
    estimate = sum(2 * (SECONDS[dense] + START_UP + 3 * SECONDS["32"]) for dense in LEVELS)
    assert cost["full_seconds"] == fmt_seconds(estimate) and cost["later_epoch"] == "3.00 s"
    assert cost["seconds_share"] == f"{100 * spent / estimate:.0f} %"


def test_decision_tables_are_the_decision_files_lines_by_rung(tmp_path):
    context, decisions = halving_context(tmp_path)
    [bracket] = context["halving"][0]["brackets"]
    assert bracket["title"] == "" and [rung["rung"] for rung in bracket["rungs"]] == [1, 2]
    for rung, decision in zip(bracket["rungs"], decisions):
        assert [(row["rank"], row["entry"], row["verdict"], row["reason"]) for row in rung["rows"]] == [
            (line["rank"], line["entry"], line["verdict"], line["reason"]) for line in decision["combinations"]]
        assert rung["alive"] == decision["alive"] and rung["kept"] == len(decision["kept"])
    first = bracket["rungs"][0]
    assert first["rows"][0]["values"] == ["dense=32"] and first["cutoff"].endswith("(dense=64)")
    assert first["rows"][0]["anchor"].startswith("entry-")


def test_the_finished_combination_is_named_with_its_verdict_and_stopped_ones_are_not_compared(tmp_path):
    context, _ = halving_context(tmp_path)
    section = context["halving"][0]
    assert [item["entry"] for item in section["finished"]] == [entry("32")]
    assert section["finished"][0]["verdict"] == "best"
    assert (section["stopped"], section["stopped_runs"], section["failed"]) == (3, 6, 0)
    rows = {row["entry"]: row for row in context["entries"]}
    assert rows[entry("32")]["rank"] == 1 and rows[entry("32")]["class"] == "best"
    stops = {entry("8"): "stopped at epoch 1 (rung 1 of 3)", entry("64"): "stopped at epoch 2 (rung 2 of 3)"}
    for name, where in stops.items():
        assert rows[name]["rank"] == "" and rows[name]["class"] == "stopped" and rows[name]["replicates"] == "0 / 2"
        assert rows[name]["verdict"] == f"{where}: not compared"
    stopped_rows = [row for row in context["table"] if row["status"] == "stopped"]
    assert len(stopped_rows) == 6 and all(row["stopped"] and row["rank"] == "" for row in stopped_rows)
    assert context["failed"] == [] and context["summary"]["failed"] == 0 and context["summary"]["stopped"] == 6
    assert "2 of 8 runs finished (6 stopped early by successive halving)" in " ".join(context["summary"]["sentences"])
    sweep_rows = {row["entry"]: row for row in context["sweeps"][0]["rows"]}
    assert sweep_rows[entry("64")]["rank"] == "" and sweep_rows[entry("64")]["class"] == "stopped"
    assert [line["entry"] for line in context["sweeps"][0]["parallel"]["lines"]] == [entry("32")]


def test_page_shows_the_section_and_no_run_stopped_by_halving_as_failed(tmp_path):
    context, _ = halving_context(tmp_path)
    html = report.render(context)
    page = parse(html)
    text = re.sub(r"\s+", " ", "".join(page.text))
    assert 'href="#halving"' in html and 'id="halving"' in html
    assert "1 trained all 4 epochs: dense=32 (mean test accuracy" in text
    assert "3 combinations (6 runs) stopped at a rung." in text
    assert "Rung 1 of 3, epoch 1: 2 of 4 kept for epoch 2" in text and "(estimate)" in text
    assert html.count('class="badge failed"') == 0 and html.count('class="badge stopped"') == 12
    assert "Successive halving: every run and the rung cut-offs." in text


def test_a_report_without_halving_sweeps_has_no_trace_of_it(tmp_path):
    html = report.render(context_for(tmp_path, write_runs(tmp_path, 3, failed=1)))
    shown = re.sub(r"<(style|script)\b.*?</\1>", "", html, flags=re.DOTALL)
    text = "".join(parse(shown).text).lower()
    assert 'id="halving"' not in html and 'href="#halving"' not in html and 'class="badge stopped"' not in html
    assert "halving" not in text and "stopped" not in text.replace("these runs stopped with an error", "")


def test_decisions_of_several_brackets_get_a_titled_table_each_and_other_sweeps_are_left_out(tmp_path):
    _, decisions = halving_runs(tmp_path)
    second = {**decisions[1], "bracket": 2, "rung": 1}
    other = {**decisions[0], "sweep": "other"}
    own = plots_halving.sweep_decisions(plan(), [second, other, *decisions])
    assert [(decision.get("bracket", 1), decision["rung"]) for decision in own] == [(1, 1), (1, 2), (2, 1)]
    blocks = report_halving.bracket_blocks(own, spec(), {})
    assert [block["title"] for block in blocks] == ["Bracket 1", "Bracket 2"]
    assert [len(block["rungs"]) for block in blocks] == [2, 1]
    marks = plots_halving.cutoffs(plan(), own)
    assert [mark["text"] for mark in marks] == ["b1 rung 1: 4 → 2", "b1 rung 2: 2 → 1", "b2 rung 1: 2 → 1"]


# ----------------------------------------------------------------------------------------------
# The figure


def test_figure_draws_stopped_runs_faint_to_their_rung_and_names_the_finished(tmp_path):
    directories, decisions = halving_runs(tmp_path)
    runs = plots_halving.read_runs([d / "metrics.json" for d in directories], [d / "history.csv" for d in directories])
    figure = plots_halving.halving_figure(plan(), spec(), runs, decisions)
    axis = figure.axes[0]
    faint = [line for line in axis.lines if line.get_color() == FAINT and line.get_linestyle() == "-"]
    assert sorted(int(line.get_xdata()[-1]) for line in faint) == [1, 1, 1, 1, 2, 2]
    vertical = sorted({float(line.get_xdata()[0]) for line in axis.lines if line.get_linestyle() == "--"})
    assert vertical == [1.0, 2.0]
    strong = [line for line in axis.lines if line.get_linewidth() == 2.0]
    assert len(strong) == 2 and all(len(line.get_xdata()) == 4 for line in strong)
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend[0].startswith("dense=32 ×2") and "6 runs stopped at a rung" in legend
    assert "1 of 4 combinations trained all 4 epochs" in figure._suptitle.get_text()
    output = tmp_path / "halving.png"
    plots_halving.plot_halving_files(plan(), spec(), [d / "metrics.json" for d in directories],
                                     [d / "history.csv" for d in directories], [], output)
    assert_png(output)


def test_figure_without_a_trained_epoch_says_so():
    figure = plots_halving.halving_figure(plan(), spec(), [], [])
    assert "No run of this sweep has trained an epoch yet." in [text.get_text() for text in figure.axes[0].texts]


# ----------------------------------------------------------------------------------------------
# End to end: a 3-combination sweep through Snakemake to the report

MODELS = """\
defaults: {filters: [4], kernel_sizes: [3], pool_sizes: [4], dense: 8, dropout: 0.2,
           learning_rate: 0.003, epochs: 2, batch_size: 32, seed: 1, replicates: 1}
sweeps:
  h:
    halving: {min_epochs: 1, eta: 3}
    grid:
      dense: [4, 8, 16]
"""


def test_e2e_a_halving_sweep_reaches_the_report_with_its_section(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "config" / "test" / "models.yaml").write_text(MODELS)
    settings = workdir / TEST_CONFIG
    settings.write_text(settings.read_text().replace("gpu_amount: 1", "gpu_amount: 0"))
    snakemake(workdir, "results/report.html")
    decision = json.loads((workdir / "results" / "sweeps" / "h" / "rung-1.json").read_text())
    assert (decision["alive"], len(decision["kept"])) == (3, 1)
    assert (workdir / "results" / "plots" / "sweeps" / "h-halving.png").exists()
    html = (workdir / "results" / "report.html").read_text()
    page: Page = parse(html)
    text = re.sub(r"\s+", " ", "".join(page.text))
    survivor = decision["kept"][0].removeprefix("h.dense-")
    assert f"1 trained all 2 epochs: dense={survivor} (mean test accuracy" in text
    assert "2 combinations (2 runs) stopped at a rung." in text
    assert "Rung 1 of 2, epoch 1: 1 of 3 kept for epoch 2" in text
    for line in decision["combinations"]:
        assert line["reason"] in text
    assert html.count('class="badge stopped"') == 4 and 'class="badge failed"' not in html
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/report.html").stdout
