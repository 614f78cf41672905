"""Snakemake adapter: train one run (one replicate of one entry of the models file); for a halving
sweep (rules/halving.smk), train it on to a rung's epoch, or evaluate its last rung state."""

import os
from pathlib import Path

from mnist3d.results.rungs import training_job
from mnist3d.steplog import rule_log
from mnist3d.training import checkpoint, gpuslots
from mnist3d.training import server as trainserver

# TensorFlow's C++ start-up chatter (no CUDA here, CPU instruction sets) would bury the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

config = snakemake.config["train"]
entry, replicate = snakemake.wildcards.entry, snakemake.wildcards.replicate
inputs, params = snakemake.input, snakemake.params
run = {"entry": entry, "replicate": int(replicate), "params": params.run}
# A rung job has the rung's epoch as a wildcard; a run's own job has the halving sweep's states as a parameter.
epoch = int(snakemake.wildcards.epoch) if "epoch" in snakemake.wildcards.keys() else None
halving, paths = training_job(entry, params.run["epochs"], dict(inputs.items()), dict(snakemake.output.items()),
                              epoch, params.get("rung_states"))
run.update(halving)
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
                "training_code": f"{params.training_code} data {checkpoint.file_digest(inputs[0])}",
                # Read here, not passed as rule parameters: changing them must not retrain finished runs.
                "record_failure": config["keep_going_on_failure"],
                "retries_left": snakemake.resources.get("retries_left", 0),
                "gpu_slot": gpu_slot,
            },
        }
        trainserver.train_job(
            arguments, params.training_code, config["warm_server_idle"], gpu_slot, log
        )
