# Not a target of `all`: ask for it, e.g.
#   snakemake results/classified/best/rep1/mine.csv --config classify_file=mine.h5
rule classify:
    input:
        model=f"{RUN_DIR}/model.keras",
        metrics=f"{RUN_DIR}/metrics.json",
        grids=classify_file,
        code=code_files("mnist3d.training.classify"),
    output:
        f"results/classified/{RUN_ID}/{{name}}.csv",
    log:
        f"logs/classify/{RUN_ID}/{{name}}.log",
    conda:
        "../envs/tensorflow.yaml"
    params:
        # Which dataset of the file; unset: the only one of grids, else X_test.
        dataset=config.get("classify_dataset"),
    script:
        "../scripts/classify_grids.py"
