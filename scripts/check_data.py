"""Snakemake adapter: validate the data file and write its summary, warnings included."""

from mnist3d.data.check import DataError, summarise, write_summary
from mnist3d.steplog import rule_log

with rule_log(snakemake, expected_errors=(DataError,)) as log:
    summary = summarise(snakemake.input[0])
    write_summary(snakemake.output[0], summary)
    splits = ", ".join(f"{name} {info['samples']}" for name, info in summary["splits"].items())
    log(f"{summary['file']} ({summary['source']}) is valid: {splits} samples")
    for warning in summary["warnings"]:
        log(f"WARNING: {summary['file']}: {warning}")
