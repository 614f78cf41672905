"""Snakemake adapter: decide which combinations of a halving sweep go on after one rung."""

from mnist3d.results.halving import decide_files, write_decision
from mnist3d.steplog import rule_log

with rule_log(snakemake) as log:
    plan, rung, inputs = snakemake.params.plan, int(snakemake.wildcards.rung), snakemake.input
    previous = inputs.previous if "previous" in inputs.keys() else None
    decision = decide_files(plan, rung, inputs.records, previous)
    write_decision(snakemake.output[0], decision)
    bracket = f", bracket {plan['bracket']}" if plan["bracket"] > 1 else ""
    log(f"sweep {plan['sweep']}{bracket}, rung {rung} (epoch {decision['epoch']}): {len(decision['kept'])} of "
        f"{decision['alive']} go on to epoch {decision['next_epoch']}: {', '.join(decision['kept'])}")
