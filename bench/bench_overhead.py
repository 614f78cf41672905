"""Per-run workflow overhead: an N-run sweep of tiny runs through the real `snakemake` command.

For each N, in a temporary copy of the workflow on tiny generated data:
  1. builds and prepares the data (timed, not counted: it happens once, whatever N is);
  2. times `snakemake` from there to the report (the sweep's wall time);
  3. times a second `snakemake` that has nothing to do (what parsing N runs costs).
Prints the wall time, the sum of the runs' training time (metrics.json `training_seconds`) and the
overhead per run, (wall - sum of training) / N, then where the time went per rule: each job's wall
time (from Snakemake's .snakemake/metadata records: start = job submitted, end = first output
written), the part inside the script's step log (the "done in X s" line every rule log ends with;
it starts after the script's own imports) and, for training, the part inside `model.fit`.
What is neither is process start, imports and Snakemake's script preamble.

  python3 bench/bench_overhead.py                     # N = 20 and 50 (about 10 + 25 min on 2 cores)
  python3 bench/bench_overhead.py --runs 20 --imports # one sweep, plus import costs of each job type
  python3 bench/bench_overhead.py --no-sweep --imports --floor 50   # import costs, Snakemake's own per-job cost
"""

from __future__ import annotations

import argparse
import ast
import base64
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mnist3d.runid import RUN_ID  # noqa: E402

WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "profiles", "envs")
DATA_TARGETS = ("results/data/prepared.npz", "results/data/summary.json")
DONE_LINE = re.compile(r"\] done in ([0-9.]+) s")
# Job types whose imports --imports times: the adapter script each runs (its top-level imports).
ADAPTERS = {
    "train": "train_run.py",
    "plot_run": "plot_run.py",
    "plot_entry": "plot_entry.py",
    "plot_comparison": "plot_comparison.py",
    "plot_examples": "plot_examples.py",
    "plot_misclassified": "plot_misclassified.py",
    "aggregate_metrics": "aggregate_metrics.py",
    "report": "render_report.py",
}
# A training job's own imports (the warm training server's client); when it trains in its own
# process (GPU, SLURM, train.warm_server_idle: 0) it imports TensorFlow too, as "train job, own process".
LAZY_IMPORTS = {"train job, own process": ("train_run.py", "import mnist3d.training.train; import tensorflow")}
LIBRARIES = {
    "tensorflow": "import tensorflow",
    "keras": "import keras",
    "matplotlib (Agg, Figure)": "import matplotlib; matplotlib.use('Agg'); import matplotlib.figure",
    "pandas": "import pandas",
    "scipy.stats": "import scipy.stats",
    "snakemake.script (preamble)": "import snakemake.script",
    "python alone": "pass",
}


def adapter_imports(script: Path) -> str:
    """The top-level import statements of an adapter script, as one line of Python."""
    tree = ast.parse(script.read_text())
    return "; ".join(
        ast.unparse(node) for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", None) != "__future__"
    )


def copy_workflow(destination: Path, commit: str | None = None) -> Path:
    """The workflow's own files, without results, logs or caches: as in the working tree, or at `commit`."""
    if commit:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, *WORKFLOW_PARTS],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
        return destination
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, destination / part, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, destination / part)
    return destination


def write_sweep(workdir: Path, runs: int, replicates: int, epochs: int, threads: int, gpu_amount: int,
                warm_server_idle: float) -> Path:
    """A models file of `runs` tiny hand-written runs and a config that points at it; returns the config."""
    entries = runs // replicates
    models = {
        "defaults": {
            "filters": [4], "kernel_sizes": [3], "pool_sizes": [4], "dense": 16, "dropout": 0.2,
            "learning_rate": 0.003, "epochs": epochs, "batch_size": 32, "seed": 1, "replicates": replicates,
        },
        # Each entry differs (its learning rate), as in a sweep, so every run is trained.
        "runs": {f"run{number:03d}": {"learning_rate": round(0.001 + 0.0001 * number, 6)} for number in range(entries)},
    }
    (workdir / "bench-models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    config = yaml.safe_load((workdir / "config/test/config.yaml").read_text())
    config["models"] = "bench-models.yaml"
    config["train"].update(threads=threads, gpu_amount=gpu_amount, warm_server_idle=warm_server_idle)
    (workdir / "bench-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir / "bench-config.yaml"


def snakemake(workdir: Path, config: Path, cores: int, *targets: str,
              extra: tuple[str, ...] = ()) -> tuple[float, float]:
    """Run the real snakemake command; its wall time and the CPU time of it and all its jobs, in seconds."""
    # Targets first, --configfile last: it takes every word after it.
    command = [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), *extra, "--configfile", str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    with (workdir / "bench-snakemake.log").open("a") as log:
        log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"snakemake {' '.join(targets)} failed in {workdir} ({result.returncode}):\n{result.stderr[-4000:]}")
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def jobs(workdir: Path, since: float) -> list[dict]:
    """One record per job that finished after `since`: rule, start, end, log file."""
    found = {}
    for path in (workdir / ".snakemake/metadata").iterdir():
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        if not record.get("starttime") or record["starttime"] < since:
            continue
        output = base64.urlsafe_b64decode(path.name.encode()).decode(errors="replace")
        key = tuple(record.get("log") or [output])
        job = found.setdefault(key, {"rule": record["rule"], "start": record["starttime"], "end": record["endtime"],
                                     "log": (record.get("log") or [None])[0]})
        # A job's outputs are written one after another; the job ended when the first was complete.
        job["end"] = min(job["end"], record["endtime"])
    return sorted(found.values(), key=lambda job: job["start"])


def inside_seconds(workdir: Path, log: str | None) -> float | None:
    """The duration the job's step log ends with, if it has one."""
    if not log or not (workdir / log).exists():
        return None
    durations = DONE_LINE.findall((workdir / log).read_text())
    return float(durations[-1]) if durations else None


def training_seconds(workdir: Path) -> dict[str, float]:
    """metrics.json training_seconds per run log, for the runs that finished."""
    found = {}
    for metrics in (workdir / "results/runs").glob(f"{RUN_ID.format(entry='*', replicate='*')}/metrics.json"):
        record = json.loads(metrics.read_text())
        found[f"logs/train/{record['run']}.log"] = float(record.get("training_seconds") or 0.0)
    return found


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def sweep(runs: int, arguments: argparse.Namespace) -> dict:
    keep = Path(arguments.keep) / f"n{runs}" if arguments.keep else None
    workdir = keep or Path(tempfile.mkdtemp(prefix=f"bench-overhead-n{runs}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        copy_workflow(workdir, arguments.commit)
        config = write_sweep(workdir, runs, arguments.replicates, arguments.epochs, arguments.threads,
                             arguments.gpu_amount, arguments.warm_server_idle)
        load_before = load_average()
        data_seconds, _ = snakemake(workdir, config, arguments.cores, *DATA_TARGETS)
        started = time.time()
        extra = tuple(arguments.snakemake_arg)
        wall, cpu = snakemake(workdir, config, arguments.cores, extra=extra)
        finished = time.time()
        noop, _ = snakemake(workdir, config, arguments.cores, extra=extra)
        load_after = load_average()
        records = jobs(workdir, since=started)
        training = training_seconds(workdir)
        result = summarise(runs, arguments, records, training, started, finished, wall, data_seconds, noop,
                           workdir, (load_before, load_after))
        result["cpu_seconds"] = cpu
        return result
    finally:
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def summarise(runs, arguments, records, training, started, finished, wall, data_seconds, noop, workdir, load):
    per_rule = defaultdict(list)
    for job in records:
        job["wall"] = job["end"] - job["start"]
        job["inside"] = inside_seconds(workdir, job["log"])
        job["training"] = training.get(job["log"]) if job["rule"] == "train" else None
        per_rule[job["rule"]].append(job)
    trained = sum(training.values())
    busy = [(job["start"], job["end"]) for job in records]
    # Core-seconds spent inside jobs over those available: the rest is Snakemake between jobs, or a
    # core waiting because only one job could run (the fixed jobs at the end run one after another).
    threads = {"train": arguments.threads}
    job_seconds = sum(job["wall"] * min(threads.get(job["rule"], 1), arguments.cores) for job in records)
    return {
        "runs": runs,
        "settings": {"cores": arguments.cores, "threads": arguments.threads, "gpu_amount": arguments.gpu_amount,
                     "epochs": arguments.epochs, "replicates": arguments.replicates,
                     "snakemake_args": arguments.snakemake_arg},
        "load_average": {"before": load[0], "after": load[1]},
        "data_seconds": data_seconds,
        "wall_seconds": wall,
        "training_seconds_sum": trained,
        "overhead_per_run": (wall - trained) / runs,
        "noop_seconds": noop,
        "cores_busy_share": job_seconds / (arguments.cores * wall),
        "before_first_job": (min(start for start, _ in busy) - started) if busy else None,
        "after_last_job": (finished - max(end for _, end in busy)) if busy else None,
        "rules": {
            rule: {
                "jobs": len(jobs_),
                "wall_sum": sum(job["wall"] for job in jobs_),
                "wall_mean": statistics.mean(job["wall"] for job in jobs_),
                "inside_mean": _mean(job["inside"] for job in jobs_),
                "training_mean": _mean(job["training"] for job in jobs_),
            }
            for rule, jobs_ in sorted(per_rule.items(), key=lambda item: -sum(job["wall"] for job in item[1]))
        },
    }


def _mean(values):
    values = [value for value in values if value is not None]
    return statistics.mean(values) if values else None


def import_costs(repeats: int = 3) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds of each job type's imports in a fresh process (the fastest of `repeats`).

    CPU time (user + system, all threads) is what a job costs the machine; on a shared machine it
    also moves far less with the load than wall time does.
    """
    environment = {**os.environ, "PYTHONPATH": str(REPO / "scripts"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    statements = {
        f"{rule} job": adapter_imports(REPO / "scripts" / script)
        for rule, script in ADAPTERS.items()
        if (REPO / "scripts" / script).exists()
    }
    statements.update({label: f"{adapter_imports(REPO / 'scripts' / script)}; {extra}"
                       for label, (script, extra) in LAZY_IMPORTS.items()})
    statements.update(LIBRARIES)
    costs = {}
    for label, statement in statements.items():
        walls, cpus = [], []
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", statement], env=environment, check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        costs[label] = {"wall": min(walls), "cpu": min(cpus)}
    return costs


FLOOR_SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(int(config["count"])))

rule job:
    output: "out/{i}.txt"
    resources: gpu=0
    script: "job.py"
"""


def snakemake_floor(jobs_: int, cores: int) -> dict[str, float]:
    """Wall seconds per job of a workflow whose `script:` jobs do nothing, per Snakemake scheduler.

    What Snakemake itself costs per job (scheduling, a Python process with its script preamble,
    metadata), whatever the job does.
    """
    seconds = {}
    for scheduler in ("ilp", "greedy"):
        with tempfile.TemporaryDirectory(prefix="bench-floor-") as directory:
            workdir = Path(directory)
            (workdir / "Snakefile").write_text(FLOOR_SNAKEFILE)
            (workdir / "job.py").write_text("open(snakemake.output[0], 'w').close()\n")
            command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--scheduler", scheduler,
                       "--config", f"count={jobs_}"]
            started = time.perf_counter()
            subprocess.run(command, cwd=workdir, check=True, capture_output=True)
            seconds[scheduler] = (time.perf_counter() - started) / jobs_
    return seconds


def show(result: dict) -> None:
    settings = result["settings"]
    print(f"\nN = {result['runs']} runs ({settings['epochs']} epoch(s) each, {settings['cores']} cores, "
          f"train.threads {settings['threads']}, train.gpu_amount {settings['gpu_amount']}"
          f"{''.join(' ' + arg for arg in settings['snakemake_args'])}; "
          f"load average before {result['load_average']['before']}, after {result['load_average']['after']})")
    print(f"  data set-up (not counted)     {result['data_seconds']:7.1f} s")
    print(f"  wall, data to report          {result['wall_seconds']:7.1f} s")
    print(f"  sum of training time          {result['training_seconds_sum']:7.1f} s")
    print(f"  overhead per run              {result['overhead_per_run']:7.1f} s   ((wall - training) / N)")
    per_run = result["cpu_seconds"] / result["runs"]
    print(f"  CPU time, snakemake and jobs  {result['cpu_seconds']:7.1f} s   ({per_run:.1f} s per run; divided by "
          f"the cores: the least wall time these jobs need on an idle machine)")
    print(f"  no-op rerun                   {result['noop_seconds']:7.1f} s")
    print(f"  snakemake before first job    {result['before_first_job']:7.1f} s, after last job "
          f"{result['after_last_job']:.1f} s")
    print(f"  cores busy inside jobs        {100 * result['cores_busy_share']:7.0f} %")
    print(f"  {'rule':<18}{'jobs':>5}{'sum wall':>10}{'mean wall':>11}{'in step log':>13}{'in fit':>8}{'outside':>9}")
    for rule, row in result["rules"].items():
        inside = row["inside_mean"]
        outside = row["wall_mean"] - inside if inside is not None else None
        print(f"  {rule:<18}{row['jobs']:>5}{row['wall_sum']:>9.1f}s{row['wall_mean']:>10.1f}s"
              f"{_cell(inside, 12)}{_cell(row['training_mean'], 7)}{_cell(outside, 8)}")
    print("  (outside: process start, imports and Snakemake's script preamble, per job)")


def _cell(value, width):
    return f"{value:>{width}.1f}s" if value is not None else " " * width + "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[20, 50], help="sweep sizes N (default 20 50)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="train.threads (default 1: two tiny runs side by side)")
    parser.add_argument("--gpu-amount", type=int, default=0,
                        help="train.gpu_amount (default 0, as on a machine without GPUs)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--warm-server-idle", type=float, default=120,
                        help="train.warm_server_idle (default 120, as config/config.yaml; 0: no warm server)")
    parser.add_argument("--replicates", type=int, default=1, help="replicates per entry (N / this entries)")
    parser.add_argument("--imports", action="store_true", help="also time each job type's imports")
    parser.add_argument("--no-sweep", action="store_true", help="run no sweep (with --imports or --floor)")
    parser.add_argument("--floor", type=int, metavar="JOBS",
                        help="also time a workflow of JOBS empty script jobs (Snakemake's own cost per job)")
    parser.add_argument("--commit",
                        help="measure the workflow as committed at this revision (default: the working tree)")
    parser.add_argument("--snakemake-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for the timed snakemake commands, "
                             "e.g. --snakemake-arg=--scheduler=greedy")
    parser.add_argument("--keep", help="keep each workflow copy under this folder (default: a removed temp dir)")
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args()
    results = []
    for runs in [] if arguments.no_sweep else arguments.runs:
        result = sweep(runs, arguments)
        show(result)
        results.append(result)
    costs = import_costs() if arguments.imports else {}
    if costs:
        print(f"\nImports in a fresh process, interpreter start included (fastest of 3; load {load_average()}):")
        print(f"  {'':<32}{'wall':>7}{'CPU':>7}")
        for label, cost in costs.items():
            print(f"  {label:<32}{cost['wall']:6.2f}s{cost['cpu']:6.2f}s")
    floor = snakemake_floor(arguments.floor, arguments.cores) if arguments.floor else {}
    if floor:
        print(f"\nSnakemake alone, {arguments.floor} empty `script:` jobs on {arguments.cores} cores "
              f"(load {load_average()}): "
              + ", ".join(f"{name} scheduler {value:.2f} s per job" for name, value in floor.items()))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps({"sweeps": results, "imports": costs, "floor": floor}, indent=2))


if __name__ == "__main__":
    main()
