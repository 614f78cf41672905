"""Snakemake adapter: a halving sweep's runs over their epochs, with the rung cut-offs."""

from mnist3d.plots.halving import plot_halving_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    inputs, params = snakemake.input, snakemake.params
    plot_halving_files(params.plan, params.sweep, inputs.metrics, inputs.histories, inputs.decisions,
                       snakemake.output[0])
