"""Snakemake adapter: test accuracy against the varied fields of one sweep."""

from mnist3d.plots.sweep import plot_sweep_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    plot_sweep_files(snakemake.input.entries, snakemake.input.table, snakemake.params.sweep, snakemake.output[0])
