"""Snakemake adapter: every run's metrics.json, history.csv and predictions.npz -> results/metrics.csv and
the per-entry summary with intervals, tests against the best entry and verdicts."""

from mnist3d.report.wording import ranking_sentences
from mnist3d.results.metrics import aggregate
from mnist3d.results.stats import standing
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
    # The report's first sentences: the best entry and the entries the tests cannot tell from it.
    log(" ".join(ranking_sentences(standing(entries))))
