"""Snakemake adapter: validate the data file and write its summary."""

from mnist3d.atomic import write_json
from mnist3d.datacheck import DataError, summarise
from mnist3d.steplog import step_log

with step_log(snakemake.log[0], expected_errors=(DataError,), outputs=snakemake.output) as log:
    summary = summarise(snakemake.input[0])
    write_json(snakemake.output[0], summary)
    splits = ", ".join(f"{name} {info['samples']}" for name, info in summary["splits"].items())
    log(f"{summary['file']} ({summary['source']}) is valid: {splits} samples")
