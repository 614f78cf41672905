"""Snakemake adapter: the charts that compare every run."""

from mnist3d.plots import plot_comparison_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    plot_comparison_files(
        snakemake.input.table,
        snakemake.input.metrics,
        snakemake.input.histories,
        dict(snakemake.output.items()),
    )
