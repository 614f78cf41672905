"""Snakemake adapter: 3D views of one test digit per class, from the prepared data alone."""

from mnist3d.plots.digits import plot_examples_file
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    plot_examples_file(snakemake.input.prepared, snakemake.output.examples, snakemake.output.views)
