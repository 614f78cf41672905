"""Snakemake adapter: train one run (one replicate of one entry of the models file); for a halving
sweep (rules/halving.smk), train it on to a rung's epoch, or evaluate its last rung state."""

import json
import os
from pathlib import Path

from mnist3d.results.rungs import furthest_state, stop_of
from mnist3d.steplog import rule_log
from mnist3d.training import checkpoint, gpuslots
from mnist3d.training import server as trainserver

# TensorFlow's C++ start-up chatter (no CUDA here, CPU instruction sets) would bury the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

config = snakemake.config["train"]
entry, replicate = snakemake.wildcards.entry, snakemake.wildcards.replicate
inputs, output = snakemake.input, snakemake.output
run = {"entry": entry, "replicate": int(replicate), "params": snakemake.params.run}
paths = {name: None for name in ("model", "history", "predictions", "metrics")}
if "epoch" in snakemake.wildcards.keys():  # a rung job: on to the rung's epoch, leaving the state there
    run["until_epoch"] = int(snakemake.wildcards.epoch)
    paths.update(rung_checkpoint=output.state, rung_history=output.history, rung_record=output.record)
else:
    paths.update({name: output[name] for name in output.keys()})
if "resume_from" in inputs.keys():  # halving: the previous rung's state, or the last one the decisions left
    paths.update(resume_from=inputs.resume_from, resume_record=inputs.resume_record)
    if "decision" in inputs.keys():
        run.update(stop_of(json.loads(Path(inputs.decision).read_text()), entry))
elif "epoch" not in snakemake.wildcards.keys():
    # Trained straight through (`halving:` removed): from the furthest state a halving sweep left, if any.
    paths.update(furthest_state(snakemake.params.rung_states, run["params"]["epochs"]))
with rule_log(snakemake) as log:
    # Before anything imports TensorFlow: it reads CUDA_VISIBLE_DEVICES once, when it loads.
    with gpuslots.claim(
        config["gpu_amount"], config.get("gpus"), Path(".snakemake/gpu-slots"), log
    ) as gpu_slot:
        # JSON values: the warm training server receives them over its socket.
        arguments = {
            "run": run,
            "paths": {
                "prepared": inputs[0],
                **paths,
                # Outside the outputs, which Snakemake deletes when a job does not finish.
                "checkpoint_dir": str(checkpoint.run_directory(entry, replicate)),
            },
            "environment": {
                "threads": snakemake.threads,
                # A checkpoint is resumed only by the same training code on the same prepared data.
                "training_code": f"{snakemake.params.training_code} data {checkpoint.file_digest(inputs[0])}",
                # Read here, not passed as rule parameters: changing them must not retrain finished runs.
                "record_failure": config["keep_going_on_failure"],
                "retries_left": snakemake.resources.get("retries_left", 0),
                "gpu_slot": gpu_slot,
            },
        }
        trainserver.train_job(
            arguments, snakemake.params.training_code, config["warm_server_idle"], gpu_slot, log
        )
