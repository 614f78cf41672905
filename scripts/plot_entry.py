"""Snakemake adapter: mean curves with the range across the replicates of one entry."""

from mnist3d.plots.entry import plot_entry_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    plot_entry_files(
        snakemake.wildcards.entry,
        snakemake.input.metrics,
        snakemake.input.histories,
        snakemake.output[0],
    )
