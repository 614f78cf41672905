"""Snakemake adapter: one run's metrics.json and history.csv -> its TensorBoard event file."""

from pathlib import Path

from mnist3d.results.tensorboard import EVENT_FILE, write_run_events
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    output = Path(snakemake.output[0])
    if output.name != EVENT_FILE:
        raise ValueError(f"rules/tensorboard.smk names the event file {output.name}, the writer {EVENT_FILE}")
    path = write_run_events(output.parent, snakemake.input.metrics, snakemake.input.history)
    log(f"{path}: {path.stat().st_size} bytes")
