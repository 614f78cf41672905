# TensorBoard event files of every run (mnist3d.results.tensorboard), from the files training left: the
# training job is untouched, and `tensorboard --logdir results/tensorboard` shows each run as ENTRY/repK.

TENSORBOARD_RUN_DIR = f"results/tensorboard/{RUN_ID}"
# The file, not its directory, is the output, so that `snakemake --touch` can stand it in; its name is
# mnist3d.results.tensorboard.EVENT_FILE (the adapter checks).
TENSORBOARD_EVENT_FILE = "events.out.tfevents.0.mnist3d"


rule tensorboard:
    input:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        code=code_files("mnist3d.results.tensorboard"),
    output:
        f"{TENSORBOARD_RUN_DIR}/{TENSORBOARD_EVENT_FILE}",
    log:
        f"logs/tensorboard/{RUN_ID}.log",
    conda:
        "../envs/tensorboard.yaml"
    script:
        "../scripts/write_tensorboard.py"
