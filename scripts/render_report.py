"""Snakemake adapter: results/report.html from the metrics tables, the figures and the data summary."""

from mnist3d.report import figures
from mnist3d.report.render import ReportImages, write_report_from_files
from mnist3d.steplog import rule_log

with rule_log(snakemake):
    inputs, params = snakemake.input, snakemake.params
    # Each figure is the input named by its key in the table of figures, as rules/report.smk names it.
    run_figures = figures.group("run")
    images = ReportImages(
        runs={
            run: {figure.name: path for figure, path in zip(run_figures, paths)}
            for run, *paths in zip(params.runs, *(inputs[figure.key] for figure in run_figures))
        },
        entries=dict(zip(params.replicated_entries, inputs.entry_replicates)),
        comparison={figure.name: inputs[figure.key] for figure in figures.group("comparison")},
        digits={figure.name: inputs[figure.key] for figure in figures.group("digits")},
        views={figure.name: inputs[f"{figure.key}_views"] for figure in figures.group("digits")},
        # One figure of each kind per sweep spec, in the same order; a models file without sweeps has none.
        sweeps=list(zip(params.sweeps, inputs.sweep_accuracy)),
        sweep_parallel={spec["name"]: path for spec, path in zip(params.sweeps, inputs.sweep_parallel)},
        sweep_effects={spec["name"]: path for spec, path in zip(params.sweeps, inputs.sweep_effects)},
        halving={plan["sweep"]: path for plan, path in zip(params.halving, inputs.sweep_halving)},
    )
    write_report_from_files(
        snakemake.output[0],
        table_path=inputs.table,
        entries_path=inputs.entries,
        summary_path=inputs.summary,
        prepared_path=inputs.prepared,
        metrics_paths=inputs.metrics,
        images=images,
        halving=params.halving,
        decision_paths=inputs.decisions,
        history_paths=inputs.histories,
    )
