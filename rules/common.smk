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
    )
except RunConfigError as error:
    raise WorkflowError(str(error)) from None
RUNS_BY_ID = {run.id: run for run in RUNS}
REPLICATED_ENTRIES = sorted({run.entry for run in RUNS if run.replicate > 1})

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


def data_file():
    """The user's file when it is there; otherwise the embedded default, built from real digits."""
    user_file = Path(config["data"]["file"])
    if user_file.exists():
        return str(user_file)
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
    "train.py", "model.py", "fastops.py", "pipeline.py", "augment.py"
)
