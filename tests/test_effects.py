"""mnist3d.results.effects against sums of squares by hand and statsmodels on the same frame, and the
sweep_effects rule end to end on a tiny real grid."""

from __future__ import annotations

import html
import itertools
import math
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import copy_workflow, snakemake
from scipy import stats as scipy_stats
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

from mnist3d.results import effects


def grid(values: dict, accuracies: dict, sweep: str = "g", failed=()) -> tuple[pd.DataFrame, dict]:
    """A runs table and sweep spec: `accuracies` maps a combination (tuple of labels, fields in the
    order of `values`) to its replicates' test accuracies; runs named in `failed` failed."""
    fields = list(values)
    spec = {"name": sweep, "fields": sorted(fields), "entries": {}}
    rows = []
    for combination, replicates in accuracies.items():
        entry = sweep + "".join(f".{field}-{label}" for field, label in zip(fields, combination))
        spec["entries"][entry] = dict(zip(fields, combination))
        for index, accuracy in enumerate(replicates, start=1):
            bad = f"{entry}/rep{index}" in failed
            rows.append({"run": f"{entry}/rep{index}", "entry": entry, "status": "failed" if bad else "ok",
                         "test_accuracy": math.nan if bad else accuracy})
    return pd.DataFrame(rows), spec


BALANCED = {  # a 2 x 2 grid, 2 replicates each
    ("0.1", "4"): [0.60, 0.62],
    ("0.1", "8"): [0.64, 0.68],
    ("0.5", "4"): [0.80, 0.82],
    ("0.5", "8"): [0.81, 0.83],
}


def test_balanced_two_factor_grid_by_hand():
    table, spec = grid({"dropout": ["0.1", "0.5"], "dense": ["4", "8"]}, BALANCED)
    frame = effects.sweep_effects(table, spec).set_index("term")
    y = np.array(list(BALANCED.values()))  # (cells, replicates), cells in (dropout, dense) order
    cells = y.mean(axis=1).reshape(2, 2)  # dropout down, dense across
    grand = y.mean()
    # Balanced: type II = type I; each main effect is replicates * other levels * sum of squared deviations.
    ss_dropout = 2 * 2 * ((cells.mean(axis=1) - grand) ** 2).sum()
    ss_dense = 2 * 2 * ((cells.mean(axis=0) - grand) ** 2).sum()
    ss_cells = 2 * ((cells - grand) ** 2).sum()
    ss_interaction = ss_cells - ss_dropout - ss_dense
    ss_error = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum()
    total = ((y - grand) ** 2).sum()
    assert ss_dropout + ss_dense + ss_interaction + ss_error == pytest.approx(total)
    # By hand: grand 0.725; dropout means 0.635 / 0.815 -> 4 * 2 * 0.09^2 = 0.0648
    assert ss_dropout == pytest.approx(0.0648) and ss_error == pytest.approx(0.0014)
    # Terms in the spec's field order (sorted): dense, dropout.
    for term, ss in [("dropout", ss_dropout), ("dense", ss_dense), ("dense:dropout", ss_interaction)]:
        row = frame.loc[term]
        assert row["model"] == "anova" and row["df"] == 1
        assert row["share_of_variance"] == pytest.approx(ss / total)
        assert row["p_value"] == pytest.approx(scipy_stats.f.sf(ss / (ss_error / 4), 1, 4), rel=1e-9)
    assert frame.loc["residual", "share_of_variance"] == pytest.approx(ss_error / total)
    assert frame.loc["residual", "df"] == 4
    assert frame.loc["dropout", "verdict"] == (
        f"dropout matters (p < 0.001, {100 * ss_dropout / total:.0f} % of the variance)")
    assert frame.loc["dense", "verdict"].startswith("no evidence that dense matters (p = 0.0")
    assert frame.loc["dense:dropout", "verdict"].startswith("no evidence that dense and dropout interact (p = 0.2")


def random_grid(seed: int, replicates: int = 3):
    rng = np.random.default_rng(seed)
    values = {"learning_rate": ["0.0001", "0.001", "0.003"], "dropout": ["0.25", "0.5"]}
    accuracies = {
        combination: list(0.5 + 0.1 * index + rng.normal(0, 0.02, replicates))
        for index, combination in enumerate(itertools.product(*values.values()))
    }
    return values, accuracies


def statsmodels_anova(table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    runs = table[table["status"] == "ok"].assign(
        lr=lambda frame: frame["entry"].map(lambda entry: spec["entries"][entry]["learning_rate"]),
        do=lambda frame: frame["entry"].map(lambda entry: spec["entries"][entry]["dropout"]),
    )
    return anova_lm(ols("test_accuracy ~ C(do) + C(lr) + C(do):C(lr)", data=runs).fit(), typ=2)


@pytest.mark.parametrize("failed", [(), ("g.learning_rate-0.001.dropout-0.5/rep2",)])
def test_anova_matches_statsmodels_also_with_a_failed_replicate(failed):
    values, accuracies = random_grid(3)
    table, spec = grid(values, accuracies, failed=failed)
    frame = effects.sweep_effects(table, spec).set_index("term")
    expected = statsmodels_anova(table, spec)
    total = float(((table["test_accuracy"].dropna() - table["test_accuracy"].mean()) ** 2).sum())
    for term, name in [("dropout", "C(do)"), ("learning_rate", "C(lr)"), ("dropout:learning_rate", "C(do):C(lr)"),
                       ("residual", "Residual")]:
        assert frame.loc[term, "df"] == expected.loc[name, "df"]
        assert frame.loc[term, "share_of_variance"] == pytest.approx(expected.loc[name, "sum_sq"] / total, rel=1e-9)
        if term != "residual":
            assert frame.loc[term, "p_value"] == pytest.approx(expected.loc[name, "PR(>F)"], rel=1e-9)
    assert frame.loc["residual", "df"] == (17 if failed else 18) - 6 + 0  # runs minus the 6 cell means
    assert frame.loc["learning_rate", "verdict"].startswith("learning_rate matters (p < 0.001")


def test_a_field_with_one_value_is_left_out_and_said_so():
    values, accuracies = random_grid(4, replicates=2)
    accuracies = {(*combination, "16"): replicates for combination, replicates in accuracies.items()}
    table, spec = grid({**values, "dense": ["16"]}, accuracies)
    frame = effects.sweep_effects(table, spec).set_index("term")
    assert frame.loc["dense", "verdict"] == "left out: one value among the finished runs (16)"
    assert frame.loc["dense", "model"] == "" and math.isnan(frame.loc["dense", "p_value"])
    assert set(frame.index) == {"dropout", "learning_rate", "dropout:learning_rate", "residual", "dense"}


def test_too_few_runs_for_interactions_gives_main_effects_only():
    one_each = {combination: [replicates[0]] for combination, replicates in BALANCED.items()}
    one_each[("0.1", "4")] = [0.60, 0.62]  # 5 runs: main effects leave 2 residual df, the interaction 1
    table, spec = grid({"dropout": ["0.1", "0.5"], "dense": ["4", "8"]}, one_each)
    frame = effects.sweep_effects(table, spec).set_index("term")
    assert "dense:dropout" not in frame.index and frame.loc["residual", "df"] == 2
    assert frame.loc["interactions", "verdict"] == "not tested: too few runs for them (5 runs, 4 parameters), " \
        "main effects only"


def test_random_sample_gets_a_linear_model_with_intervals():
    rng = np.random.default_rng(9)
    rates = 10 ** rng.uniform(-4, -2, 12)
    accuracies = {
        (f"{rate:.3g}", f"{dropout:.2f}", width): [0.9 + 0.1 * np.log10(rate) + 0.01 * rng.normal()]
        for rate, dropout, width in zip(rates, rng.uniform(0.1, 0.5, 12), ["wide", "narrow"] * 6)
    }
    table, spec = grid({"learning_rate": [], "dropout": [], "head": []}, accuracies, sweep="r")
    frame = effects.sweep_effects(table, spec).set_index("term")
    assert set(frame["model"]) == {"linear"}
    runs = effects.sweep_runs(table, spec).assign(
        lr=lambda data: np.log10(data["learning_rate"].astype(float)), do=lambda data: data["dropout"].astype(float),
        head=lambda data: pd.Categorical(data["head"], categories=["wide", "narrow"]))
    model = ols("test_accuracy ~ do + C(head) + lr", data=runs).fit()
    intervals = model.conf_int(0.05)
    for term, name in [("log10(learning_rate)", "lr"), ("dropout", "do"), ("head=narrow", "C(head)[T.narrow]")]:
        row = frame.loc[term]
        assert row["coefficient"] == pytest.approx(model.params[name], rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(intervals.loc[name]), rel=1e-9)
        assert row["p_value"] == pytest.approx(model.pvalues[name], rel=1e-9)
    assert frame.loc["log10(learning_rate)", "verdict"].startswith("each tenfold learning_rate adds 0.1")
    assert frame.loc["head=narrow", "verdict"].startswith("no clear effect of head narrow against wide")
    sentence = effects.effects_sentences(frame.reset_index())[0]
    assert sentence.startswith("r (linear model of its finished runs' test accuracy, 95 % intervals")


def test_sentences_and_csv(tmp_path):
    table, spec = grid({"dropout": ["0.1", "0.5"], "dense": ["4", "8"]}, BALANCED)
    table_path = tmp_path / "metrics.csv"
    table.to_csv(table_path, index=False)
    frame = effects.write_effects(table_path, spec, tmp_path / "g-effects.csv")
    read = pd.read_csv(tmp_path / "g-effects.csv", keep_default_na=False, na_values=[""])
    assert list(read.columns) == effects.COLUMNS
    assert read["verdict"].tolist() == frame["verdict"].tolist()
    sentences = effects.effects_sentences(frame)
    assert len(sentences) == 1 and sentences[0].startswith("g (analysis of variance of its finished runs' test "
                                                           "accuracy): no evidence that dense matters")
    assert "; dropout matters (p < 0.001, " in sentences[0]
    assert sentences[0].endswith("; between seeds and unexplained: 2 % of the variance.")
    assert "ASSUMPTION" not in sentences[0] and effects.ASSUMPTION.endswith(".")


MODELS = "models-effects.yaml"
# 12 epochs of a small network on the test config's few hundred grids: lr 1e-5 stays near chance
# (0.17-0.20 here), 3e-3 learns (0.36-0.43); early stopping with a patience of 13 or 14 epochs never fires
# in 12, so that field changes nothing: the same numbers for both of its values. 8 runs, about 80 s.
EFFECTS_MODELS = """\
defaults: {filters: [8], kernel_sizes: [3], pool_sizes: [2], dense: 32, dropout: 0.0,
           learning_rate: 0.003, epochs: 12, batch_size: 16, seed: 1, replicates: 1}
sweeps:
  lp:
    replicates: 2
    grid:
      learning_rate: [1.0e-5, 3.0e-3]
      early_stopping_patience: [13, 14]
"""


def test_a_real_grid_shows_the_field_that_matters_and_the_one_that_does_not(tmp_path):
    workdir = copy_workflow(tmp_path)
    (workdir / MODELS).write_text(textwrap.dedent(EFFECTS_MODELS))
    snakemake(workdir, "results/report.html", "--config", f"models={MODELS}")
    frame = pd.read_csv(workdir / "results/sweeps/lp-effects.csv", keep_default_na=False, na_values=[""])
    rows = frame.set_index("term")
    assert set(frame["model"]) == {"anova"}
    assert rows.loc["learning_rate", "p_value"] < 0.05
    assert rows.loc["learning_rate", "verdict"].startswith("learning_rate matters")
    assert rows.loc["early_stopping_patience", "verdict"] == "no evidence that early_stopping_patience matters (p = 1)"
    assert rows.loc["early_stopping_patience:learning_rate", "verdict"].startswith("no evidence that")
    assert "learning_rate matters" in (workdir / "logs/sweep_effects/lp.log").read_text()
    # The report's sweep block states both verdicts.
    page = html.unescape((workdir / "results/report.html").read_text())
    assert "Which settings matter" in page
    assert rows.loc["learning_rate", "verdict"] in page
    assert "no evidence that early_stopping_patience matters (p = 1)" in page
