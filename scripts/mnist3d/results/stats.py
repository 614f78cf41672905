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
    vs_best_p_value         raw two-sided p-value of that test, empty where there is none
    vs_best_p_adjusted      the same p adjusted for the table (ADJUSTMENT below); the verdicts use it
    tied_with_best          True for the best, for entries tested tied with it (adjusted p >= 0.05) and for
                            entries whose runs the paired test cannot tell apart; False otherwise, including
                            entries that could not be tested (see verdict)
    verdict                 "best", "tied with the best (p = 0.41, adjusted 1; Welch)", "below the best
                            (p = 0.003, adjusted 0.03; Welch)", "above the best on its best run (...)",
                            "runs differ, settings untested (p < 0.001, adjusted 0.002; McNemar): set
                            replicates: 3", "runs alike, settings untested (...)", "no finished run", or
                            "not compared (<reason>)"

Which test: Welch's t-test on the replicate test accuracies when both entries have 3+ finished
replicates and at least one of them varies. Two entries whose 3+ replicates are all identical have no
seed spread, so a run stands for its settings and McNemar's exact test on the paired test predictions
of their best runs decides (same test grids, same order). With fewer than 3 finished replicates on
either side McNemar still compares the two best runs, but only as runs: a second seed of the same
settings differs from the first about as much as two settings do (issue 18: 10 of 11 seeds of one
network were "below the best" that way), so the verdict says the settings are untested and asks for
replicates, rather than borrowing a seed spread from other entries, whose spread need not be this
entry's (a high learning rate's seeds scatter far more than a low one's).

Adjustment (ADJUSTMENT, ADJUSTMENT_NOTE): the best is picked from the same numbers, so the comparison
of the worst entry with it is the widest of all pairwise gaps; Holm's step-down over every entry alone
would call 19 of 20 equal entries "below" in about 1 table in 5 once the replicates' spread is well
known. Each entry's hypothesis is "this entry is (one of) the best"; its p-value is the comparison with
the best made one-sided and multiplied by the k - 1 entries it could lose to (Bonferroni over the
others, k = entries with a finished run), the best's own is 1, and Holm's step-down runs over those k.
For two entries the adjusted p equals the raw one; the smallest of 20 is multiplied by 190, the number
of pairs. The tied entries then contain the truly best one with 95 % confidence, and tables of equal
entries call none "below" in at most 5 % of cases (tests/test_calibration.py simulates both paths). The
price is power: with 3 replicates each Welch has about 4 degrees of freedom, so among 20 entries only
gaps far beyond the seed spread are found; with 5 replicates a gap of 8 points (seed spread 1.5) is found
in 95 % of simulated tables, with 10 a gap of 5 points in all of them.

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

COMPARISON_COLUMNS = ["vs_best_test", "vs_best_p_value", "vs_best_p_adjusted", "tied_with_best", "verdict"]

# Welch needs this many finished replicates on both sides; fewer, and only runs are compared.
MIN_REPLICATES = 3
ADJUSTMENT = "Holm"
ADJUSTMENT_NOTE = (
    "Adjusted p-values allow for picking the best from the same numbers and for comparing many entries "
    "(Holm's step-down over the entries' chances of being the best, each comparison with the best made "
    "one-sided and multiplied by the number of other entries), so the entries tied with the best include "
    "the truly best one with 95 % confidence."
)


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
    from scipy.special import stdtr  # scipy.stats.t.sf's own kernel, without its 0.2 ms a call

    return float(2 * stdtr(df, -abs(t)))


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
    from scipy.special import bdtr

    # scipy.stats.binomtest(only_a, n, 0.5).pvalue: at 0.5 both tails are equal, so twice the smaller one.
    return float(min(1.0, 2 * bdtr(min(only_a, only_b), only_a + only_b, 0.5)))


def format_p(p: float) -> str:
    """'p = 0.41', 'p = 0.003', 'p < 0.001'; never rounds across the 0.05 line."""
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.2g}"
    if p < ALPHA <= float(text):
        return f"p < {ALPHA:g}"
    return f"p = {text}"


def format_adjusted(p: float) -> str:
    """'adjusted 0.03', 'adjusted < 0.001': format_p's rounding, for the p beside the raw one."""
    return "adjusted " + format_p(p).removeprefix("p ").removeprefix("= ")


def _detail(test: str, p: float, adjusted: float) -> str:
    return f"({format_p(p)}, {format_adjusted(adjusted)}; {TEST_NAMES[test]})"


def _untested(verdict: str) -> dict:
    return {"vs_best_test": "", "vs_best_p_value": math.nan, "vs_best_p_adjusted": math.nan,
            "tied_with_best": False, "verdict": verdict}


def _raw_test(entry: str, best: str, accuracies: dict, best_runs: dict) -> dict:
    """The unadjusted comparison of `entry` with the best: {test, p, higher, runs_only}, or {verdict} of
    an untested entry. `runs_only`: McNemar compared two runs, not two settings (too few replicates)."""
    own, top = finite(accuracies.get(entry, [])), finite(accuracies[best])
    replicated = own.size >= MIN_REPLICATES and top.size >= MIN_REPLICATES
    if replicated:
        p = welch_p_value(top, own)
        if not math.isnan(p):
            return {"test": WELCH, "p": p, "higher": False, "runs_only": False}
    mine, theirs = best_runs.get(entry), best_runs.get(best)
    if mine is None or theirs is None:
        return {"verdict": "not compared (no test predictions)"}
    if not np.array_equal(mine[0], theirs[0]):
        return {"verdict": "not compared (different test grids)"}
    only_best, only_this = discordant_pairs(theirs[0] == theirs[1], mine[0] == mine[1])
    return {"test": MCNEMAR, "p": mcnemar_p_value(only_best, only_this), "higher": only_this > only_best,
            "runs_only": not replicated}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given: statsmodels' multipletests(method="holm")
    (tests/test_stats.py checks they agree), written out because multipletests runs gc.collect() on every
    call, 0.2 s in a large process, and its import costs 1.5 s."""
    p_values = np.asarray(p_values, dtype=float)
    order = np.argsort(p_values, kind="stable")
    steps = np.maximum.accumulate((p_values.size - np.arange(p_values.size)) * p_values[order])
    adjusted = np.empty_like(p_values)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted


def adjusted_p_values(p_values: dict, candidates: int) -> dict:
    """Raw two-sided p-values of the comparisons with the best (entry -> p) adjusted for the table: each
    made one-sided and multiplied by the `candidates` - 1 entries it could lose to, then Holm's step-down
    over all `candidates` entries with a finished run (the best and untested ones counting with p = 1)."""
    names = list(p_values)
    chances = [min(1.0, p_values[name] / 2 * (candidates - 1)) for name in names]
    adjusted = holm(chances + [1.0] * max(0, candidates - len(names)))
    return {name: float(value) for name, value in zip(names, adjusted)}


def _verdict(raw: dict, adjusted: float) -> dict:
    test, p, significant = raw["test"], raw["p"], adjusted < ALPHA
    detail = _detail(test, p, adjusted)
    if raw["runs_only"]:
        words = "runs differ" if significant else "runs alike"
        verdict, tied = f"{words}, settings untested {detail}: set replicates: {MIN_REPLICATES}", not significant
    elif not significant:
        verdict, tied = f"tied with the best {detail}", True
    elif raw["higher"]:
        verdict, tied = f"above the best on its best run {detail}", False
    else:
        verdict, tied = f"below the best {detail}", False
    return {"vs_best_test": test, "vs_best_p_value": p, "vs_best_p_adjusted": adjusted, "tied_with_best": tied,
            "verdict": verdict}


def compare_all(best: str | None, accuracies: dict, best_runs: dict, entries=None) -> dict:
    """The comparison columns of every entry (`entries`, default those of `accuracies`) against the
    best entry, adjusted for their number; entry -> {column: value}. What the aggregate step runs.

    `accuracies`: entry -> its replicates' test accuracies (NaN for unfinished ones);
    `best_runs`: entry -> (y_true, y_pred) of its best run, or None where its predictions are unknown.
    """
    entries = list(accuracies) if entries is None else list(entries)
    finished = [entry for entry in entries if finite(accuracies.get(entry, [])).size]
    results, raw = {}, {}
    for entry in entries:
        if entry not in finished:
            results[entry] = _untested("no finished run")
        elif best is None or best not in finished:
            results[entry] = _untested("not compared (no best entry)")
        elif entry == best:
            results[entry] = {"vs_best_test": "", "vs_best_p_value": math.nan, "vs_best_p_adjusted": math.nan,
                              "tied_with_best": True, "verdict": "best"}
        else:
            raw[entry] = _raw_test(entry, best, accuracies, best_runs)
            if "verdict" in raw[entry]:
                results[entry] = _untested(raw.pop(entry)["verdict"])
    adjusted = adjusted_p_values({entry: test["p"] for entry, test in raw.items()}, len(finished))
    for entry, test in raw.items():
        results[entry] = _verdict(test, adjusted[entry])
    return results


def compare_with_best(entry: str, best: str | None, accuracies: dict, best_runs: dict) -> dict:
    """The comparison columns of one entry, within the table of every entry of `accuracies` (compare_all)."""
    return compare_all(best, accuracies, best_runs, entries=dict.fromkeys([*accuracies, entry]))[entry]


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


# Untied verdicts by their first word: which list of `standing` they belong to.
VERDICT_GROUPS = [("runs", "runs_differ"), ("above", "above")]


def standing(entries: pd.DataFrame) -> dict:
    """Where the entries stand against the best entry, from the entry table (metrics.entry_table or
    metrics.read_entry_table). Keys:

    best_entry        name of the best entry, or None when no run finished (every other key then empty)
    best_mean         its mean test accuracy (float, 0-1), over `best_replicates` finished replicates
    best_ci_low/high  its 95 % interval (floats); best_interval says which: "t" or "wilson"
    tied, below, above  lists of {"entry", "mean", "p_value", "p_adjusted", "test", "verdict"} for the entries
                      tied with the best (runs alike included), below it, and above it on their best run, best
                      first ("test" is "welch" or "mcnemar"; "mean" their mean test accuracy; "p_value" raw)
    runs_differ       the same for entries whose runs differ from the best's while their settings are untested
                      (fewer than MIN_REPLICATES finished replicates)
    not_compared      [{"entry", "verdict"}] entries with a finished run that could not be tested
    no_finished_run   [entry names] whose every replicate failed
    tests             tests used, in METHODS order (subset of ["welch", "mcnemar"])
    intervals         intervals shown, in METHODS order (subset of ["wilson", "t"])
    adjustment        ADJUSTMENT where entries were tested, else ""
    """
    facts = {
        "best_entry": None, "best_mean": math.nan, "best_ci_low": math.nan, "best_ci_high": math.nan,
        "best_replicates": 0, "best_interval": "", "tied": [], "below": [], "above": [], "not_compared": [],
        "no_finished_run": [], "tests": [], "intervals": [], "runs_differ": [], "adjustment": "",
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
            group = "tied" if _is_true(row["tied_with_best"]) else next(
                (group for prefix, group in VERDICT_GROUPS if verdict.startswith(prefix)), "below"
            )
            facts[group].append(
                {"entry": name, "mean": float(row["test_accuracy_mean"]), "p_value": float(row["vs_best_p_value"]),
                 "p_adjusted": float(row["vs_best_p_adjusted"]), "test": test, "verdict": verdict}
            )
    if facts["best_entry"] is None:
        return facts
    facts["tests"] = [method for method in METHODS if method in used and method in TEST_NAMES]
    facts["intervals"] = [method for method in METHODS if method in used and method not in TEST_NAMES]
    facts["adjustment"] = ADJUSTMENT if facts["tests"] else ""
    return facts
