"""Snakemake adapter: every run's metrics.json, history.csv and predictions.npz -> results/metrics.csv and
the per-entry summary with intervals, tests against the best entry and verdicts."""

from mnist3d.results.metrics import aggregate
from mnist3d.results.stats import standing
from mnist3d.steplog import rule_log


def stopped_note(table) -> str:
    stopped = int((table["status"] == "stopped").sum())
    return f", {stopped} stopped by halving" if stopped else ""


with rule_log(snakemake) as log:
    table, entries = aggregate(
        snakemake.input.metrics,
        snakemake.input.histories,
        snakemake.input.predictions,
        snakemake.output.table,
        snakemake.output.entries,
        sweeps=snakemake.params.sweeps,
    )
    log(f"{len(table)} runs, {int((table['status'] == 'failed').sum())} failed{stopped_note(table)}, {len(entries)} entries")
    facts = standing(entries)
    if facts["best_entry"] is None:
        log("no run finished")
    else:
        log(f"best entry {facts['best_entry']} ({facts['best_mean']:.4f} mean test accuracy); "
            f"{len(facts['tied'])} tied with it, {len(facts['below'])} below it")
