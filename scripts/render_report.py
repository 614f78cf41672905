"""Snakemake adapter: results/report.html from the metrics tables, the figures and the data summary."""

from mnist3d.report import ReportImages, write_report_from_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    inputs, params = snakemake.input, snakemake.params
    figures = ("curves", "confusion", "per_class")
    images = ReportImages(
        runs={
            run: dict(zip(figures, paths))
            for run, *paths in zip(params.runs, *(inputs[f"run_{name}"] for name in figures))
        },
        entries=dict(zip(params.replicated_entries, inputs.entry_plots)),
        comparison={name: inputs[name] for name in params.comparison},
        digits={name: inputs[name] for name in params.digits},
        # One figure per sweep spec, in the same order; a models file without sweeps has neither.
        sweeps=list(zip(params.sweeps, inputs.sweep_plots)),
    )
    write_report_from_files(
        snakemake.output[0],
        table_path=inputs.table,
        entries_path=inputs.entries,
        summary_path=inputs.summary,
        prepared_path=inputs.prepared,
        metrics_paths=inputs.metrics,
        images=images,
    )
