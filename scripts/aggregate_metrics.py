"""Snakemake adapter: every run's metrics.json, history.csv and predictions.npz -> results/metrics.csv and
the per-entry summary with intervals, tests against the best entry and verdicts."""

from mnist3d.metrics import aggregate
from mnist3d.stats import headline
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    table, entries = aggregate(
        snakemake.input.metrics,
        snakemake.input.histories,
        snakemake.input.predictions,
        snakemake.output.table,
        snakemake.output.entries,
        sweeps=snakemake.params.sweeps,
    )
    log(f"{len(table)} runs, {int((table['status'] != 'ok').sum())} failed, {len(entries)} entries")
    log(headline(entries)["sentence"])
