"""Snakemake adapter: reshape to (N, 16, 16, 16, 1) and split a validation set off the training set."""

from mnist3d.data import prepare
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    arrays = prepare.prepare(
        snakemake.input.data,
        snakemake.params.validation_fraction,
        snakemake.params.split_seed,
    )
    prepare.save(snakemake.output[0], arrays)
    sizes = {name: len(values) for name, values in arrays.items() if name.startswith("y_")}
    log(f"wrote {snakemake.output[0]}: {sizes}")
