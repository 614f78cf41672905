# results/report.html: one self-contained page from the metrics tables and every figure.

RUN_WILDCARDS = {
    "entry": [run.entry for run in RUNS],
    "replicate": [run.replicate for run in RUNS],
}


# Each figure is the input named by its key in the table of figures (mnist3d.report.figures), where
# the adapter looks for it; tests/test_report.py checks that every figure of the table is here.
rule report:
    input:
        table=rules.aggregate_metrics.output.table,
        entries=rules.aggregate_metrics.output.entries,
        summary=DATA_SUMMARY,
        prepared=PREPARED,
        metrics=run_files("metrics.json"),
        run_curves=expand(rules.plot_run.output.curves, zip, **RUN_WILDCARDS),
        run_confusion=expand(rules.plot_run.output.confusion, zip, **RUN_WILDCARDS),
        run_per_class=expand(rules.plot_run.output.per_class, zip, **RUN_WILDCARDS),
        entry_replicates=expand(rules.plot_entry.output[0], entry=REPLICATED_ENTRIES),
        comparison_test_accuracy=rules.plot_comparison.output.test_accuracy,
        comparison_accuracy_curves=rules.plot_comparison.output.accuracy_curves,
        comparison_loss_curves=rules.plot_comparison.output.loss_curves,
        comparison_measure_bars=rules.plot_comparison.output.measure_bars,
        comparison_grouped_by_time=rules.plot_comparison.output.grouped_by_time,
        comparison_time_vs_accuracy=rules.plot_comparison.output.time_vs_accuracy,
        comparison_cost=rules.plot_comparison.output.cost,
        digits_examples=rules.plot_examples.output.examples,
        digits_misclassified=rules.plot_misclassified.output.misclassified,
        # The same digits as data, for the page's rotatable views.
        digits_examples_views=rules.plot_examples.output.views,
        digits_misclassified_views=rules.plot_misclassified.output.views,
        sweep_accuracy=expand(rules.plot_sweep.output.accuracy, sweep=list(SWEEPS)),
        sweep_parallel=expand(rules.plot_sweep.output.parallel, sweep=list(SWEEPS)),
        sweep_effects=expand(rules.sweep_effects.output[0], sweep=list(SWEEPS)),
        sweep_halving=expand(rules.plot_halving.output[0], sweep=list(HALVING)),
        # What the halving section reads besides the figures: the decisions, and each run's epochs.
        decisions=halving_decision_files,
        histories=run_files("history.csv"),
        code=code_files("mnist3d.report.render"),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    conda:
        "../envs/plotting.yaml"
    params:
        runs=[run.id for run in RUNS],
        replicated_entries=REPLICATED_ENTRIES,
        sweeps=list(SWEEPS.values()),
        halving=[plan.as_param() for plan in HALVING.values()],
    script:
        "../scripts/render_report.py"
