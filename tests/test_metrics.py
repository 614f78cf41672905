"""results/metrics.csv from run directories written in the contract's format (tests/rundirs.py)."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rundirs import PARAMS, history_of, table_of, write_run, write_runs
from scipy import stats as scipy_stats

from mnist3d.report import wording
from mnist3d.results import metrics, stats

ADAPTER = Path(__file__).resolve().parents[1] / "scripts" / "aggregate_metrics.py"


def test_mean_after_5_skips_the_first_five_epochs():
    assert metrics.mean_after([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8]) == pytest.approx(0.7)


def test_mean_after_5_uses_every_epoch_of_a_short_run():
    assert metrics.mean_after([0.2, 0.4, 0.6]) == pytest.approx(0.4)
    assert metrics.mean_after([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.3)
    assert math.isnan(metrics.mean_after([]))


def test_row_per_run_with_curve_measures(tmp_path):
    run = write_run(
        tmp_path,
        "seed_example",
        history=history_of([0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.7], val_loss=[2, 2, 2, 2, 2, 0.5, 0.7]),
    )
    table = table_of([run])
    row = table.iloc[0]
    assert row["run"] == "seed_example/rep1"
    assert row["status"] == "ok"
    assert row["final_val_accuracy"] == pytest.approx(0.7)
    assert row["best_val_accuracy"] == pytest.approx(0.9)
    assert row["mean_val_accuracy_after_5"] == pytest.approx(0.8)
    assert row["mean_val_loss_after_5"] == pytest.approx(0.6)
    assert row["epochs_run"] == 7
    assert row["filters"] == "16-32-64"
    assert row["dense"] == 256
    assert row["parameter_count"] == 1234567


def test_columns_are_stable_and_ordered(tmp_path):
    table = table_of(write_runs(tmp_path, 3, failed=1))
    columns = list(table.columns)
    assert columns[: len(metrics.IDENTITY_COLUMNS)] == metrics.IDENTITY_COLUMNS
    assert columns[-len(metrics.ENTRY_COLUMNS) :] == metrics.ENTRY_COLUMNS
    for name in metrics.MEASURE_COLUMNS + list(PARAMS):
        assert name in columns
    assert columns.index("lr_schedule") < columns.index("parameter_count")


def test_replicate_mean_and_std(tmp_path):
    directories = [write_run(tmp_path, "wide", replicate, level=0.7 + 0.05 * replicate) for replicate in (1, 2, 3)]
    directories.append(write_run(tmp_path, "single", 1))
    table = table_of(directories)
    wide = table[table["entry"] == "wide"]
    values = wide["test_accuracy"].to_numpy()
    assert wide["entry_test_accuracy_mean"].tolist() == pytest.approx([values.mean()] * 3)
    assert wide["entry_test_accuracy_std"].tolist() == pytest.approx([values.std(ddof=1)] * 3)
    assert (wide["entry_replicates_ok"] == 3).all()
    single = table[table["entry"] == "single"].iloc[0]
    assert math.isnan(single["entry_test_accuracy_std"])

    entries = metrics.entry_table(table).set_index("entry")
    assert entries.loc["wide", "replicates"] == 3
    assert entries.loc["wide", "test_accuracy_mean"] == pytest.approx(values.mean())
    assert entries.loc["wide", "test_accuracy_std"] == pytest.approx(values.std(ddof=1))
    assert entries.loc["wide", "test_accuracy_min"] == pytest.approx(values.min())
    assert math.isnan(entries.loc["single", "test_accuracy_std"])


def test_failed_run_keeps_its_error_and_empty_numbers(tmp_path):
    ok = write_run(tmp_path, "good", 1)
    bad = write_run(tmp_path, "broken", 1, failed="ResourceExhaustedError: out of memory")
    table = table_of([ok, bad])
    row = table.set_index("run").loc["broken/rep1"]
    assert row["status"] == "failed"
    assert row["error"] == "ResourceExhaustedError: out of memory"
    for column in metrics.MEASURE_COLUMNS:
        assert pd.isna(row[column]), column
    assert row["filters"] == "16-32-64"
    assert metrics.best_run(table) == "good/rep1"

    path = tmp_path / "results" / "metrics.csv"
    metrics.write_csv(table, path)
    written = pd.read_csv(path, keep_default_na=False).set_index("run")
    assert written.loc["broken/rep1", "test_accuracy"] == ""
    assert written.loc["broken/rep1", "parameter_count"] == ""
    assert written.loc["good/rep1", "parameter_count"] == "1234567"
    assert written.loc["broken/rep1", "error"] == "ResourceExhaustedError: out of memory"


def test_failed_run_with_a_partial_history_has_no_curve_measures(tmp_path):
    run = write_run(tmp_path, "broken", 1, failed="killed")
    history_of([0.3, 0.4]).to_csv(run / "history.csv", index=False)
    row = table_of([run]).iloc[0]
    assert pd.isna(row["best_val_accuracy"]) and pd.isna(row["mean_val_accuracy_after_5"])


def test_unknown_rotation_leaves_the_split_empty(tmp_path):
    table = table_of([write_run(tmp_path, "real", 1, rotation_known=False)])
    assert pd.isna(table.iloc[0]["test_accuracy_rotated"])
    assert table.iloc[0]["test_accuracy"] > 0


def test_best_run_breaks_ties_on_loss(tmp_path):
    table = table_of(write_runs(tmp_path, 3))
    table["test_accuracy"] = 0.8
    table["test_loss"] = [0.9, 0.5, 0.7]
    assert metrics.best_run(table) == table.iloc[1]["run"]


def test_csv_is_replaced_atomically(tmp_path):
    table = table_of(write_runs(tmp_path, 2))
    path = tmp_path / "metrics.csv"
    path.write_text("old")
    metrics.write_csv(table, path)
    assert pd.read_csv(path)["run"].tolist() == table["run"].tolist()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_entry_names_that_look_like_numbers_or_missing_values_stay_names(tmp_path):
    names = ["064", "None", "1e-3", "NA"]
    table = table_of([write_run(tmp_path, name) for name in names])
    metrics.write_csv(table, tmp_path / "metrics.csv")
    metrics.write_csv(metrics.entry_table(table), tmp_path / "metrics_by_entry.csv")
    read_back = metrics.read_table(tmp_path / "metrics.csv")
    assert read_back["entry"].tolist() == names
    assert read_back["run"].tolist() == [f"{name}/rep1" for name in names]
    assert read_back["error"].tolist() == [""] * 4
    assert sorted(metrics.read_entry_table(tmp_path / "metrics_by_entry.csv")["entry"]) == sorted(names)
    assert read_back["test_accuracy"].notna().all()


def test_flatten_params():
    flat = metrics.flatten_params({"filters": [8, 16], "kernels": [[3, 3, 1]], "schedule": {"kind": "cosine"}})
    assert flat == {"filters": "8-16", "kernels": "3x3x1", "schedule.kind": "cosine"}


# --- statistics columns -------------------------------------------------------------------------

Y_TRUE = np.repeat(np.arange(10), 20)  # the 200 test grids of every run written below


def with_predictions(run_dir: Path, correct, *, y_true=Y_TRUE, test_loss: float | None = None) -> Path:
    """Rewrite a run's predictions.npz so that it is right exactly where `correct` is, and its
    metrics.json to agree (test accuracy, and `test_loss` if given)."""
    correct = np.asarray(correct, dtype=bool)
    y_pred = np.where(correct, y_true, (y_true + 1) % 10)
    np.savez(run_dir / "predictions.npz", y_true=y_true, y_pred=y_pred,
             probabilities=np.full((len(y_true), 10), 0.1, dtype=np.float32),
             test_rotated=np.zeros(len(y_true), dtype=np.int8))
    record = json.loads((run_dir / "metrics.json").read_text())
    record["test_accuracy"] = float(correct.mean())
    if test_loss is not None:
        record["test_loss"] = test_loss
    (run_dir / "metrics.json").write_text(json.dumps(record))
    return run_dir


def first(count: int, total: int = 200) -> np.ndarray:
    return np.arange(total) < count


def tables_of(directories, sweeps=None, root=None):
    root = root or directories[0].parents[3]  # root/results/runs/entry/repN
    runs, entries = metrics.aggregate(
        [d / "metrics.json" for d in directories],
        [d / "history.csv" for d in directories],
        [d / "predictions.npz" for d in directories],
        root / "metrics.csv",
        root / "metrics_by_entry.csv",
        sweeps=sweeps,
    )
    return runs.set_index("run"), entries.set_index("entry")


def test_every_run_has_its_wilson_interval_from_the_test_set_size(tmp_path):
    run = with_predictions(write_run(tmp_path, "wide"), first(170))
    broken = write_run(tmp_path, "broken", failed="killed")
    runs, _ = tables_of([run, broken])
    row = runs.loc["wide/rep1"]
    assert row["test_samples"] == 200 and row["test_accuracy"] == pytest.approx(0.85)
    expected = scipy_stats.binomtest(170, 200).proportion_ci(0.95, method="wilson")
    assert (row["test_accuracy_ci_low"], row["test_accuracy_ci_high"]) == pytest.approx((expected.low, expected.high))
    assert pd.isna(runs.loc["broken/rep1", "test_samples"]) and pd.isna(runs.loc["broken/rep1", "test_accuracy_ci_low"])


def test_entry_intervals_tests_and_verdicts(tmp_path):
    """Welch for 3+ replicates each, McNemar run against run otherwise, a failed replicate left out but
    counted, the p-values adjusted over the 4 entries with a finished run."""
    directories = [
        with_predictions(write_run(tmp_path, "best", replicate), first(count), test_loss=0.4)
        for replicate, count in [(1, 180), (2, 176), (3, 178)]
    ]
    directories += [
        with_predictions(write_run(tmp_path, "close", replicate), first(count), test_loss=0.5)
        for replicate, count in [(1, 181), (2, 170), (3, 175)]
    ]
    directories += [
        with_predictions(write_run(tmp_path, "low", 1), first(150)),
        with_predictions(write_run(tmp_path, "low", 2), first(160)),
        write_run(tmp_path, "low", 3, failed="ResourceExhaustedError: OOM"),
        with_predictions(write_run(tmp_path, "single", 1), first(176)),
        write_run(tmp_path, "dead", 1, failed="killed"),
        write_run(tmp_path, "dead", 2, failed="killed"),
    ]
    _, entries = tables_of(directories, sweeps={"best": "width", "close": "width"})

    best = entries.loc["best"]
    assert best["verdict"] == "best" and best["tied_with_best"] and best["vs_best_test"] == ""
    scipy_ci = scipy_stats.t.interval(0.95, 2, loc=np.mean([0.9, 0.88, 0.89]), scale=scipy_stats.sem([0.9, 0.88, 0.89]))
    assert (best["test_accuracy_ci_low"], best["test_accuracy_ci_high"]) == pytest.approx(scipy_ci)

    close = entries.loc["close"]
    p = scipy_stats.ttest_ind([0.9, 0.88, 0.89], [0.905, 0.85, 0.875], equal_var=False).pvalue
    assert close["vs_best_test"] == "welch" and close["vs_best_p_value"] == pytest.approx(p)
    assert close["tied_with_best"]
    assert close["verdict"] == f"tied with the best ({stats.format_p(p)}, adjusted 1; Welch)"
    assert close["vs_best_p_adjusted"] == 1.0  # Holm's last step: 2 * (3 * p / 2) > 1

    low = entries.loc["low"]  # 2 finished of 3: McNemar, best/rep1 (180) against low/rep2 (160)
    assert (low["replicates"], low["replicates_ok"]) == (3, 2)
    assert low["test_accuracy_mean"] == pytest.approx(0.775) and low["test_accuracy_std"] == pytest.approx(
        np.std([0.75, 0.8], ddof=1))
    assert (low["test_accuracy_ci_low"], low["test_accuracy_ci_high"]) == pytest.approx(stats.t_interval([0.75, 0.8]))
    p = scipy_stats.binomtest(20, 20, 0.5).pvalue
    assert low["vs_best_test"] == "mcnemar" and low["vs_best_p_value"] == pytest.approx(p)
    assert low["vs_best_p_adjusted"] == pytest.approx(4 * 3 * p / 2)  # Holm's first step
    assert not low["tied_with_best"]
    assert low["verdict"] == "runs differ, settings untested (p < 0.001, adjusted < 0.001; McNemar): set replicates: 3"

    single = entries.loc["single"]  # one replicate: its Wilson interval; 4 discordant grids
    wilson = scipy_stats.binomtest(176, 200).proportion_ci(0.95, method="wilson")
    assert (single["test_accuracy_ci_low"], single["test_accuracy_ci_high"]) == pytest.approx((wilson.low, wilson.high))
    assert single["vs_best_p_value"] == pytest.approx(0.125)  # 2 * (1/2)^4
    assert single["vs_best_p_adjusted"] == pytest.approx(3 * 3 * 0.125 / 2)  # Holm's second step
    assert single["verdict"] == "runs alike, settings untested (p = 0.12, adjusted 0.56; McNemar): set replicates: 3"
    assert single["tied_with_best"]

    dead = entries.loc["dead"]
    assert dead["verdict"] == "no finished run" and not dead["tied_with_best"] and dead["replicates_ok"] == 0
    assert pd.isna(dead["vs_best_p_value"]) and pd.isna(dead["vs_best_p_adjusted"])
    assert pd.isna(dead["test_accuracy_ci_low"])
    assert entries["sweep"].to_dict() == {"best": "width", "close": "width", "low": "", "single": "", "dead": ""}


def test_identical_predictions_are_alike_with_p_1(tmp_path):
    same = first(150)
    directories = [with_predictions(write_run(tmp_path, name), same, test_loss=0.5) for name in ("a", "b")]
    _, entries = tables_of(directories)
    assert entries.loc["a", "verdict"] == "best"
    assert entries.loc["b", "vs_best_p_value"] == 1.0
    assert entries.loc["b", "verdict"] == (
        "runs alike, settings untested (p = 1, adjusted 1; McNemar): set replicates: 3")


def test_different_test_grids_are_not_compared(tmp_path):
    a = with_predictions(write_run(tmp_path, "a"), first(180))
    b = with_predictions(write_run(tmp_path, "b"), first(150), y_true=Y_TRUE[::-1].copy())
    _, entries = tables_of([a, b])
    assert entries.loc["b", "verdict"] == "not compared (different test grids)"
    assert entries.loc["b", "vs_best_test"] == "" and not entries.loc["b", "tied_with_best"]


def test_without_predictions_welch_still_runs_and_paired_tests_are_skipped(tmp_path):
    directories = [write_run(tmp_path, "a", r, level=0.8) for r in (1, 2, 3)] + [
        write_run(tmp_path, "b", r, level=0.7) for r in (1, 2, 3)] + [write_run(tmp_path, "c", level=0.6)]
    table = table_of(directories)
    assert table["test_samples"].isna().all() and table["test_accuracy_ci_low"].isna().all()
    entries = metrics.entry_table(table).set_index("entry")
    assert entries.loc["b", "vs_best_test"] == "welch"
    assert entries.loc["c", "verdict"] == "not compared (no test predictions)"


def test_one_ranking_best_entry_then_its_best_run(tmp_path):
    """The best entry has the highest mean; one lucky replicate of another entry does not make it best."""
    directories = [
        with_predictions(write_run(tmp_path, "steady", 1), first(160), test_loss=0.5),
        with_predictions(write_run(tmp_path, "steady", 2), first(162), test_loss=0.5),
        with_predictions(write_run(tmp_path, "lucky", 1), first(190), test_loss=0.5),
        with_predictions(write_run(tmp_path, "lucky", 2), first(120), test_loss=0.5),
        with_predictions(write_run(tmp_path, "same_mean_lower_loss", 1), first(161), test_loss=0.3),
        write_run(tmp_path, "dead", 1, failed="killed"),
    ]
    runs, entries = tables_of(directories)
    table = runs.reset_index()
    assert metrics.ranked_entries(table) == ["same_mean_lower_loss", "steady", "lucky", "dead"]
    assert metrics.best_run(table) == "same_mean_lower_loss/rep1"
    assert metrics.ranked_runs(table)["run"].tolist() == [
        "lucky/rep1", "steady/rep2", "same_mean_lower_loss/rep1", "steady/rep1", "lucky/rep2", "dead/rep1"]
    assert metrics.entry_best_runs(table) == {
        "lucky": "lucky/rep1", "steady": "steady/rep2", "same_mean_lower_loss": "same_mean_lower_loss/rep1"}
    # McNemar pairs the best runs: lucky/rep1 (190) beats the best entry's run (161), yet with 2 replicates
    # that says nothing of lucky's settings.
    assert entries.loc["lucky", "verdict"].startswith("runs differ, settings untested (p < 0.001")
    assert metrics.best_run(table.iloc[-1:]) is None and metrics.ranked_entries(table.iloc[:0]) == []


def test_statistics_columns_survive_the_csv(tmp_path):
    directories = [with_predictions(write_run(tmp_path, name), first(count)) for name, count in
                   [("NA", 170), ("b", 150), ("c", 169)]]
    directories.append(write_run(tmp_path, "d", failed="killed"))
    runs, entries = tables_of(directories, sweeps={"b": "NA"})
    read_runs = metrics.read_table(tmp_path / "metrics.csv").set_index("run")
    read_entries = metrics.read_entry_table(tmp_path / "metrics_by_entry.csv").set_index("entry")
    assert read_runs["sweep"].tolist() == ["", "NA", "", ""]
    assert read_runs.loc["NA/rep1", "test_samples"] == 200
    assert read_runs["test_accuracy_ci_low"].tolist() == pytest.approx(runs["test_accuracy_ci_low"].tolist(),
                                                                        rel=1e-5, nan_ok=True)
    assert read_entries["tied_with_best"].tolist() == [True, False, True, False]
    assert read_entries["vs_best_test"].tolist() == ["", "mcnemar", "mcnemar", ""]
    assert read_entries["verdict"].tolist() == entries["verdict"].tolist()
    read_back, fresh = stats.standing(read_entries.reset_index()), stats.standing(entries.reset_index())
    for key in ("best_entry", "tests", "intervals", "no_finished_run"):
        assert read_back[key] == fresh[key], key
    for words in (wording.ranking_sentences, wording.method_notes):
        assert words(read_back) == words(fresh)
    assert read_entries["vs_best_p_adjusted"].tolist() == pytest.approx(entries["vs_best_p_adjusted"].tolist(),
                                                                        rel=1e-5, nan_ok=True)
    assert [item["entry"] for item in read_back["tied"]] == ["c"] and read_back["runs_differ"][0]["entry"] == "b"
    assert read_back["runs_differ"][0]["p_adjusted"] == pytest.approx(fresh["runs_differ"][0]["p_adjusted"], rel=1e-5)


def test_entry_columns_put_the_verdict_beside_the_mean(tmp_path):
    _, entries = tables_of([with_predictions(write_run(tmp_path, "a"), first(150))])
    columns = list(entries.reset_index().columns)
    start = columns.index("test_accuracy_max") + 1
    assert columns[:2] == ["entry", "sweep"]
    assert columns[start: start + 7] == ["test_accuracy_ci_low", "test_accuracy_ci_high", *stats.COMPARISON_COLUMNS]
    assert stats.COMPARISON_COLUMNS[1:3] == ["vs_best_p_value", "vs_best_p_adjusted"]


def test_predictions_file_errors_name_the_file_and_field(tmp_path):
    run = write_run(tmp_path, "a")
    np.savez(run / "predictions.npz", y_true=Y_TRUE)
    with pytest.raises(ValueError, match=r"predictions\.npz: no field y_pred"):
        tables_of([run])
    np.savez(run / "predictions.npz", y_true=Y_TRUE, y_pred=Y_TRUE[:10])
    with pytest.raises(ValueError, match="y_true has 200 grids but y_pred 10"):
        tables_of([run])
    np.savez(run / "predictions.npz", y_true=Y_TRUE[:0], y_pred=Y_TRUE[:0])
    with pytest.raises(ValueError, match="run a/rep1 finished but its predictions.npz holds no test grids"):
        tables_of([run])
    with pytest.raises(ValueError, match="1 metrics files but 0 predictions files"):
        metrics.load_runs_table([run / "metrics.json"], [run / "history.csv"], [])


class NamedFiles(list):
    """Like Snakemake's output object: a list of paths that also has each one as an attribute."""

    def __init__(self, **paths):
        super().__init__(paths.values())
        self.__dict__.update(paths)


def test_adapter_reads_the_rules_inputs_and_params(tmp_path):
    directories = [with_predictions(write_run(tmp_path, "a", r), first(150 + r)) for r in (1, 2)]
    files = lambda name: [str(d / name) for d in directories]  # noqa: E731
    job = SimpleNamespace(
        input=SimpleNamespace(metrics=files("metrics.json"), histories=files("history.csv"),
                              predictions=files("predictions.npz")),
        output=NamedFiles(table=str(tmp_path / "metrics.csv"), entries=str(tmp_path / "metrics_by_entry.csv")),
        params=SimpleNamespace(sweeps={"a": "grid"}),
        log=[str(tmp_path / "aggregate.log")],
    )
    runpy.run_path(str(ADAPTER), init_globals={"snakemake": job})
    assert metrics.read_entry_table(tmp_path / "metrics_by_entry.csv")["sweep"].tolist() == ["grid"]
    log = (tmp_path / "aggregate.log").read_text()
    assert "2 runs, 0 failed, 1 entries" in log and "best entry a (0.7575 mean test accuracy)" in log


def test_a_run_stopped_by_halving_keeps_its_numbers_and_is_no_failure(tmp_path):
    good = write_run(tmp_path, "good", 1)
    stopped = write_run(tmp_path, "slow", 1, level=0.5)
    record = json.loads((stopped / "metrics.json").read_text())
    record.update(status="stopped", stopped="stopped at epoch 3 (rung 1 of 3)")
    (stopped / "metrics.json").write_text(json.dumps(record))
    table = table_of([good, stopped])
    row = table.set_index("run").loc["slow/rep1"]
    assert row["status"] == "stopped"
    assert row["error"] == "stopped at epoch 3 (rung 1 of 3)"
    assert row["test_accuracy"] == pytest.approx(record["test_accuracy"])
    # Shown, never compared as if it had finished.
    assert metrics.best_run(table) == "good/rep1"
    assert list(metrics._finished(table)["run"]) == ["good/rep1"]
    # Finished replicates count "ok" runs only.
    assert table.set_index("run").loc["slow/rep1", "entry_replicates_ok"] == 0
    entries = metrics.entry_table(table).set_index("entry")
    assert entries.loc["slow", "replicates_ok"] == 0 and entries.loc["good", "replicates_ok"] == 1
