"""Snakemake adapter: the charts that compare every run."""

from mnist3d.plots.comparison import plot_comparison_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    plot_comparison_files(
        snakemake.input.table,
        snakemake.input.metrics,
        snakemake.input.histories,
        {name: snakemake.output[name] for name in snakemake.output.keys()},
        # The entry table's intervals and verdicts, where the rule passes it.
        entries_path=getattr(snakemake.input, "entries", None),
    )
