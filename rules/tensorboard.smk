# TensorBoard event files of every run (mnist3d.results.tensorboard), from the files training left: the
# training job is untouched, and `tensorboard --logdir results/tensorboard` shows each run as ENTRY/repK.

TENSORBOARD_RUN_DIR = f"results/tensorboard/{RUN_ID}"


rule tensorboard:
    input:
        metrics=f"{RUN_DIR}/metrics.json",
        history=f"{RUN_DIR}/history.csv",
        code=code_files("mnist3d.results.tensorboard"),
    output:
        directory(TENSORBOARD_RUN_DIR),
    log:
        f"logs/tensorboard/{RUN_ID}.log",
    conda:
        "../envs/tensorboard.yaml"
    script:
        "../scripts/write_tensorboard.py"
