"""Snakemake adapter: train one run (one replicate of one entry of the models file)."""

import os
from pathlib import Path

from mnist3d import checkpoint, gpuslots
from mnist3d.steplog import rule_log
from mnist3d.train import RunPaths, train_run

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
        train_run(
            run_id=f"{entry}/rep{replicate}",
            params=snakemake.params.run,
            prepared_path=Path(snakemake.input[0]),
            paths=RunPaths(
                model=Path(output.model),
                history=Path(output.history),
                predictions=Path(output.predictions),
                metrics=Path(output.metrics),
            ),
            threads=snakemake.threads,
            # Outside the outputs, which Snakemake deletes when a job does not finish.
            checkpoint_dir=checkpoint.run_directory(entry, replicate),
            # A checkpoint is resumed only by the same training code on the same prepared data.
            training_code=f"{snakemake.params.training_code} data {checkpoint.file_digest(snakemake.input[0])}",
            # Read here, not passed as rule parameters: changing them must not retrain finished runs.
            record_failure=snakemake.config["train"]["keep_going_on_failure"],
            retries_left=snakemake.resources.get("retries_left", 0),
            gpu_slot=gpu_slot,
            log=log,
        )
