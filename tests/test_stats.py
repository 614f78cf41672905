"""mnist3d.results.stats against hand-computed values and against scipy called directly, and the
report's words for the entries' standing (mnist3d.report.wording)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from mnist3d.report import wording
from mnist3d.results import stats

Z95 = 1.959963984540054  # the 97.5 % point of the standard normal


def wilson_by_hand(successes: int, n: int) -> tuple[float, float]:
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 / (1 + Z95**2 / n) * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n**2))
    return centre - half, centre + half


def test_wilson_170_of_200_by_the_formula_and_by_scipy():
    low, high = stats.wilson_interval(170 / 200, 200)
    assert (low, high) == pytest.approx(wilson_by_hand(170, 200), abs=1e-12)
    assert (low, high) == pytest.approx((0.79395, 0.89286), abs=1e-5)  # worked on paper
    scipy_ci = scipy_stats.binomtest(170, 200).proportion_ci(0.95, method="wilson")
    assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high), abs=1e-12)


@pytest.mark.parametrize("successes,n", [(0, 50), (50, 50), (1, 7), (1843, 2000)])
def test_wilson_matches_scipy_at_the_edges(successes, n):
    low, high = stats.wilson_interval(successes / n, n)
    scipy_ci = scipy_stats.binomtest(successes, n).proportion_ci(0.95, method="wilson")
    assert (low, high) == pytest.approx((scipy_ci.low, scipy_ci.high), abs=1e-12)
    assert 0 <= low <= successes / n + 1e-12 and successes / n - 1e-12 <= high <= 1
    assert high - low > 0  # not empty at 0 % or 100 %


def test_wilson_without_a_test_set_is_empty():
    for accuracy, samples in [(0.8, 0), (0.8, None), (math.nan, 200), (None, 200), (0.8, math.nan)]:
        assert all(math.isnan(value) for value in stats.wilson_interval(accuracy, samples))
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.wilson_interval(1.2, 100)


def test_t_interval_by_hand_and_by_scipy():
    values = [0.81, 0.84, 0.78, 0.80]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    # t(0.975, 3) = 3.182446305284263 from a t table
    by_hand = (mean - 3.182446305284263 * sd / 2, mean + 3.182446305284263 * sd / 2)
    assert stats.t_interval(values) == pytest.approx(by_hand, abs=1e-9)
    scipy_ci = scipy_stats.t.interval(0.95, 3, loc=mean, scale=scipy_stats.sem(values))
    assert stats.t_interval(values) == pytest.approx(scipy_ci, abs=1e-12)


def test_t_interval_ignores_nan_and_needs_two_values():
    assert stats.t_interval([0.8, math.nan, 0.7]) == pytest.approx(stats.t_interval([0.8, 0.7]))
    assert all(math.isnan(value) for value in stats.t_interval([0.8, math.nan]))
    assert all(math.isnan(value) for value in stats.t_interval([]))


def test_t_interval_of_identical_replicates_has_no_width_and_stays_in_0_1():
    low, high = stats.t_interval([0.8, 0.8, 0.8])
    assert low == high == pytest.approx(0.8)
    low, high = stats.t_interval([0.9, 0.99])
    assert high == 1.0 and 0 <= low < 0.9


def test_welch_matches_scipy():
    rng = np.random.default_rng(3)
    for size_a, size_b in [(3, 3), (3, 5), (6, 4)]:
        a, b = rng.normal(0.8, 0.02, size_a), rng.normal(0.78, 0.05, size_b)
        expected = scipy_stats.ttest_ind(a, b, equal_var=False).pvalue
        assert stats.welch_p_value(a, b) == pytest.approx(expected, rel=1e-10)


def test_welch_by_hand():
    a, b = [0.80, 0.82, 0.84], [0.70, 0.75, 0.80]
    # means 0.82 and 0.75, variances 0.0004 and 0.0025: t = 0.07 / sqrt(0.0029 / 3) = 2.2514,
    # df = (0.0029/3)^2 / ((0.0004/3)^2/2 + (0.0025/3)^2/2) = 2.6240
    t, df = 0.07 / math.sqrt(0.0029 / 3), (0.0029 / 3) ** 2 / ((0.0004 / 3) ** 2 / 2 + (0.0025 / 3) ** 2 / 2)
    assert t == pytest.approx(2.2514, abs=1e-4) and df == pytest.approx(2.6240, abs=1e-4)
    assert stats.welch_p_value(a, b) == pytest.approx(2 * scipy_stats.t.sf(t, df), rel=1e-10)


def test_welch_with_no_spread_on_either_side_is_undefined():
    # scipy reports p ~ 1e-59 here: its variance of [0.8, 0.8, 0.8] is a rounding error, not zero.
    assert math.isnan(stats.welch_p_value([0.8, 0.8, 0.8], [0.7, 0.7, 0.7]))
    assert math.isnan(stats.welch_p_value([0.8, 0.8, 0.8], [0.8, 0.8, 0.8]))


def test_welch_with_one_side_constant_uses_the_other_sides_spread():
    a, b = [0.8, 0.8, 0.8], [0.70, 0.75, 0.80]
    t, df = 0.05 / math.sqrt(0.0025 / 3), 2
    assert stats.welch_p_value(a, b) == pytest.approx(2 * scipy_stats.t.sf(t, df), rel=1e-10)


def test_welch_ignores_nan_and_needs_two_values_each():
    assert stats.welch_p_value([0.8, 0.81, math.nan, 0.79], [0.7, 0.72, 0.71]) == pytest.approx(
        scipy_stats.ttest_ind([0.8, 0.81, 0.79], [0.7, 0.72, 0.71], equal_var=False).pvalue
    )
    assert math.isnan(stats.welch_p_value([0.8], [0.7, 0.72]))


def test_mcnemar_by_hand_and_by_scipy():
    # 2 grids only a gets right, 8 only b: p = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 112 / 1024
    correct_a = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    correct_b = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
    assert stats.discordant_pairs(correct_a, correct_b) == (2, 8)
    assert stats.mcnemar_p_value(2, 8) == pytest.approx(112 / 1024, rel=1e-12)
    assert stats.mcnemar_p_value(2, 8) == pytest.approx(scipy_stats.binomtest(2, 10, 0.5).pvalue, rel=1e-12)
    assert stats.mcnemar_p_value(8, 2) == stats.mcnemar_p_value(2, 8)


def test_mcnemar_without_discordant_pairs_is_1():
    assert stats.mcnemar_p_value(0, 0) == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        stats.discordant_pairs([True, False], [True])


@pytest.mark.parametrize(
    "p,text",
    [(0.41, "p = 0.41"), (0.003, "p = 0.003"), (0.0004, "p < 0.001"), (1.0, "p = 1"), (0.0499, "p < 0.05"),
     (0.05, "p = 0.05"), (0.0123, "p = 0.012")],
)
def test_format_p(p, text):
    assert stats.format_p(p) == text


def predictions(y_true, correct):
    """(y_true, y_pred) with y_pred right exactly where `correct` says."""
    y_true = np.asarray(y_true)
    return y_true, np.where(np.asarray(correct, dtype=bool), y_true, (y_true + 1) % 10)


Y = np.arange(40) % 10


def test_compare_uses_welch_when_both_have_three_replicates():
    accuracies = {"best": np.array([0.85, 0.86, 0.84]), "other": np.array([0.70, 0.72, 0.71, math.nan])}
    result = stats.compare_with_best("other", "best", accuracies, {})
    expected = scipy_stats.ttest_ind([0.85, 0.86, 0.84], [0.70, 0.72, 0.71], equal_var=False).pvalue
    assert result["vs_best_test"] == "welch" and result["vs_best_p_value"] == pytest.approx(expected)
    # Two entries: one hypothesis each, the comparison one-sided and doubled back by Holm: raw = adjusted.
    assert result["vs_best_p_adjusted"] == pytest.approx(expected)
    assert not result["tied_with_best"]
    assert result["verdict"] == "below the best (p < 0.001, adjusted < 0.001; Welch)"


def test_below_three_replicates_mcnemar_compares_runs_not_settings():
    accuracies = {"best": np.array([0.9, 0.8, 0.85]), "other": np.array([0.7, 0.75])}
    best_runs = {"best": predictions(Y, np.arange(40) < 30), "other": predictions(Y, np.arange(40) < 25)}
    result = stats.compare_with_best("other", "best", accuracies, best_runs)
    p = scipy_stats.binomtest(5, 5, 0.5).pvalue  # the 5 grids 25..29 only the best gets right
    assert result == {"vs_best_test": "mcnemar", "vs_best_p_value": pytest.approx(p),
                      "vs_best_p_adjusted": pytest.approx(p), "tied_with_best": True,
                      "verdict": f"runs alike, settings untested ({stats.format_p(p)}, adjusted 0.062; McNemar): "
                                 "set replicates: 3"}
    clear = {"best": predictions(Y, np.arange(40) < 36), "other": predictions(Y, np.arange(40) < 20)}
    result = stats.compare_with_best("other", "best", accuracies, clear)
    # The runs differ for certain, yet the entry is not "below the best": its settings are untested.
    assert result["verdict"] == "runs differ, settings untested (p < 0.001, adjusted < 0.001; McNemar): " \
        "set replicates: 3"
    assert not result["tied_with_best"]


def test_identical_predictions_are_alike_with_p_1():
    accuracies = {"best": np.array([0.75]), "twin": np.array([0.75])}
    same = predictions(Y, np.arange(40) % 4 != 0)
    result = stats.compare_with_best("twin", "best", accuracies, {"best": same, "twin": same})
    assert result["vs_best_p_value"] == 1.0 and result["vs_best_p_adjusted"] == 1.0 and result["tied_with_best"]
    assert result["verdict"] == "runs alike, settings untested (p = 1, adjusted 1; McNemar): set replicates: 3"


def test_replicates_without_spread_fall_back_to_mcnemar_on_the_settings():
    # Three identical replicates each: no seed spread, so a run stands for its settings.
    accuracies = {"best": np.array([0.9, 0.9, 0.9]), "other": np.array([0.5, 0.5, 0.5])}
    best_runs = {"best": predictions(Y, np.arange(40) < 36), "other": predictions(Y, np.arange(40) < 20)}
    result = stats.compare_with_best("other", "best", accuracies, best_runs)
    assert result["vs_best_test"] == "mcnemar"
    assert result["vs_best_p_value"] == pytest.approx(scipy_stats.binomtest(16, 16, 0.5).pvalue)
    assert result["verdict"] == "below the best (p < 0.001, adjusted < 0.001; McNemar)"


def test_a_better_best_run_of_a_lower_entry_is_reported_above():
    accuracies = {"best": np.array([0.8, 0.8, 0.8]), "other": np.array([0.95, 0.4, 0.4])}
    best_runs = {"best": predictions(Y, np.arange(40) < 20), "other": predictions(Y, np.arange(40) < 38)}
    result = stats.compare_with_best("other", "best", accuracies, best_runs)
    assert result["vs_best_test"] == "welch" and result["tied_with_best"]  # the means: one lucky seed
    accuracies["other"] = np.array([0.79, 0.79, 0.79])
    accuracies["best"] = np.array([0.8, 0.8, 0.8])
    result = stats.compare_with_best("other", "best", accuracies, best_runs)
    assert not result["tied_with_best"] and result["verdict"].startswith("above the best on its best run (p < 0.001")


def test_untestable_comparisons_say_why():
    accuracies = {"best": np.array([0.8]), "other": np.array([0.7]), "broken": np.array([math.nan, math.nan])}
    best = predictions(Y, np.arange(40) < 32)
    shuffled = predictions(Y[::-1], np.arange(40) < 28)
    assert stats.compare_with_best("other", "best", accuracies, {"best": best, "other": shuffled})["verdict"] == (
        "not compared (different test grids)"
    )
    missing = stats.compare_with_best("other", "best", accuracies, {"best": best})
    assert missing == {"vs_best_test": "", "vs_best_p_value": pytest.approx(math.nan, nan_ok=True),
                       "vs_best_p_adjusted": pytest.approx(math.nan, nan_ok=True),
                       "tied_with_best": False, "verdict": "not compared (no test predictions)"}
    assert stats.compare_with_best("broken", "best", accuracies, {})["verdict"] == "no finished run"
    assert stats.compare_with_best("absent", None, {}, {})["verdict"] == "no finished run"
    best_itself = stats.compare_with_best("best", "best", accuracies, {})
    assert best_itself["verdict"] == "best" and best_itself["tied_with_best"] and best_itself["vs_best_test"] == ""


def test_adjustment_by_hand_holm_over_every_entry_with_a_finished_run():
    # 5 entries with a finished run (the best, 3 tested, 1 untested): each raw p halved (one-sided) and
    # multiplied by the 4 others it could lose to: 0.002 -> 0.004, 0.01 -> 0.02, 0.3 -> 0.6; with the best
    # and the untested entry at 1, Holm over 5: 5 * 0.004 = 0.02, max(0.02, 4 * 0.02) = 0.08, 3 * 0.6 -> 1.
    adjusted = stats.adjusted_p_values({"a": 0.01, "b": 0.002, "c": 0.3}, candidates=5)
    assert adjusted == pytest.approx({"a": 0.08, "b": 0.02, "c": 1.0})
    assert stats.adjusted_p_values({"a": 0.03}, candidates=2) == pytest.approx({"a": 0.03})
    assert stats.adjusted_p_values({}, candidates=3) == {}


def test_compare_all_adjusts_for_the_table_and_keeps_the_raw_p():
    rng = np.random.default_rng(5)
    accuracies = {"best": np.array([0.86, 0.87, 0.85])}
    accuracies.update({f"e{i}": rng.normal(0.84, 0.01, 3) for i in range(8)})
    accuracies["far"] = np.array([0.80, 0.805, 0.79])
    results = stats.compare_all("best", accuracies, {})
    raw = {name: stats.welch_p_value(accuracies["best"], values) for name, values in accuracies.items()
           if name != "best"}
    assert {name: results[name]["vs_best_p_value"] for name in raw} == pytest.approx(raw)
    expected = stats.adjusted_p_values(raw, candidates=10)
    assert {name: results[name]["vs_best_p_adjusted"] for name in raw} == pytest.approx(expected)
    assert all(results[name]["vs_best_p_adjusted"] >= raw[name] for name in raw)
    for name in raw:
        assert results[name]["tied_with_best"] == (expected[name] >= 0.05)
        assert stats.format_adjusted(expected[name]) in results[name]["verdict"]
    # The same raw p that is "below" alone is tied once nine entries share the table.
    alone = stats.compare_with_best("e0", "best", {"best": accuracies["best"], "e0": accuracies["e0"]}, {})
    assert alone["vs_best_p_value"] == pytest.approx(raw["e0"])
    assert results["e0"]["vs_best_p_adjusted"] > alone["vs_best_p_adjusted"]


@pytest.mark.parametrize("p_values", [[0.01, 0.04, 0.03, 0.2], [0.5], [0.001, 0.001, 1.0, 0.02, 0.9, 0.04], []])
def test_holm_matches_statsmodels(p_values):
    expected = multipletests(p_values, alpha=0.05, method="holm")[1] if p_values else []
    assert stats.holm(p_values).tolist() == pytest.approx(list(expected), rel=1e-12)


def test_format_adjusted():
    assert [stats.format_adjusted(p) for p in (0.03, 0.0004, 1.0, 0.0499)] == [
        "adjusted 0.03", "adjusted < 0.001", "adjusted 1", "adjusted < 0.05"]


def test_entry_interval_by_number_of_finished_replicates():
    assert stats.entry_interval([0.8, 0.82, math.nan], (0.1, 0.2)) == stats.t_interval([0.8, 0.82])
    assert stats.entry_interval([0.8, math.nan], (0.7, 0.9)) == (0.7, 0.9)
    assert all(math.isnan(value) for value in stats.entry_interval([math.nan], None))


def test_rank_breaks_ties_on_loss_then_order_and_puts_missing_last():
    frame = pd.DataFrame(
        {"name": list("abcdef"), "acc": [0.8, math.nan, 0.9, 0.8, 0.8, 0.9], "loss": [0.5, 0.1, 0.7, 0.4, 0.4, 0.7]}
    )
    assert stats.rank(frame, "acc", "loss")["name"].tolist() == ["c", "f", "d", "e", "a", "b"]


def entry_rows(rows):
    columns = ["entry", "replicates_ok", "test_accuracy_mean", "test_loss_mean", "test_accuracy_ci_low",
               "test_accuracy_ci_high", "vs_best_test", "vs_best_p_value", "vs_best_p_adjusted", "tied_with_best",
               "verdict"]
    return pd.DataFrame(rows, columns=columns)


NAN = math.nan


# stats.standing reads the entry table back; mnist3d.report.wording puts it into the report's words.
def test_headline_names_the_tied_entries_and_the_tests_used():
    entries = entry_rows(
        [
            ["narrow", 3, 0.80, 0.6, 0.77, 0.83, "welch", 0.41, 1.0, True,
             "tied with the best (p = 0.41, adjusted 1; Welch)"],
            ["wide", 3, 0.82, 0.5, 0.80, 0.84, "", NAN, NAN, True, "best"],
            ["tiny", 3, 0.60, 0.9, 0.53, 0.67, "mcnemar", 0.0001, 0.0004, False,
             "below the best (p < 0.001, adjusted < 0.001; McNemar)"],
            ["single", 1, 0.59, 0.9, 0.53, 0.67, "mcnemar", 0.0001, 0.0004, False,
             "runs differ, settings untested (p < 0.001, adjusted < 0.001; McNemar): set replicates: 3"],
            ["dead", 0, NAN, NAN, NAN, NAN, "", NAN, NAN, False, "no finished run"],
            ["other", 1, 0.7, 0.8, 0.6, 0.8, "", NAN, NAN, False, "not compared (different test grids)"],
        ]
    )
    facts = stats.standing(entries)
    assert facts["best_entry"] == "wide" and facts["best_mean"] == 0.82 and facts["best_interval"] == "t"
    assert (facts["best_ci_low"], facts["best_ci_high"], facts["best_replicates"]) == (0.80, 0.84, 3)
    assert [item["entry"] for item in facts["tied"]] == ["narrow"]
    assert facts["tied"][0] == {"entry": "narrow", "mean": 0.80, "p_value": 0.41, "p_adjusted": 1.0, "test": "welch",
                                "verdict": "tied with the best (p = 0.41, adjusted 1; Welch)"}
    assert [item["entry"] for item in facts["below"]] == ["tiny"] and facts["above"] == []
    assert [item["entry"] for item in facts["runs_differ"]] == ["single"]
    assert facts["not_compared"] == [{"entry": "other", "verdict": "not compared (different test grids)"}]
    assert facts["no_finished_run"] == ["dead"]
    assert facts["tests"] == ["welch", "mcnemar"] and facts["intervals"] == ["wilson", "t"]
    assert facts["adjustment"] == stats.ADJUSTMENT == "Holm"
    notes = wording.method_notes(facts)
    assert notes[:4] == [wording.METHOD_NOTES[name] for name in ["wilson", "t", "welch", "mcnemar"]]
    assert notes[-1] == stats.ADJUSTMENT_NOTE and "Holm" in notes[-1]
    assert wording.ranking_sentences(facts) == [
        "wide has the highest mean test accuracy: 0.820 (95 % interval 0.800-0.840, 3 finished replicates).",
        "The tests cannot tell it apart from 1 other entry: narrow (p = 0.41, adjusted 1; Welch). "
        "Treat both as equally good on this test set.",
        "Run against run, without 3 finished replicates on both sides, 1 entry differs from it: single "
        "(p < 0.001, adjusted < 0.001; McNemar); a second seed of the same settings can differ as much, so the "
        "settings are not compared: set replicates: 3 in the models file to compare them.",
    ]


def test_headline_when_every_other_entry_is_below():
    entries = entry_rows(
        [
            ["wide", 3, 0.82, 0.5, 0.80, 0.84, "", NAN, NAN, True, "best"],
            ["narrow", 3, 0.70, 0.6, 0.67, 0.73, "welch", 0.001, 0.002, False,
             "below the best (p = 0.001, adjusted 0.002; Welch)"],
        ]
    )
    assert wording.ranking_sentences(stats.standing(entries))[-1] == (
        "Every other entry tested is below it (adjusted p < 0.05).")


def test_headline_of_a_single_run_uses_wilson_and_no_test():
    facts = stats.standing(entry_rows([["only", 1, 0.85, 0.4, 0.79, 0.89, "", NAN, NAN, True, "best"]]))
    assert facts["best_interval"] == "wilson" and facts["tests"] == [] and facts["intervals"] == ["wilson"]
    assert facts["adjustment"] == ""
    assert wording.method_notes(facts) == [wording.METHOD_NOTES["wilson"]]
    assert wording.ranking_sentences(facts)[-1].endswith("(95 % interval 0.790-0.890, 1 finished replicate).")


def test_headline_when_nothing_finished():
    facts = stats.standing(entry_rows([["dead", 0, NAN, NAN, NAN, NAN, "", NAN, NAN, False, "no finished run"]]))
    assert facts["best_entry"] is None and facts["no_finished_run"] == ["dead"] and wording.method_notes(facts) == []
    assert "No run finished" in " ".join(wording.ranking_sentences(facts))


def test_headline_mentions_an_entry_whose_best_run_beats_the_best():
    entries = entry_rows(
        [
            ["steady", 3, 0.80, 0.5, 0.70, 0.90, "", NAN, NAN, True, "best"],
            ["lucky", 3, 0.78, 0.5, 0.20, 1.00, "mcnemar", 0.002, 0.002, False,
             "above the best on its best run (p = 0.002, adjusted 0.002; McNemar)"],
        ]
    )
    facts = stats.standing(entries)
    assert [item["entry"] for item in facts["above"]] == ["lucky"] and facts["tied"] == facts["below"] == []
    assert wording.ranking_sentences(facts)[-1] == (
        "Best runs that beat its best run although their entry's mean is lower: lucky (p = 0.002, adjusted 0.002; "
        "McNemar)."
    )
