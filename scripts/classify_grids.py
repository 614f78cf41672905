"""Snakemake adapter: classify the grids of a user's HDF5 file (config classify_file) with one run's model."""

import os

from mnist3d.steplog import rule_log
from mnist3d.training.classify import classify

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

with rule_log(snakemake) as log:
    classify(snakemake.input.model, snakemake.input.grids, snakemake.output[0],
             dataset=snakemake.params.dataset, log=log, metrics_path=snakemake.input.metrics)
