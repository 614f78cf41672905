"""Snakemake adapter: the charts that compare every run."""

from mnist3d.plots import plot_comparison_files
from mnist3d.steplog import step_log

with step_log(snakemake.log[0], outputs=snakemake.output):
    plot_comparison_files(
        snakemake.input.table,
        snakemake.input.metrics,
        snakemake.input.histories,
        dict(snakemake.output.items()),
    )
