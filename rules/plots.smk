# From trained runs to tables and figures. Nothing here imports TensorFlow, so re-plotting never
# retrains: the plotting modules are inputs, and touching them re-runs only these rules and the report.

PLOT_RUN_DIR = "results/plots/runs/{entry}/rep{replicate}"
CAPTIONS = "../scripts/report/captions"


rule aggregate_metrics:
    input:
        metrics=run_files("metrics.json"),
        histories=run_files("history.csv"),
        predictions=run_files("predictions.npz"),
        code=package_files("metrics.py", "stats.py"),
    output:
        table=report(
            "results/metrics.csv",
            caption=f"{CAPTIONS}/metrics_table.rst",
            category="Metrics",
        ),
        entries=report(
            "results/metrics_by_entry.csv",
            caption=f"{CAPTIONS}/metrics_by_entry.rst",
            category="Metrics",
        ),
    log:
        "logs/aggregate_metrics.log",
    conda:
        "../envs/plotting.yaml"
    params:
        sweeps=SWEEP_OF_ENTRY,
    script:
        "../scripts/aggregate_metrics.py"


rule plot_run:
    input:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        predictions=f"{RUN_DIR}/predictions.npz",
        code=package_files(
            "plots_run.py", "plots_inputs.py", "plotstyle.py", "confusion.py"
        ),
    output:
        curves=report(
            f"{PLOT_RUN_DIR}/curves.png",
            caption=f"{CAPTIONS}/run_curves.rst",
            category="Runs",
            subcategory="{entry}",
            labels={"run": "{entry}/rep{replicate}", "figure": "learning curves"},
        ),
        confusion=report(
            f"{PLOT_RUN_DIR}/confusion.png",
            caption=f"{CAPTIONS}/run_confusion.rst",
            category="Runs",
            subcategory="{entry}",
            labels={"run": "{entry}/rep{replicate}", "figure": "confusion matrix"},
        ),
        per_class=report(
            f"{PLOT_RUN_DIR}/per_class.png",
            caption=f"{CAPTIONS}/run_per_class.rst",
            category="Runs",
            subcategory="{entry}",
            labels={"run": "{entry}/rep{replicate}", "figure": "accuracy per digit"},
        ),
    log:
        "logs/plot_run/{entry}/rep{replicate}.log",
    conda:
        "../envs/plotting.yaml"
    script:
        "../scripts/plot_run.py"


rule plot_entry:
    input:
        metrics=lambda wildcards: entry_run_files(wildcards.entry, "metrics.json"),
        histories=lambda wildcards: entry_run_files(wildcards.entry, "history.csv"),
        code=package_files("plots_entry.py", "plots_inputs.py", "plotstyle.py"),
    output:
        report(
            "results/plots/entries/{entry}.png",
            caption=f"{CAPTIONS}/entry_replicates.rst",
            category="Entries",
            labels={"entry": "{entry}"},
        ),
    log:
        "logs/plot_entry/{entry}.log",
    conda:
        "../envs/plotting.yaml"
    script:
        "../scripts/plot_entry.py"


rule plot_comparison:
    input:
        table=rules.aggregate_metrics.output.table,
        entries=rules.aggregate_metrics.output.entries,
        metrics=run_files("metrics.json"),
        histories=run_files("history.csv"),
        code=package_files(
            "plots_comparison.py",
            "plots_overlay.py",
            "plotstyle.py",
            "metrics.py",
            "stats.py",
        ),
    output:
        test_accuracy=report(
            "results/plots/comparison/test_accuracy.png",
            caption=f"{CAPTIONS}/comparison_test_accuracy.rst",
            category="Comparison",
            labels={"figure": "test accuracy per entry"},
        ),
        accuracy_curves=report(
            "results/plots/comparison/accuracy_curves.png",
            caption=f"{CAPTIONS}/comparison_accuracy_curves.rst",
            category="Comparison",
            labels={"figure": "accuracy curves"},
        ),
        loss_curves=report(
            "results/plots/comparison/loss_curves.png",
            caption=f"{CAPTIONS}/comparison_loss_curves.rst",
            category="Comparison",
            labels={"figure": "loss curves"},
        ),
        measure_bars=report(
            "results/plots/comparison/measure_bars.png",
            caption=f"{CAPTIONS}/comparison_measure_bars.rst",
            category="Comparison",
            labels={"figure": "time, validation accuracy and loss"},
        ),
        grouped_by_time=report(
            "results/plots/comparison/grouped_by_time.png",
            caption=f"{CAPTIONS}/comparison_grouped_by_time.rst",
            category="Comparison",
            labels={"figure": "grouped by training time"},
        ),
        time_vs_accuracy=report(
            "results/plots/comparison/time_vs_accuracy.png",
            caption=f"{CAPTIONS}/comparison_time_vs_accuracy.rst",
            category="Comparison",
            labels={"figure": "test accuracy against time"},
        ),
    log:
        "logs/plot_comparison.log",
    conda:
        "../envs/plotting.yaml"
    script:
        "../scripts/plot_comparison.py"


# The example digits depend on the prepared data alone, so they are drawn while the models train;
# the mistakes of the best run wait for every run.
rule plot_examples:
    input:
        prepared=PREPARED,
        code=package_files("views3d.py", "plotstyle.py", "confusion.py"),
    output:
        report(
            "results/plots/digits/examples.png",
            caption=f"{CAPTIONS}/digits_examples.rst",
            category="Data",
        ),
    log:
        "logs/plot_examples.log",
    conda:
        "../envs/plotting.yaml"
    script:
        "../scripts/plot_examples.py"


rule plot_misclassified:
    input:
        prepared=PREPARED,
        table=rules.aggregate_metrics.output.table,
        predictions=run_files("predictions.npz"),
        code=package_files(
            "views3d.py", "plotstyle.py", "confusion.py", "metrics.py", "stats.py"
        ),
    output:
        report(
            "results/plots/digits/misclassified.png",
            caption=f"{CAPTIONS}/digits_misclassified.rst",
            category="Comparison",
            labels={"figure": "mistakes of the best run"},
        ),
    log:
        "logs/plot_misclassified.log",
    conda:
        "../envs/plotting.yaml"
    params:
        runs=[run.id for run in RUNS],
    script:
        "../scripts/plot_misclassified.py"


rule plot_sweep:
    input:
        entries=rules.aggregate_metrics.output.entries,
        table=rules.aggregate_metrics.output.table,
        code=package_files(
            "plots_sweep.py",
            "plotstyle.py",
            "report_format.py",
            "metrics.py",
            "stats.py",
        ),
    output:
        report(
            "results/plots/sweeps/{sweep}.png",
            caption=f"{CAPTIONS}/sweep.rst",
            category="Sweeps",
            labels={"sweep": "{sweep}"},
        ),
    log:
        "logs/plot_sweep/{sweep}.log",
    conda:
        "../envs/plotting.yaml"
    params:
        sweep=lambda wildcards: SWEEPS[wildcards.sweep],
    script:
        "../scripts/plot_sweep.py"
