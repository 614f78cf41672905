# Effects of a sweep's settings on test accuracy (mnist3d.results.effects): an analysis of variance for
# grids with replicates, a linear model with intervals otherwise.


rule sweep_effects:
    input:
        table=rules.aggregate_metrics.output.table,
        code=code_files("mnist3d.results.effects"),
    output:
        "results/sweeps/{sweep}-effects.csv",
    log:
        "logs/sweep_effects/{sweep}.log",
    conda:
        "../envs/plotting.yaml"
    params:
        sweep=lambda wildcards: SWEEPS[wildcards.sweep],
    script:
        "../scripts/sweep_effects.py"
