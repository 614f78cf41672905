import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from mnist3d import codebase
from mnist3d.codebase import code_digest
from mnist3d.runid import NAME_PATTERN, RUN_ID, run_id
from mnist3d.config.runs import RunConfigError, load_runs
from mnist3d.config.halving import plans as halving_plans
from mnist3d.config.settings import (
    SettingsError,
    check_generated_split,
    check_settings,
    read_command_line_values,
)
from mnist3d.config.yamlfile import read_yaml
from mnist3d.results.halving import outcome as halving_outcome, read_decision
from mnist3d.report.figures import caption_path as figure_caption, label as figure_label
from mnist3d.training.server import TRAINED_BY

SCHEMAS = Path(workflow.basedir) / "config" / "schemas"
# One line per mistake first; Snakemake's validate then fills in the schema's defaults.
_settings_schema = read_yaml(SCHEMAS / "config.schema.yaml")
config.update(read_command_line_values(config, _settings_schema))
try:
    check_settings(config, _settings_schema)
except SettingsError as error:
    raise WorkflowError(str(error)) from None
validate(config, schema="../config/schemas/config.schema.yaml")

try:
    RUNS = load_runs(
        config["models"],
        SCHEMAS / "run.schema.yaml",
        SCHEMAS / "models.schema.yaml",
        max_runs=config["max_runs"],
    )
    HALVING = halving_plans(
        read_yaml(config["models"]).get("sweeps"),
        RUNS,
        config["models"],
        RunConfigError,
    )
except RunConfigError as error:
    raise WorkflowError(str(error)) from None
HALVING_OF_ENTRY = {entry: plan for plan in HALVING.values() for entry in plan.entries}
# What `snakemake -n` cannot list yet: the jobs of rungs that are still to be decided.
for _plan in HALVING.values():
    print(_plan.summary(), file=sys.stderr)
RUNS_BY_ID = {run.id: run for run in RUNS}
REPLICATED_ENTRIES = sorted({run.entry for run in RUNS if run.replicate > 1})
# Entries expanded from sweeps, and per sweep what the figures and the report need: its varied
# fields and each entry's values as labels.
SWEEP_OF_ENTRY = {run.entry: run.sweep for run in RUNS if run.sweep}
SWEEPS = {}
for _run in RUNS:
    if _run.sweep:
        _spec = SWEEPS.setdefault(
            _run.sweep, {"name": _run.sweep, "fields": [], "entries": {}}
        )
        _spec["entries"][_run.entry] = dict(_run.varied)
        _spec["fields"] = sorted(set(_spec["fields"]) | set(_run.varied))

RUN_DIR = f"results/runs/{RUN_ID}"
GENERATED_DATA = "results/data/generated-3dmnist.h5"
DATA_SUMMARY = "results/data/summary.json"
PREPARED = "results/data/prepared.npz"


wildcard_constraints:
    entry=NAME_PATTERN,
    replicate=r"\d+",


def run_files(name):
    """`name` in the directory of every run, for rules that gather all runs."""
    return [
        f"{RUN_DIR}/{name}".format(entry=run.entry, replicate=run.replicate)
        for run in RUNS
    ]


def entry_run_files(entry, name):
    """`name` in the directory of every replicate of one entry."""
    return [
        f"{RUN_DIR}/{name}".format(entry=run.entry, replicate=run.replicate)
        for run in RUNS
        if run.entry == entry
    ]


def halving_run_files(name):
    """An input function: `name` in the directory of every run of the halving sweep {sweep}."""

    def files(wildcards):
        entries = set(HALVING[wildcards.sweep].entries)
        return [
            f"{RUN_DIR}/{name}".format(entry=run.entry, replicate=run.replicate)
            for run in RUNS
            if run.entry in entries
        ]

    return files


def run_params(wildcards):
    """The resolved parameters of one run: a change to them (and only to them) retrains it."""
    run = run_id(wildcards.entry, wildcards.replicate)
    if run not in RUNS_BY_ID:
        raise WorkflowError(f"{run} is not a run of {config['models']}")
    return RUNS_BY_ID[run].params


# The Kaggle file's documented place; only a missing file there falls back to the embedded default.
DEFAULT_DATA_FILE = "data/full_dataset_vectors.h5"


def data_file():
    """The user's file when it is there; otherwise the embedded default, built from real digits.

    A path the user chose that does not exist is a mistake, not a request for the default data.
    """
    user_file = Path(config["data"]["file"]).expanduser()
    if user_file.exists():
        return str(user_file)
    if user_file != Path(DEFAULT_DATA_FILE):
        raise WorkflowError(
            f"data file {user_file} not found (config data.file); check the path, or remove the "
            f"setting to use {DEFAULT_DATA_FILE} or the embedded default"
        )
    if config["data"]["generate_if_missing"]:
        try:
            check_generated_split(config["data"])
        except SettingsError as error:
            raise WorkflowError(str(error)) from None
        return GENERATED_DATA
    raise WorkflowError(
        f"data file {user_file} not found (config data.file); put the Kaggle 3D MNIST file there "
        "or set data.generate_if_missing: true to build the embedded default"
    )


def code_files(module):
    """The package files `module` runs (mnist3d.codebase), as inputs of the rules whose output it
    shapes: editing one reruns them, and the code trigger alone would see only the script.

    Relative to the working directory, so a moved or copied workflow plans no re-plotting.
    """
    return [os.path.relpath(path) for path in codebase.code_files(module)]


# What decides a run's numbers: the code train_run runs (the warm server imports the same set).
# The server itself, the GPU slots and the logs do not.
TRAINING_CODE = code_digest(TRAINED_BY)


def train_retries_left(wildcards, attempt):
    """How many more times Snakemake runs a training job if this attempt fails (--retries).

    A failing job that will be retried raises, so Snakemake does retry it (resuming from its
    checkpoint, with the larger resources of its next attempt); on its last attempt it records the
    failed run instead, so the other runs go on and the report shows it. This runs where Snakemake
    schedules the job: locally right; in a cluster job, whose inner Snakemake runs with
    --retries 0, it would say 0, so the SLURM profile sets this resource itself (set-resources).
    """
    return max(0, workflow.execution_settings.retries + 1 - attempt)


def classify_file(wildcards):
    """The user's HDF5 file of grids: `--config classify_file=path.h5`."""
    path = config.get("classify_file")
    if not path:
        raise WorkflowError(
            "classifying needs the file of grids: add --config classify_file=path/to/grids.h5 "
            "(an HDF5 file with an N x 4096 or N x 16 x 16 x 16 dataset such as X_test)"
        )
    return os.path.expanduser(path)


def halving_plan(entry):
    plan = HALVING_OF_ENTRY.get(entry)
    if plan is None:
        raise WorkflowError(
            f"{entry} is no combination of a halving sweep of {config['models']}"
        )
    return plan


def halving_bracket(wildcards):
    """The bracket a decision job decides in: `bracket` of bracket_decision, 1 for halving_decision."""
    plan = HALVING[wildcards.sweep]
    try:
        return plan.bracket(int(wildcards.get("bracket", 1)))
    except ValueError as error:
        raise WorkflowError(str(error)) from None


def halving_plan_param(wildcards):
    """The whole plan of a halving sweep, every bracket included."""
    return HALVING[wildcards.sweep].as_param()


def bracket_plan_param(wildcards):
    """A decision's plan: its bracket's alone, so that adding brackets re-decides nothing in bracket 1."""
    return HALVING[wildcards.sweep].bracket_param(halving_bracket(wildcards).number)


def rung_state(entry, replicate, epoch):
    """The rung job's outputs for one run at one rung epoch (rules/halving.smk)."""
    names = rules.train_to_epoch.output.keys()
    return {
        name: getattr(rules.train_to_epoch.output, name).format(
            entry=entry, replicate=replicate, epoch=epoch
        )
        for name in names
    }


def rung_state_pattern(wildcards):
    """A run's rung states with the epoch left open: a run trained straight through goes on from the
    furthest one a halving sweep of the same run left (checked against its parameters and code).
    """
    return rung_state(wildcards.entry, wildcards.replicate, "{epoch}")


def previous_rung_state(wildcards):
    """A rung job goes on from the run's state at the rung before (none for the first rung)."""
    plan = halving_plan(wildcards.entry)
    try:
        previous = plan.previous_epoch(int(wildcards.epoch))
    except ValueError as error:
        raise WorkflowError(str(error)) from None
    if previous is None:
        return {}
    state = rung_state(wildcards.entry, wildcards.replicate, previous)
    return {"resume_from": state["state"], "resume_record": state["record"]}


def decision_file(sweep, rung, bracket=1):
    """Rung `rung`'s decision in bracket `bracket`, once made: reading it is what makes the next
    rung's jobs known."""
    if bracket == 1:
        return checkpoints.halving_decision.get(sweep=sweep, rung=rung).output[0]
    return checkpoints.bracket_decision.get(
        sweep=sweep, bracket=bracket, rung=rung
    ).output[0]


def alive_inputs(wildcards):
    """A decision's inputs: the rung records of the combinations the previous decision of its
    bracket kept (all the bracket's combinations at rung 1), and that decision."""
    plan, bracket = HALVING[wildcards.sweep], halving_bracket(wildcards)
    rung = int(wildcards.rung)
    if rung not in bracket.decisions:
        raise WorkflowError(
            f"bracket {bracket.number} of halving sweep '{plan.sweep}' has decisions after rungs "
            f"{list(bracket.decisions)}, not {rung}"
        )
    inputs, alive = {}, bracket.entries
    if rung > 1:
        inputs["previous"] = decision_file(plan.sweep, rung - 1, bracket.number)
        alive = read_decision(inputs["previous"])["kept"]
    inputs["records"] = [
        rung_state(entry, replicate, bracket.rungs[rung - 1])["record"]
        for entry in alive
        for replicate in range(1, plan.replicates + 1)
    ]
    return inputs


def halving_inputs(wildcards):
    """A halving run's own job evaluates its last rung state: the full epochs when a bracket it is
    in keeps it to the last rung, else the furthest epoch one of them took it to, with the decision
    that stopped it there. That decision is `ancient`: a re-decision that changes nothing for this
    run (another combination added) does not re-evaluate it; one that does changes its state.
    """
    entry = wildcards.entry
    plan = HALVING_OF_ENTRY.get(entry)
    if plan is None:
        return {}
    decisions = []
    for bracket in plan.brackets_of(entry):
        own = []
        for rung in bracket.decisions:
            own.append(read_decision(decision_file(plan.sweep, rung, bracket.number)))
            if entry in own[-1]["stopped"]:
                break
        decisions += own
        # This bracket takes it to the last rung: no other can take it further.
        if halving_outcome(entry, own)[1] is None:
            break
    epoch, stopping = halving_outcome(entry, decisions)
    if stopping is None:
        state = rung_state(entry, wildcards.replicate, plan.epochs)
        return {"resume_from": state["state"], "resume_record": state["record"]}
    state = rung_state(entry, wildcards.replicate, epoch)
    decision = decision_file(plan.sweep, stopping["rung"], stopping.get("bracket", 1))
    return {
        "resume_from": state["state"],
        "resume_record": state["record"],
        "decision": ancient(decision),
    }


def halving_decision_files(wildcards):
    """Every decision of every halving sweep and bracket, for the report (each known once the one
    before it in its bracket is made)."""
    return [
        decision_file(plan.sweep, rung, bracket.number)
        for plan in HALVING.values()
        for bracket in plan.brackets
        for rung in bracket.decisions
    ]
