"""Snakemake adapter: one run's metrics.json and history.csv -> its TensorBoard event file."""

from mnist3d.results.tensorboard import write_run_events
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    path = write_run_events(snakemake.output[0], snakemake.input.metrics, snakemake.input.history)
    log(f"{path}: {path.stat().st_size} bytes")
