"""Snakemake adapter: 3D views of the test digits the best run got wrong with the most confidence."""

from mnist3d.plots.mistakes import plot_misclassified_file
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    best = plot_misclassified_file(
        snakemake.input.prepared,
        snakemake.input.table,
        snakemake.params.runs,
        snakemake.input.predictions,
        snakemake.output.misclassified,
        snakemake.output.views,
    )
    log(f"mistakes of {best or 'no run: none finished'}")
