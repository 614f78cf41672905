"""A halving sweep's race: every run's validation accuracy over its epochs, with the rung cut-offs
(rule plot_halving).

Runs a decision stopped are faint grey and end at the rung that stopped them; the runs that trained
the sweep's full epochs are drawn in colour and named by their values. A dashed line stands at each
rung epoch where a decision was made, with how many combinations it ranked and kept, and a black dash
at the cut-off: the measure of the last combination kept.

`plan` is mnist3d.config.halving.HalvingPlan.as_param(), `spec` the sweep's spec as rule plot_sweep
gets it ({"name", "fields", "entries": {entry: {field: label}}}), the decisions those of
mnist3d.results.halving (every sweep's may be given: only this sweep's are drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from mnist3d.plots.style import (
    FAILED_COLOUR,
    FAINT,
    INK,
    MUTED,
    accuracy_text,
    entry_colours,
    epoch_axis,
    figure_title,
    label_size,
    message_figure,
    new_figure,
    save,
    styled,
)
from mnist3d.results.halving import read_decision
from mnist3d.results.runfiles import read_history, read_metrics


@dataclass
class HalvingRun:
    """What the figure needs of one run of the sweep."""

    run: str
    entry: str
    status: str  # "ok" (trained the full epochs), "stopped" (by a decision) or "failed"
    history: np.ndarray  # history.csv as mnist3d.results.runfiles.read_history reads it


def combination_label(spec: dict, entry: str) -> str:
    """A combination named by its values ("dense=16, learning_rate=0.01"), shorter than its entry name."""
    values = spec.get("entries", {}).get(entry)
    return ", ".join(f"{field}={values[field]}" for field in spec["fields"] if field in values) if values else entry


def sweep_decisions(plan: dict, decisions: list[dict]) -> list[dict]:
    """This sweep's decisions in (bracket, rung) order."""
    own = [decision for decision in decisions if decision.get("sweep") == plan["sweep"]]
    return sorted(own, key=lambda decision: (decision.get("bracket", 1), decision["rung"]))


def cutoffs(plan: dict, decisions: list[dict]) -> list[dict]:
    """Where the figure marks a decision: its epoch, the cut-off measure (None where nothing was kept),
    and its words ("rung 1: 9 → 3", with the bracket where the sweep has several)."""
    own = sweep_decisions(plan, decisions)
    several = len({decision.get("bracket", 1) for decision in own}) > 1
    marks = []
    for decision in own:
        cutoff = decision.get("cutoff") or {}
        where = f"b{decision.get('bracket', 1)} " if several else ""
        marks.append(
            {
                "epoch": int(decision["epoch"]),
                "value": cutoff.get("val_accuracy"),
                "text": f"{where}rung {decision['rung']}: {decision['alive']} → {len(decision['kept'])}",
            }
        )
    return marks


def _final(run: HalvingRun) -> float:
    values = np.asarray(run.history["val_accuracy"], dtype=float)
    return float(values[-1]) if values.size else float("nan")


@styled
def halving_figure(plan: dict, spec: dict, runs: list[HalvingRun], decisions: list[dict]) -> Figure:
    """Validation accuracy per epoch of every run of the sweep `plan`: the stopped runs faint, each
    ending at its rung; failed runs red and dotted; the runs that trained all `plan["epochs"]` in
    colour, named in the legend by their values with their last validation accuracy (mean over
    replicates); a dashed line and the cut-off measure at each decision."""
    drawn = [run for run in runs if len(run.history)]
    name = plan["sweep"]
    if not drawn:
        return message_figure(f"Halving sweep {name}", "No run of this sweep has trained an epoch yet.")
    finished = [run for run in drawn if run.status == "ok"]
    order = sorted({run.entry for run in finished}, key=lambda entry: -np.nanmean(
        [_final(run) for run in finished if run.entry == entry]))
    colours = entry_colours(order)
    figure = new_figure(11.0, 5.2)
    axis = figure.add_subplot()
    for run in drawn:
        if run.status == "ok":
            continue
        failed = run.status == "failed"
        colour = FAILED_COLOUR if failed else FAINT
        epochs = np.asarray(run.history["epoch"], dtype=float)
        values = np.asarray(run.history["val_accuracy"], dtype=float)
        axis.plot(epochs, values, color=colour, linewidth=0.9, alpha=0.8, linestyle=":" if failed else "-",
                  marker="o" if len(epochs) == 1 else None, markersize=3)
        axis.plot(epochs[-1:], values[-1:], color=colour, marker="o", markersize=3, linestyle="")
    for entry in reversed(order):  # the best drawn last, on top
        for run in (run for run in finished if run.entry == entry):
            axis.plot(np.asarray(run.history["epoch"], dtype=float), np.asarray(run.history["val_accuracy"],
                      dtype=float), color=colours[entry], linewidth=2.0, alpha=0.9)
    marks = cutoffs(plan, decisions)
    for mark in marks:
        axis.axvline(mark["epoch"], color=MUTED, linestyle="--", linewidth=0.9, zorder=1)
        if mark["value"] is not None:
            axis.plot([mark["epoch"]], [mark["value"]], marker="_", markersize=16, markeredgewidth=2.2, color=INK,
                      linestyle="", zorder=5)
    epoch_axis(axis)
    axis.set_xlim(0.5, plan["epochs"] + 0.5)
    axis.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axis.set_ylabel("validation accuracy")
    for mark in marks:  # above the axes, where no curve runs
        axis.text(mark["epoch"], 1.01, mark["text"], transform=axis.get_xaxis_transform(), ha="center", va="bottom",
                  fontsize=8, color=MUTED)
    handles = []
    for entry in order:
        own = [run for run in finished if run.entry == entry]
        times = f" ×{len(own)}" if len(own) > 1 else ""
        final = accuracy_text(float(np.nanmean([_final(run) for run in own])))
        handles.append(Line2D([], [], color=colours[entry], linewidth=2.2,
                              label=f"{combination_label(spec, entry)}{times}  {final}"))
    stopped = [run for run in drawn if run.status == "stopped"]
    if stopped:
        handles.append(Line2D([], [], color=FAINT, linewidth=1.2, marker="o", markersize=3,
                              label=f"{len(stopped)} runs stopped at a rung"))
    failed = [run for run in drawn if run.status == "failed"]
    if failed:
        handles.append(Line2D([], [], color=FAILED_COLOUR, linewidth=1.2, linestyle=":",
                              label=f"{len(failed)} failed runs"))
    if any(mark["value"] is not None for mark in marks):
        handles.append(Line2D([], [], color=INK, marker="_", markersize=12, markeredgewidth=2.2, linestyle="",
                              label="cut-off (last combination kept)"))
    size = label_size(len(handles))
    title = f"trained all {plan['epochs']} epochs (×replicates), last val. accuracy"
    figure.legend(handles=handles, title=title, title_fontsize=size, fontsize=size, loc="outside right upper")
    combinations = len({run.entry for run in runs})
    figure_title(figure, f"Halving sweep {name}: {len(order)} of {combinations} combinations trained all "
                         f"{plan['epochs']} epochs, eta {plan['eta']}")
    return figure


def read_runs(metrics_paths, history_paths) -> list[HalvingRun]:
    """Each run's metrics.json and history.csv (lists in the same run order)."""
    runs = []
    for metrics_path, history_path in zip(metrics_paths, history_paths, strict=True):
        metrics = read_metrics(metrics_path)
        runs.append(HalvingRun(metrics["run"], metrics["entry"], metrics.get("status", "failed"),
                               read_history(history_path)))
    return runs


def plot_halving_files(plan: dict, spec: dict, metrics_paths, history_paths, decision_paths, output) -> None:
    """The sweep's figure from its runs' metrics.json and history.csv and the decision files."""
    decisions = [read_decision(path) for path in decision_paths]
    save(halving_figure(plan, spec, read_runs(metrics_paths, history_paths), decisions), output)
