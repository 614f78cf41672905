rule train:
    input:
        PREPARED,
        # A halving sweep's run: its last rung state and the decision that ended it (rules/halving.smk).
        unpack(halving_inputs),
    output:
        model=f"{RUN_DIR}/model.keras",
        history=f"{RUN_DIR}/history.csv",
        predictions=f"{RUN_DIR}/predictions.npz",
        metrics=f"{RUN_DIR}/metrics.json",
    log:
        f"logs/train/{RUN_ID}.log",
    conda:
        "../envs/tensorflow.yaml"
    threads: config["train"]["threads"]
    resources:
        **{config["train"]["gpu_resource"]: config["train"]["gpu_amount"]},
        # Not a limit (nothing caps it): how the job learns whether a retry follows.
        retries_left=train_retries_left,
    params:
        run=run_params,
        training_code=TRAINING_CODE,
        rung_states=rung_state_pattern,
    script:
        "../scripts/train_run.py"
