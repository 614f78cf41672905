"""Snakemake adapter: train one run (one replicate of one entry of the models file)."""

import os
from pathlib import Path

from mnist3d.steplog import rule_log
from mnist3d.training import checkpoint, gpuslots
from mnist3d.training import server as trainserver

# TensorFlow's C++ start-up chatter (no CUDA here, CPU instruction sets) would bury the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

config = snakemake.config["train"]
entry, replicate = snakemake.wildcards.entry, snakemake.wildcards.replicate
with rule_log(snakemake) as log:
    # Before anything imports TensorFlow: it reads CUDA_VISIBLE_DEVICES once, when it loads.
    with gpuslots.claim(
        config["gpu_amount"], config.get("gpus"), Path(".snakemake/gpu-slots"), log
    ) as gpu_slot:
        output = snakemake.output
        # JSON values: the warm training server receives them over its socket.
        arguments = {
            "run": {"entry": entry, "replicate": int(replicate), "params": snakemake.params.run},
            "paths": {
                "prepared": snakemake.input[0],
                **{name: output[name] for name in output.keys()},
                # Outside the outputs, which Snakemake deletes when a job does not finish.
                "checkpoint_dir": str(checkpoint.run_directory(entry, replicate)),
            },
            "environment": {
                "threads": snakemake.threads,
                # A checkpoint is resumed only by the same training code on the same prepared data.
                "training_code": f"{snakemake.params.training_code} data {checkpoint.file_digest(snakemake.input[0])}",
                # Read here, not passed as rule parameters: changing them must not retrain finished runs.
                "record_failure": config["keep_going_on_failure"],
                "retries_left": snakemake.resources.get("retries_left", 0),
                "gpu_slot": gpu_slot,
            },
        }
        trainserver.train_job(
            arguments, snakemake.params.training_code, config["warm_server_idle"], gpu_slot, log
        )
