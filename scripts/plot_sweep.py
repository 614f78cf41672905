"""Snakemake adapter: test accuracy against the varied fields of one sweep, and its parallel coordinates."""

from mnist3d.plots.parallel import plot_parallel_file
from mnist3d.plots.sweep import plot_sweep_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    inputs, output, spec = snakemake.input, snakemake.output, snakemake.params.sweep
    plot_sweep_files(inputs.entries, inputs.table, spec, output.accuracy)
    plot_parallel_file(inputs.entries, spec, output.parallel)
