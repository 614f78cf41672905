"""How sure the tables are: intervals on test accuracies, and each entry tested against the best entry.

Pure functions over numbers, arrays and frames (no files); mnist3d.results.metrics calls them to fill these
columns (95 % everywhere, differences called real below p = 0.05):

results/metrics.csv, per run
    test_samples            number of test grids the accuracy was measured on (empty for a failed run)
    test_accuracy_ci_low/high   Wilson score interval of that accuracy (binomial sampling of the test set)

results/metrics_by_entry.csv, per entry ("finished" = status ok with a test accuracy)
    test_accuracy_ci_low/high   2+ finished replicates: t-interval of their mean, clipped to [0, 1];
                            one: that run's Wilson interval; none: empty
    vs_best_test            "welch", "mcnemar" or empty (the best itself, no finished run, no test possible)
    vs_best_p_value         two-sided p-value of that test, empty where there is none
    tied_with_best          True for the best entry and for entries whose test gives p >= 0.05; False
                            otherwise, including entries that could not be tested (see verdict)
    verdict                 "best", "tied with the best (p = 0.41, Welch)", "below the best (p = 0.003,
                            McNemar)", "above the best on its best run (p = 0.02, McNemar)",
                            "no finished run", or "not compared (<reason>)"

Which test: Welch's t-test on the replicate test accuracies when both entries have 3+ finished
replicates and at least one of them varies; otherwise McNemar's exact test on the paired test
predictions of the two entries' best runs (needs both runs' predictions on the same test grids, in the
same order). Two entries whose replicates are all identical have no spread to test, so Welch is
undefined there and the paired test of their best runs decides instead. McNemar compares single runs:
an entry whose best run beats the best entry's best run, although its mean is lower, is "above the best
on its best run". p-values are not adjusted for the number of entries compared, and the best entry is
picked from the same numbers, so read "below" for p near 0.05 as a hint, not a finding.

`standing(entries)` reads the entry table back into where each entry stands against the best (keys in
its docstring); mnist3d.report.wording puts that into words.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd

CONFIDENCE = 0.95
ALPHA = 0.05

WELCH, MCNEMAR = "welch", "mcnemar"
TEST_NAMES = {WELCH: "Welch", MCNEMAR: "McNemar"}
WILSON, T_INTERVAL = "wilson", "t"

# The order in which intervals and tests are listed (and explained in the report).
METHODS = [WILSON, T_INTERVAL, WELCH, MCNEMAR]

COMPARISON_COLUMNS = ["vs_best_test", "vs_best_p_value", "tied_with_best", "verdict"]


def _z(confidence: float) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(accuracy: float, samples: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of an accuracy measured on `samples` test grids; (NaN, NaN) without data.

    Unlike accuracy ± 1.96 standard errors it stays inside [0, 1] and is not empty at 0 % or 100 %.
    """
    if samples is None or pd.isna(samples) or samples <= 0 or accuracy is None or not math.isfinite(accuracy):
        return math.nan, math.nan
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy {accuracy} is not between 0 and 1")
    z2 = _z(confidence) ** 2
    n = float(samples)
    centre = (accuracy + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(accuracy * (1 - accuracy) / n + z2 / (4 * n * n)) * math.sqrt(z2) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def finite(values) -> np.ndarray:
    """The values as floats, NaN (failed runs, missing numbers) left out."""
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """t-interval of the mean of 2+ replicate accuracies (NaN ignored), clipped to [0, 1].

    Fewer than 2 values give (NaN, NaN); replicates that all agree give a zero-width interval.
    """
    values = finite(values)
    if values.size < 2:
        return math.nan, math.nan
    mean = float(values.mean())
    if np.ptp(values) == 0:
        return mean, mean
    from scipy import stats as _scipy  # here: plot jobs import this module, and scipy.stats costs 1.5 s

    half = _scipy.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return max(0.0, mean - half), min(1.0, mean + half)


def welch_p_value(a, b) -> float:
    """Two-sided p-value of Welch's t-test (NaN ignored); NaN when either has under 2 values or
    neither varies (no spread, no test: the caller falls back to the paired test).

    Written out rather than scipy.stats.ttest_ind(equal_var=False), which agrees on ordinary data but
    turns replicates that agree exactly into a rounding-error variance and a p-value near 0.
    """
    a, b = finite(a), finite(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    var_a = a.var(ddof=1) / a.size if np.ptp(a) else 0.0
    var_b = b.var(ddof=1) / b.size if np.ptp(b) else 0.0
    if var_a == 0 and var_b == 0:
        return math.nan
    t = (a.mean() - b.mean()) / math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a**2 / (a.size - 1) + var_b**2 / (b.size - 1))
    from scipy import stats as _scipy

    return float(2 * _scipy.t.sf(abs(t), df))


def discordant_pairs(correct_a, correct_b) -> tuple[int, int]:
    """(grids only run a got right, grids only run b got right)."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f"paired predictions differ in length: {correct_a.shape} and {correct_b.shape}")
    return int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())


def mcnemar_p_value(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts; 1 when there are none."""
    if only_a + only_b == 0:
        return 1.0
    from scipy import stats as _scipy

    return float(_scipy.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def format_p(p: float) -> str:
    """'p = 0.41', 'p = 0.003', 'p < 0.001'; never rounds across the 0.05 line."""
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.2g}"
    if p < ALPHA <= float(text):
        return f"p < {ALPHA:g}"
    return f"p = {text}"


def _comparison(test: str, p: float, higher: bool = False) -> dict:
    detail = f"({format_p(p)}, {TEST_NAMES[test]})"
    if p >= ALPHA:
        verdict, tied = f"tied with the best {detail}", True
    elif higher:
        verdict, tied = f"above the best on its best run {detail}", False
    else:
        verdict, tied = f"below the best {detail}", False
    return {"vs_best_test": test, "vs_best_p_value": p, "tied_with_best": tied, "verdict": verdict}


def _untested(verdict: str) -> dict:
    return {"vs_best_test": "", "vs_best_p_value": math.nan, "tied_with_best": False, "verdict": verdict}


def compare_with_best(entry: str, best: str | None, accuracies: dict, best_runs: dict) -> dict:
    """The four comparison columns of `entry` against the best entry.

    `accuracies`: entry -> its replicates' test accuracies (NaN for unfinished ones);
    `best_runs`: entry -> (y_true, y_pred) of its best run, or None where its predictions are unknown.
    """
    own = finite(accuracies.get(entry, []))
    if own.size == 0:
        return _untested("no finished run")
    if entry == best:
        return {"vs_best_test": "", "vs_best_p_value": math.nan, "tied_with_best": True, "verdict": "best"}
    top = finite(accuracies[best])
    if own.size >= 3 and top.size >= 3:
        p = welch_p_value(top, own)
        if not math.isnan(p):
            return _comparison(WELCH, p)
    mine, theirs = best_runs.get(entry), best_runs.get(best)
    if mine is None or theirs is None:
        return _untested("not compared (no test predictions)")
    if not np.array_equal(mine[0], theirs[0]):
        return _untested("not compared (different test grids)")
    only_best, only_this = discordant_pairs(theirs[0] == theirs[1], mine[0] == mine[1])
    return _comparison(MCNEMAR, mcnemar_p_value(only_best, only_this), higher=only_this > only_best)


def entry_interval(accuracies, single_run_interval: tuple[float, float]) -> tuple[float, float]:
    """95 % interval of an entry: t-interval of the mean for 2+ finished replicates, else the one
    finished run's own (Wilson) interval, else (NaN, NaN)."""
    count = finite(accuracies).size
    if count >= 2:
        return t_interval(accuracies)
    return single_run_interval if count == 1 else (math.nan, math.nan)


def rank(frame: pd.DataFrame, accuracy: str, loss: str) -> pd.DataFrame:
    """The rows best first: highest `accuracy`, then lowest `loss` (missing last), then the frame's
    own order; rows without an accuracy follow in their own order. The one ranking of runs and entries."""
    scored = frame[frame[accuracy].notna()]
    ordered = scored.assign(_order=np.arange(len(scored))).sort_values(
        [accuracy, loss, "_order"], ascending=[False, True, True], na_position="last", kind="stable"
    )
    return pd.concat([ordered.drop(columns="_order"), frame[frame[accuracy].isna()]])


def _is_true(value) -> bool:
    # tied_with_best read back from CSV is a bool, or text where the column has blanks.
    return value is True or value is np.True_ or str(value) == "True"


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def standing(entries: pd.DataFrame) -> dict:
    """Where the entries stand against the best entry, from the entry table (metrics.entry_table or
    metrics.read_entry_table). Keys:

    best_entry        name of the best entry, or None when no run finished (every other key then empty)
    best_mean         its mean test accuracy (float, 0-1), over `best_replicates` finished replicates
    best_ci_low/high  its 95 % interval (floats); best_interval says which: "t" or "wilson"
    tied, below, above  lists of {"entry", "mean", "p_value", "test", "verdict"} for the entries tied
                      with the best, significantly below it, and above it on their best run, best first
                      ("test" is "welch" or "mcnemar"; "mean" their mean test accuracy)
    not_compared      [{"entry", "verdict"}] entries with a finished run that could not be tested
    no_finished_run   [entry names] whose every replicate failed
    tests             tests used, in METHODS order (subset of ["welch", "mcnemar"])
    intervals         intervals shown, in METHODS order (subset of ["wilson", "t"])
    """
    facts = {
        "best_entry": None, "best_mean": math.nan, "best_ci_low": math.nan, "best_ci_high": math.nan,
        "best_replicates": 0, "best_interval": "", "tied": [], "below": [], "above": [], "not_compared": [],
        "no_finished_run": [], "tests": [], "intervals": [],
    }
    ranked = rank(entries, "test_accuracy_mean", "test_loss_mean")
    used = set()
    for _, row in ranked.iterrows():
        name, verdict, test = str(row["entry"]), _text(row["verdict"]), _text(row["vs_best_test"])
        finished = int(row["replicates_ok"]) if pd.notna(row["replicates_ok"]) else 0
        if finished:
            used.add(T_INTERVAL if finished >= 2 else WILSON)
        if verdict == "best":
            facts.update(
                best_entry=name, best_mean=float(row["test_accuracy_mean"]), best_replicates=finished,
                best_ci_low=float(row["test_accuracy_ci_low"]), best_ci_high=float(row["test_accuracy_ci_high"]),
                best_interval=T_INTERVAL if finished >= 2 else WILSON,
            )
        elif verdict == "no finished run":
            facts["no_finished_run"].append(name)
        elif not test:
            facts["not_compared"].append({"entry": name, "verdict": verdict})
        else:
            used.add(test)
            group = "tied" if _is_true(row["tied_with_best"]) else "above" if verdict.startswith("above") else "below"
            facts[group].append(
                {"entry": name, "mean": float(row["test_accuracy_mean"]), "p_value": float(row["vs_best_p_value"]),
                 "test": test, "verdict": verdict}
            )
    if facts["best_entry"] is None:
        return facts
    facts["tests"] = [method for method in METHODS if method in used and method in TEST_NAMES]
    facts["intervals"] = [method for method in METHODS if method in used and method not in TEST_NAMES]
    return facts
