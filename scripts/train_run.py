"""Snakemake adapter: train one run (one replicate of one entry of the models file)."""

import os
from pathlib import Path

from mnist3d.steplog import rule_log
from mnist3d.train import RunPaths, train_run

# TensorFlow's C++ start-up chatter (no CUDA here, CPU instruction sets) would bury the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

with rule_log(snakemake) as log:
    output = snakemake.output
    train_run(
        run_id=f"{snakemake.wildcards.entry}/rep{snakemake.wildcards.replicate}",
        params=snakemake.params.run,
        prepared_path=Path(snakemake.input[0]),
        paths=RunPaths(
            model=Path(output.model),
            history=Path(output.history),
            predictions=Path(output.predictions),
            metrics=Path(output.metrics),
        ),
        threads=snakemake.threads,
        # Read here, not passed as a rule parameter: changing it must not retrain finished runs.
        record_failure=snakemake.config["train"]["keep_going_on_failure"],
        log=log,
    )
