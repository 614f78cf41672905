"""Snakemake adapter: every run's metrics.json and history.csv -> results/metrics.csv and the per-entry summary."""

from mnist3d.metrics import aggregate
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    table = aggregate(
        snakemake.input.metrics,
        snakemake.input.histories,
        snakemake.output.table,
        snakemake.output.entries,
    )
    log(f"{len(table)} runs, {int((table['status'] != 'ok').sum())} failed")
