"""Reproduces the accuracy study of issue 4: which settings reach 0.80 / 0.85 test accuracy on CPU.

Trains named settings through the workflow's own training code (`mnist3d.training.train.train_run`) on the
generated data set (`mnist3d.data.recipe.generate(seed=0, ...)`, written and prepared as the workflow's
generate_data and prepare_data rules do) and prints one table row per run: settings, epochs, wall
time, validation and test accuracy, and the test accuracy on the unrotated and rotated halves.

    nice python3 bench/accuracy_study.py          # the config/models.yaml entries: ~17 min on 2 free cores
    python3 bench/accuracy_study.py --list        # every setting of the study
    nice python3 bench/accuracy_study.py seed-e20c copies3-e20c --epochs 3 --out /tmp/accuracy-probe

Runs go to --out/<setting>/rep<k>/ (the workflow's run files); the table is also appended to
--out/results.md. Generated data sets are cached in --out/data/. Settings that name a lever the run
schema lacks (rotation_probability, rotation_fit, rotation_blur) pass it to augment.random_rotation;
all others train exactly as the workflow would.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from mnist3d.config.runs import OPTIONAL_DEFAULTS  # noqa: E402
from mnist3d.data import prepare, recipe  # noqa: E402

# The seed notebook's example model, spelled out so the study does not move when config/ does.
SEED_MODEL = {
    "filters": [16, 32, 64], "kernel_sizes": [3, 3, 3], "pool_sizes": [2, 2, 2], "dense": 256,
    "dropout": 0.5, "learning_rate": 0.001, "epochs": 8, "batch_size": 64, "seed": 1,
    **OPTIONAL_DEFAULTS,
}
VALIDATION_FRACTION = 0.1
SPLIT_SEED = 0
DATA_SEED = 0
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100

FOUR_BLOCKS = {"filters": [16, 32, 64, 128], "kernel_sizes": [3, 3, 3, 3], "pool_sizes": [2, 2, 2, 2]}
WIDE_FOUR_BLOCKS = {**FOUR_BLOCKS, "filters": [16, 48, 96, 192]}
COSINE = {"lr_schedule": "cosine"}
# Half of the training grids rotated with the recipe's angles (augment.ROTATED_SHARE).
ROTATIONS = {"rotation_augmentation": 90}

# name -> (rotated copies per training digit in the generated data, overrides of SEED_MODEL, replicates).
# Names: b4 = four blocks, b4w = four wider blocks, aug<std>p<percent of grids rotated>, e<epochs>,
# c = cosine schedule.
SETTINGS: dict[str, tuple[int, dict, int]] = {
    # The entries of config/models.yaml (RECOMMENDED), as the default workflow trains them.
    "seed-reference": (1, {}, 1),
    "best": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 50, **COSINE}, 1),
    # The wide four blocks for fewer and for more epochs.
    "rotations": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 30, **COSINE}, 2),
    "rotations-long": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 80, **COSINE}, 1),
    # The exploration, in the order it was run.
    "seed-e20c": (1, {"epochs": 20, **COSINE}, 1),
    # Rotating every training grid (p100) against half of them (p50).
    "aug45p100-e20c": (1, {"rotation_augmentation": 45, "rotation_probability": 1.0, "epochs": 20, **COSINE}, 1),
    "aug90p50-e20c": (1, {**ROTATIONS, "epochs": 20, **COSINE}, 1),
    # A fourth block (cheap: it works on 2^3 voxels), then variations of it.
    "b4-aug90p50-e30c": (1, {**FOUR_BLOCKS, **ROTATIONS, "epochs": 30, **COSINE}, 1),
    "b4-aug90p50-e30c-seed2": (1, {**FOUR_BLOCKS, **ROTATIONS, "epochs": 30, **COSINE, "seed": 2}, 1),
    "b4-aug90p75-drop03-e30c": (1, {**FOUR_BLOCKS, "dropout": 0.3, **ROTATIONS, "rotation_probability": 0.75,
                                    "epochs": 30, **COSINE}, 1),
    "b4-aug90p50-nofit-e30c": (1, {**FOUR_BLOCKS, **ROTATIONS, "rotation_fit": False, "epochs": 30, **COSINE}, 1),
    "b4-aug90p50-blur-e30c": (1, {**FOUR_BLOCKS, **ROTATIONS, "rotation_blur": True, "epochs": 30, **COSINE}, 1),
    "b4-aug90p50-e60c": (1, {**FOUR_BLOCKS, **ROTATIONS, "epochs": 60, **COSINE}, 1),
    "b4w-aug90p50-e30c": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 30, **COSINE}, 1),
    "b4w-aug90p50-e50c": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 50, **COSINE}, 1),
    "b4w-aug90p50-e50c-seed2": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 50, **COSINE, "seed": 2}, 1),
    "b4w-aug90p50-e80c": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 80, **COSINE}, 1),
    # The data-level lever: three rotated copies per training digit instead of one.
    "copies3-e20c": (3, {"epochs": 20, **COSINE}, 1),
    "copies3-b4-aug90p50-e20c": (3, {**FOUR_BLOCKS, **ROTATIONS, "epochs": 20, **COSINE}, 1),
    # Issue 10: the cheapest way to 0.85. The first block works on 16^3 voxels, so its width costs
    # the most per channel (f8 = 8 filters there); the later blocks are cheap to widen.
    "f8-32-64-128-aug90p50-e30c": (1, {**FOUR_BLOCKS, "filters": [8, 32, 64, 128], **ROTATIONS, "epochs": 30,
                                       **COSINE}, 1),
    "f8-48-96-192-aug90p50-e30c": (1, {**FOUR_BLOCKS, "filters": [8, 48, 96, 192], **ROTATIONS, "epochs": 30,
                                       **COSINE}, 1),
    "f8-32-64-128-aug90p50-e30c-lr3": (1, {**FOUR_BLOCKS, "filters": [8, 32, 64, 128], **ROTATIONS,
                                           "epochs": 30, **COSINE, "learning_rate": 0.003}, 1),
    "b4w-aug90p50-e30c-rep1": (1, {**WIDE_FOUR_BLOCKS, **ROTATIONS, "epochs": 30, **COSINE}, 1),
    "f8-32-64-128-aug90p50-e24c-lr3-drop03": (1, {**FOUR_BLOCKS, "filters": [8, 32, 64, 128], **ROTATIONS,
                                                  "epochs": 24, **COSINE, "learning_rate": 0.003,
                                                  "dropout": 0.3}, 1),
    "f8-48-96-192-aug90p50-e24c-lr3-drop03": (1, {**FOUR_BLOCKS, "filters": [8, 48, 96, 192], **ROTATIONS,
                                                  "epochs": 24, **COSINE, "learning_rate": 0.003,
                                                  "dropout": 0.3}, 1),
    "f8-32-64-128-aug90p50-e24c-lr3-drop01": (1, {**FOUR_BLOCKS, "filters": [8, 32, 64, 128], **ROTATIONS,
                                                  "epochs": 24, **COSINE, "learning_rate": 0.003,
                                                  "dropout": 0.1}, 1),
    "f8-32-64-128-aug90p50-e24c-lr3-drop0": (1, {**FOUR_BLOCKS, "filters": [8, 32, 64, 128], **ROTATIONS,
                                                 "epochs": 24, **COSINE, "learning_rate": 0.003,
                                                 "dropout": 0.0}, 1),
    "f8-32-64-128-aug90p50-e24c-lr3-drop01-seed2": (1, {**FOUR_BLOCKS, "filters": [8, 32, 64, 128], **ROTATIONS,
                                                        "epochs": 24, **COSINE, "learning_rate": 0.003,
                                                        "dropout": 0.1, "seed": 2}, 1),
    "b4-aug90p50-e24c-lr3-drop03": (1, {**FOUR_BLOCKS, **ROTATIONS, "epochs": 24, **COSINE, "learning_rate": 0.003,
                                        "dropout": 0.3}, 1),
    "f8-24-48-96-aug90p50-e30c-lr3": (1, {**FOUR_BLOCKS, "filters": [8, 24, 48, 96], **ROTATIONS, "epochs": 30,
                                          **COSINE, "learning_rate": 0.003}, 1),
}
RECOMMENDED = ("seed-reference", "best")

# Levers the study tried that the run schema does not have, with augment.random_rotation's defaults;
# a setting that names one trains with it through `study_augmentation`.
STUDY_LEVERS = {"rotation_probability": "probability", "rotation_fit": "fit", "rotation_blur": "blur"}

COLUMNS = ("setting", "copies", "overrides", "seed", "epochs", "best_epoch", "seconds", "val_accuracy",
           "test_accuracy", "unrotated", "rotated")


def prepared_data(copies: int, directory: Path) -> Path:
    """The generated data set with `copies` rotated copies per training digit, written and prepared
    as the workflow's generate_data and prepare_data rules do (cached in `directory`)."""
    path = directory / f"prepared-copies{copies}.npz"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    generated = directory / f"generated-copies{copies}.h5"
    if not generated.exists():
        arrays = recipe.generate(seed=DATA_SEED, train_rotated_copies=copies)
        attrs = recipe.dataset_attrs(arrays, DATA_SEED, TRAIN_PER_CLASS, TEST_PER_CLASS, copies)
        recipe.write_h5(generated, arrays, attrs)
    prepare.save(path, prepare.prepare(generated, VALIDATION_FRACTION, SPLIT_SEED))
    return path


def validation_accuracy(history: Path, epoch: int) -> float:
    with open(history) as handle:
        return float(next(row for row in csv.DictReader(handle) if int(row["epoch"]) == epoch)["val_accuracy"])


def study_augmentation(params: dict):
    """train._augmentation, plus the study-only levers a setting names."""
    from mnist3d.training import augment

    options = {option: params[lever] for lever, option in STUDY_LEVERS.items() if lever in params}
    return augment.random_rotation(params["rotation_augmentation"], seed=params["seed"], **options)


def run_setting(name: str, out: Path, threads: int, epochs: int | None) -> list[dict]:
    from mnist3d.training import train
    from mnist3d.training.train import Run, RunPaths, TrainingEnvironment, train_run

    copies, overrides, replicates = SETTINGS[name]
    if epochs is not None:
        overrides = {**overrides, "epochs": epochs}
    # Settings without study-only levers train exactly as the workflow does.
    workflow_augmentation = train._augmentation
    if any(lever in overrides for lever in STUDY_LEVERS):
        train._augmentation = study_augmentation
    data = prepared_data(copies, out / "data")
    rows = []
    try:
        for replicate in range(1, replicates + 1):
            params = {**SEED_MODEL, **overrides}
            params["seed"] += replicate - 1
            directory = out / name / f"rep{replicate}"
            directory.mkdir(parents=True, exist_ok=True)
            paths = RunPaths.in_directory(data, directory)
            started = time.perf_counter()
            metrics = train_run(Run(name, replicate, params), paths,
                                TrainingEnvironment(threads=threads, record_failure=False),
                                log=lambda message: print(message, flush=True))
            rows.append({
                "setting": name, "copies": copies,
                "overrides": " ".join(f"{key}={value}" for key, value in overrides.items()) or "-",
                "seed": params["seed"], "epochs": metrics["epochs_run"], "best_epoch": metrics["best_epoch"],
                "seconds": round(time.perf_counter() - started),
                "val_accuracy": validation_accuracy(paths.history, metrics["best_epoch"]),
                "test_accuracy": metrics["test_accuracy"],
                "unrotated": metrics["test_accuracy_unrotated"], "rotated": metrics["test_accuracy_rotated"],
            })
    finally:
        train._augmentation = workflow_augmentation
    return rows


def table_row(row: dict) -> str:
    cells = [f"{row[column]:.4f}" if isinstance(row[column], float) else str(row[column]) for column in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="*", default=list(RECOMMENDED), help="names from --list")
    parser.add_argument("--list", action="store_true", help="print every setting and exit")
    parser.add_argument("--epochs", type=int, help="override every setting's epochs (quick probes)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    parser.add_argument("--out", type=Path, default=Path("/tmp/accuracy-study"))
    args = parser.parse_args(argv)
    if args.list:
        for name, (copies, overrides, replicates) in SETTINGS.items():
            print(f"{name}: copies={copies} replicates={replicates} {overrides}")
        return
    unknown = [name for name in args.settings if name not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; see --list")
    header = "| " + " | ".join(COLUMNS) + " |\n|" + " --- |" * len(COLUMNS)
    rows = []
    for name in args.settings:
        new_rows = run_setting(name, args.out, args.threads, args.epochs)
        with open(args.out / "results.md", "a") as handle:
            handle.writelines(table_row(row) + "\n" for row in new_rows)
        rows += new_rows
    print(header)
    print("\n".join(table_row(row) for row in rows))


if __name__ == "__main__":
    main()
