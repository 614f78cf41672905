from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "scripts/mnist3d/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/halving.smk"
include: "rules/classify.smk"
include: "rules/plots.smk"
include: "rules/effects.smk"
include: "rules/tensorboard.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/report.html",
        expand(rules.tensorboard.output[0], zip, **RUN_WILDCARDS),
