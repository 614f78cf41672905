"""Snakemake adapter: the learning curves, confusion matrix and per-digit accuracy of one run."""

from mnist3d.plots.run import plot_run_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    plot_run_files(
        snakemake.input.metrics,
        snakemake.input.history,
        snakemake.input.predictions,
        {name: snakemake.output[name] for name in snakemake.output.keys()},
    )
