# Successive halving sweeps (mnist3d.config.halving): a rung job trains a run on to a rung's epoch
# and leaves its state there; after each rung but the last, a decision (a checkpoint: the jobs of the
# next rung are known only once it is written) keeps the best 1/eta. The run's own `train` job then
# evaluates its last state (rules/train.smk). States stay: a re-decision goes on from them.
# Hyperband's brackets but the first decide in their own folder (bracket_decision); they share the
# states, whose epochs are all rungs of bracket 1.

RUNG_STATE_DIR = f"results/halving/{RUN_ID}/epoch-{{epoch}}"


wildcard_constraints:
    epoch=r"\d+",
    rung=r"\d+",
    # Bracket 1's decisions are rung-K.json beside the folders of the others.
    bracket=r"[2-9]|[1-9]\d+",
    sweep=NAME_PATTERN,


# Decisions read a few small files: no cluster job for them.
localrules:
    halving_decision,
    bracket_decision,


rule train_to_epoch:
    input:
        PREPARED,
        unpack(previous_rung_state),
    output:
        state=f"{RUNG_STATE_DIR}/checkpoint.npz",
        history=f"{RUNG_STATE_DIR}/history.csv",
        record=f"{RUNG_STATE_DIR}/rung.json",
    log:
        f"logs/train_to_epoch/{RUN_ID}/epoch-{{epoch}}.log",
    conda:
        "../envs/tensorflow.yaml"
    threads: config["train"]["threads"]
    resources:
        **{config["train"]["gpu_resource"]: config["train"]["gpu_amount"]},
        retries_left=train_retries_left,
    params:
        run=run_params,
        training_code=TRAINING_CODE,
    script:
        "../scripts/train_run.py"


checkpoint halving_decision:
    input:
        unpack(alive_inputs),
        code=code_files("mnist3d.results.halving"),
    output:
        "results/sweeps/{sweep}/rung-{rung}.json",
    log:
        "logs/halving/{sweep}/rung-{rung}.log",
    conda:
        "../envs/plotting.yaml"
    params:
        plan=bracket_plan_param,
    script:
        "../scripts/decide_rung.py"


checkpoint bracket_decision:
    input:
        unpack(alive_inputs),
        code=code_files("mnist3d.results.halving"),
    output:
        "results/sweeps/{sweep}/bracket-{bracket}/rung-{rung}.json",
    log:
        "logs/halving/{sweep}/bracket-{bracket}/rung-{rung}.log",
    conda:
        "../envs/plotting.yaml"
    params:
        plan=bracket_plan_param,
    script:
        "../scripts/decide_rung.py"
