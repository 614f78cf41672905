# results/report.html: one self-contained page from the metrics table and every figure.

RUN_WILDCARDS = {
    "entry": [run.entry for run in RUNS],
    "replicate": [run.replicate for run in RUNS],
}


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
        entry_plots=expand(rules.plot_entry.output[0], entry=REPLICATED_ENTRIES),
        test_accuracy=rules.plot_comparison.output.test_accuracy,
        accuracy_curves=rules.plot_comparison.output.accuracy_curves,
        loss_curves=rules.plot_comparison.output.loss_curves,
        measure_bars=rules.plot_comparison.output.measure_bars,
        grouped_by_time=rules.plot_comparison.output.grouped_by_time,
        time_vs_accuracy=rules.plot_comparison.output.time_vs_accuracy,
        examples=rules.plot_examples.output[0],
        misclassified=rules.plot_misclassified.output[0],
        sweep_plots=expand(rules.plot_sweep.output[0], sweep=list(SWEEPS)),
        code=package_files(
            "report.py",
            "report_context.py",
            "report_sections.py",
            "report_data.py",
            "report_format.py",
            "confusion.py",
            "metrics.py",
            "stats.py",
            "templates/report.html.j2",
        ),
    output:
        "results/report.html",
    log:
        "logs/report.log",
    conda:
        "../envs/plotting.yaml"
    params:
        runs=[run.id for run in RUNS],
        replicated_entries=REPLICATED_ENTRIES,
        comparison=list(rules.plot_comparison.output.keys()),
        digits=["examples", "misclassified"],
        sweeps=list(SWEEPS.values()),
    script:
        "../scripts/render_report.py"
