"""Snakemake adapter: 3D views of example test digits and of the best run's mistakes."""

from mnist3d.steplog import rule_log
from mnist3d.views3d import plot_digits_files

with rule_log(snakemake) as log:
    plot_digits_files(
        snakemake.input.prepared,
        snakemake.input.table,
        snakemake.params.runs,
        snakemake.input.predictions,
        dict(snakemake.output.items()),
        log=log,
    )
