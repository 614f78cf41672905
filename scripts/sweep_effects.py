"""Snakemake adapter: results/metrics.csv -> the effects of one sweep's settings on test accuracy."""

from mnist3d.results.effects import effects_sentences, write_effects
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    frame = write_effects(snakemake.input.table, snakemake.params.sweep, snakemake.output[0])
    for sentence in effects_sentences(frame):
        log(sentence)
