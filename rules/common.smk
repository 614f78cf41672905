import hashlib
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))
from mnist3d.runconfig import RunConfigError, load_runs

validate(config, schema="../config/schemas/config.schema.yaml")

SCHEMAS = Path(workflow.basedir) / "config" / "schemas"
try:
    RUNS = load_runs(
        config["models"],
        SCHEMAS / "run.schema.yaml",
        SCHEMAS / "models.schema.yaml",
        max_runs=config["max_runs"],
    )
except RunConfigError as error:
    raise WorkflowError(str(error)) from None
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

RUN_DIR = "results/runs/{entry}/rep{replicate}"
GENERATED_DATA = "results/data/generated-3dmnist.h5"
DATA_SUMMARY = "results/data/summary.json"
PREPARED = "results/data/prepared.npz"


wildcard_constraints:
    entry=r"[A-Za-z0-9_][A-Za-z0-9_.-]*",
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


def run_params(wildcards):
    """The resolved parameters of one run: a change to them (and only to them) retrains it."""
    run_id = f"{wildcards.entry}/rep{wildcards.replicate}"
    if run_id not in RUNS_BY_ID:
        raise WorkflowError(f"{run_id} is not a run of {config['models']}")
    return RUNS_BY_ID[run_id].params


# The Kaggle file's documented place; only a missing file there falls back to the embedded default.
DEFAULT_DATA_FILE = "data/full_dataset_vectors.h5"


def data_file():
    """The user's file when it is there; otherwise the embedded default, built from real digits.

    A path the user chose that does not exist is a mistake, not a request for the default data.
    """
    user_file = Path(config["data"]["file"])
    if user_file.exists():
        return str(user_file)
    if user_file != Path(DEFAULT_DATA_FILE):
        raise WorkflowError(
            f"data file {user_file} not found (config data.file); check the path, or remove the "
            f"setting to use {DEFAULT_DATA_FILE} or the embedded default"
        )
    if config["data"]["generate_if_missing"]:
        return GENERATED_DATA
    raise WorkflowError(
        f"data file {user_file} not found (config data.file); put the Kaggle 3D MNIST file there "
        "or set data.generate_if_missing: true to build the embedded default"
    )


def package_files(*names):
    """Modules of the scripts/mnist3d package, as inputs of the rules whose output they shape.

    Relative to the working directory, so a moved or copied workflow plans no re-plotting.
    """
    package = Path(workflow.basedir) / "scripts" / "mnist3d"
    return [os.path.relpath(package / name) for name in names]


def code_digest(*modules):
    """A short digest of the contents of scripts/mnist3d modules, for a rule's `params`.

    A rule's output depends on the modules its script calls as much as on its settings, but
    Snakemake's code trigger sees only the script itself. As a parameter, the digest reruns the rule
    when one of them is edited, and, being contents rather than timestamps, nothing when a checkout
    or copy changes no code.
    """
    digest = hashlib.sha256()
    for path in package_files(*modules):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


TRAINING_CODE = code_digest(
    "train.py", "model.py", "fastops.py", "pipeline.py", "augment.py", "checkpoint.py"
)


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
    return path
