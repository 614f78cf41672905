"""Snakemake adapter: mean curves with the range across the replicates of one entry."""

from mnist3d.plots import plot_entry_files
from mnist3d.steplog import step_log

with step_log(snakemake.log[0], outputs=snakemake.output):
    plot_entry_files(
        snakemake.wildcards.entry,
        snakemake.input.metrics,
        snakemake.input.histories,
        snakemake.output[0],
    )
