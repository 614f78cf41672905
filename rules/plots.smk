# From trained runs to tables and figures. Nothing here imports TensorFlow, so re-plotting never
# retrains: the plotting modules are inputs, and touching them re-runs only these rules and the report.

import re

PLOT_RUN_DIR = f"results/plots/runs/{RUN_ID}"


rule aggregate_metrics:
    input:
        metrics=run_files("metrics.json"),
        histories=run_files("history.csv"),
        predictions=run_files("predictions.npz"),
        code=code_files("mnist3d.results.metrics"),
    output:
        table=report(
            "results/metrics.csv",
            caption=figure_caption("metrics_table"),
            category="Metrics",
        ),
        entries=report(
            "results/metrics_by_entry.csv",
            caption=figure_caption("metrics_entries"),
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
        code=code_files("mnist3d.plots.run"),
    output:
        curves=report(
            f"{PLOT_RUN_DIR}/curves.png",
            caption=figure_caption("run_curves"),
            category="Runs",
            subcategory="{entry}",
            labels={
                "run": RUN_ID,
                "figure": figure_label("run_curves"),
            },
        ),
        confusion=report(
            f"{PLOT_RUN_DIR}/confusion.png",
            caption=figure_caption("run_confusion"),
            category="Runs",
            subcategory="{entry}",
            labels={
                "run": RUN_ID,
                "figure": figure_label("run_confusion"),
            },
        ),
        per_class=report(
            f"{PLOT_RUN_DIR}/per_class.png",
            caption=figure_caption("run_per_class"),
            category="Runs",
            subcategory="{entry}",
            labels={
                "run": RUN_ID,
                "figure": figure_label("run_per_class"),
            },
        ),
    log:
        f"logs/plot_run/{RUN_ID}.log",
    conda:
        "../envs/plotting.yaml"
    script:
        "../scripts/plot_run.py"


rule plot_entry:
    input:
        metrics=lambda wildcards: entry_run_files(wildcards.entry, "metrics.json"),
        histories=lambda wildcards: entry_run_files(wildcards.entry, "history.csv"),
        code=code_files("mnist3d.plots.entry"),
    output:
        report(
            "results/plots/entries/{entry}.png",
            caption=figure_caption("entry_replicates"),
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
        code=code_files("mnist3d.plots.comparison"),
    output:
        test_accuracy=report(
            "results/plots/comparison/test_accuracy.png",
            caption=figure_caption("comparison_test_accuracy"),
            category="Comparison",
            labels={"figure": figure_label("comparison_test_accuracy")},
        ),
        accuracy_curves=report(
            "results/plots/comparison/accuracy_curves.png",
            caption=figure_caption("comparison_accuracy_curves"),
            category="Comparison",
            labels={"figure": figure_label("comparison_accuracy_curves")},
        ),
        loss_curves=report(
            "results/plots/comparison/loss_curves.png",
            caption=figure_caption("comparison_loss_curves"),
            category="Comparison",
            labels={"figure": figure_label("comparison_loss_curves")},
        ),
        measure_bars=report(
            "results/plots/comparison/measure_bars.png",
            caption=figure_caption("comparison_measure_bars"),
            category="Comparison",
            labels={"figure": figure_label("comparison_measure_bars")},
        ),
        grouped_by_time=report(
            "results/plots/comparison/grouped_by_time.png",
            caption=figure_caption("comparison_grouped_by_time"),
            category="Comparison",
            labels={"figure": figure_label("comparison_grouped_by_time")},
        ),
        time_vs_accuracy=report(
            "results/plots/comparison/time_vs_accuracy.png",
            caption=figure_caption("comparison_time_vs_accuracy"),
            category="Comparison",
            labels={"figure": figure_label("comparison_time_vs_accuracy")},
        ),
        cost=report(
            "results/plots/comparison/cost.png",
            caption=figure_caption("comparison_cost"),
            category="Comparison",
            labels={"figure": figure_label("comparison_cost")},
        ),
    log:
        "logs/plot_comparison.log",
    conda:
        "../envs/plotting.yaml"
    script:
        "../scripts/plot_comparison.py"


# The example digits depend on the prepared data alone, so they are drawn while the models train;
# the mistakes of the best run wait for every run. Beside each PNG, the same digits as data for the
# report's rotatable views (mnist3d.plots.views).
rule plot_examples:
    input:
        prepared=PREPARED,
        code=code_files("mnist3d.plots.digits"),
    output:
        examples=report(
            "results/plots/digits/examples.png",
            caption=figure_caption("digits_examples"),
            category="Data",
        ),
        views="results/plots/digits/examples.json",
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
        code=code_files("mnist3d.plots.mistakes"),
    output:
        misclassified=report(
            "results/plots/digits/misclassified.png",
            caption=figure_caption("digits_misclassified"),
            category="Comparison",
            labels={"figure": figure_label("digits_misclassified")},
        ),
        views="results/plots/digits/misclassified.json",
    log:
        "logs/plot_misclassified.log",
    conda:
        "../envs/plotting.yaml"
    params:
        runs=[run.id for run in RUNS],
    script:
        "../scripts/plot_misclassified.py"


# The sweep's own names only: "{sweep}.png" would otherwise also match another's parallel figure.
rule plot_sweep:
    input:
        entries=rules.aggregate_metrics.output.entries,
        table=rules.aggregate_metrics.output.table,
        code=code_files("mnist3d.plots.parallel"),
    output:
        accuracy=report(
            "results/plots/sweeps/{sweep}.png",
            caption=figure_caption("sweep_accuracy"),
            category="Sweeps",
            labels={"sweep": "{sweep}"},
        ),
        parallel=report(
            "results/plots/sweeps/{sweep}-parallel.png",
            caption=figure_caption("sweep_parallel"),
            category="Sweeps",
            labels={"sweep": "{sweep}"},
        ),
    log:
        "logs/plot_sweep/{sweep}.log",
    wildcard_constraints:
        sweep="|".join(re.escape(name) for name in SWEEPS) or "no-sweep",
    conda:
        "../envs/plotting.yaml"
    params:
        sweep=lambda wildcards: SWEEPS[wildcards.sweep],
    script:
        "../scripts/plot_sweep.py"


# The runs of a halving sweep over their epochs, with the rung cut-offs from its decisions.
rule plot_halving:
    input:
        metrics=halving_run_files("metrics.json"),
        histories=halving_run_files("history.csv"),
        decisions=halving_decision_files,
        code=code_files("mnist3d.plots.halving"),
    output:
        report(
            "results/plots/sweeps/{sweep}-halving.png",
            caption=figure_caption("sweep_halving"),
            category="Sweeps",
            labels={"sweep": "{sweep}"},
        ),
    log:
        "logs/plot_halving/{sweep}.log",
    wildcard_constraints:
        sweep="|".join(re.escape(name) for name in HALVING) or "no-sweep",
    conda:
        "../envs/plotting.yaml"
    params:
        plan=halving_plan_param,
        sweep=lambda wildcards: SWEEPS[wildcards.sweep],
    script:
        "../scripts/plot_halving.py"
