"""The report's words for the statistics: the headline that answers which model is best, and a note
per interval and test on what it assumes.

The numbers come from mnist3d.results.stats (`standing` of the entry table); nothing here computes
one. The headline's first sentences (`ranking_sentences`) are also what aggregate_metrics logs.
"""

from __future__ import annotations

import pandas as pd

from mnist3d.report.format import fmt_accuracy, fmt_interval, fmt_seconds, missing
from mnist3d.results import stats

METHOD_NOTES = {
    stats.WILSON: "Intervals on single runs are 95 % Wilson score intervals: they treat the test grids as a random "
    "sample, each classified right or wrong independently, and show only that sampling error, not the "
    "spread between training seeds.",
    stats.T_INTERVAL: "Intervals on entries with 2 or more finished replicates are 95 % t-intervals of the mean test "
    "accuracy: they assume the replicates are independent and their accuracies roughly normal.",
    stats.WELCH: "Welch's t-test compares the replicate test accuracies of two entries with 3 or more finished "
    "replicates each: replicates independent, accuracies roughly normal, unequal variances allowed.",
    stats.MCNEMAR: "McNemar's exact test compares the best runs of two entries on the same test grids: only the "
    "grids one run gets right and the other wrong count, and under no difference each such grid is a "
    "fair coin toss. It compares two trained models, so with fewer than 3 finished replicates it does not "
    "compare their settings: another seed of the same settings can differ as much.",
}
TEST_USE = {
    stats.WELCH: "Welch's t-test on the replicates' test accuracies (entries with 3 or more finished replicates)",
    stats.MCNEMAR: "McNemar's exact test on the paired test predictions of the entries' best runs",
}
NOTHING_FINISHED = "No run finished training, so there is no model to recommend yet."


def method_notes(facts: dict) -> list[str]:
    """One note per interval and test that `facts` (stats.standing) used, in stats.METHODS order,
    then, where entries were tested, how their p-values are adjusted (stats.ADJUSTMENT_NOTE)."""
    used = set(facts["intervals"]) | set(facts["tests"])
    notes = [METHOD_NOTES[method] for method in stats.METHODS if method in used]
    return notes + [stats.ADJUSTMENT_NOTE] if facts["tests"] else notes


def _names(items: list[dict], limit: int = 8) -> str:
    shown = [
        f"{item['entry']} ({stats.format_p(item['p_value'])}, {stats.format_adjusted(item['p_adjusted'])}; "
        f"{stats.TEST_NAMES[item['test']]})"
        for item in items
    ]
    extra = f" and {len(shown) - limit} more (see the entry table)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + extra


def ranking_sentences(facts: dict) -> list[str]:
    """The best entry with its interval, then the entries the tests cannot tell from it (or that every
    other is below it), the entries whose best run beats its best run, and the entries whose runs differ
    from its run while their settings are untested (too few replicates)."""
    if facts["best_entry"] is None:
        return [NOTHING_FINISHED]
    replicates = facts["best_replicates"]
    what = "mean test accuracy" if replicates > 1 else "test accuracy"
    sentences = [
        f"{facts['best_entry']} has the highest {what}: {fmt_accuracy(facts['best_mean'])} (95 % interval "
        f"{fmt_interval(facts['best_ci_low'], facts['best_ci_high'])}, "
        f"{replicates} finished replicate{'s' if replicates != 1 else ''})."
    ]
    if facts["tied"]:
        count = len(facts["tied"])
        sentences.append(
            f"The tests cannot tell it apart from {count} other entr{'y' if count == 1 else 'ies'}: "
            f"{_names(facts['tied'])}. Treat {'these' if count > 1 else 'both'} as equally good on this test set."
        )
    elif facts["below"]:
        sentences.append(f"Every other entry tested is below it (adjusted p < {stats.ALPHA:g}).")
    if facts["above"]:
        sentences.append(
            f"Best runs that beat its best run although their entry's mean is lower: {_names(facts['above'])}."
        )
    if facts["runs_differ"]:
        count = len(facts["runs_differ"])
        sentences.append(
            f"Run against run, without {stats.MIN_REPLICATES} finished replicates on both sides, {count} "
            f"entr{'y differs' if count == 1 else 'ies differ'} from it: {_names(facts['runs_differ'])}; a second "
            "seed of the same settings can differ as much, so the settings are not compared: set replicates: "
            f"{stats.MIN_REPLICATES} in the models file to compare them."
        )
    return sentences


def headline(table: pd.DataFrame, entries: pd.DataFrame, best: str | None, data: dict) -> dict:
    """The answer first: the best entry with its interval, the entries the tests cannot tell from it,
    the tests used, and the best run's own numbers."""
    ok = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    failed = table[table["status"] == "failed"]  # a run stopped by halving is no failure
    facts = stats.standing(entries)
    summary = {
        "runs": len(table),
        "ok": len(ok),
        "failed": len(failed),
        "failed_runs": failed["run"].tolist(),
        "stopped": int((table["status"] == "stopped").sum()),
        "best": best,
        "best_entry": facts["best_entry"],
        "tied": [item["entry"] for item in facts["tied"]],
        "tests": [stats.TEST_NAMES[test] for test in facts["tests"]],
        "captions": method_notes(facts),
        "sentences": [],
    }
    if best is None or facts["best_entry"] is None:
        summary["sentences"].append(NOTHING_FINISHED)
        return summary
    row = table.set_index("run").loc[best]
    summary.update(
        {
            "mean": fmt_accuracy(facts["best_mean"]),
            "interval": fmt_interval(facts["best_ci_low"], facts["best_ci_high"]),
            "replicates": facts["best_replicates"],
            "test_accuracy": fmt_accuracy(row["test_accuracy"]),
            "unrotated": fmt_accuracy(row["test_accuracy_unrotated"]),
            "rotated": fmt_accuracy(row["test_accuracy_rotated"]),
            "training_time": fmt_seconds(row["training_seconds"]),
        }
    )
    sentences = ranking_sentences(facts)
    if facts["tests"]:
        sentences.append(
            "Compared with "
            + " and with ".join(TEST_USE[test] for test in facts["tests"])
            + "; the note under the entry table says what each assumes."
        )
    untested = [item["entry"] for item in facts["not_compared"]]
    if untested:
        sentences.append(f"Not compared with it: {', '.join(untested)} (see their verdicts).")
    halves = ""
    if not missing(row["test_accuracy_rotated"]):
        halves = f" ({summary['unrotated']} on the unrotated half, {summary['rotated']} on the rotated noisy half)"
    sentences.append(f"Its best run, {best}, scores {summary['test_accuracy']} on the test set{halves}.")
    total = table["training_seconds"].sum(min_count=1)
    stopped = summary["stopped"]
    notes = []
    if len(failed):
        notes.append(f"{len(failed)} failed, listed below")
    if stopped:
        notes.append(f"{stopped} stopped early by successive halving")
    sentences.append(
        f"{len(ok)} of {len(table)} runs finished"
        + (f" ({'; '.join(notes)})" if notes else "")
        + (f"; training took {fmt_seconds(total)} in total" if not missing(total) else "")
        + f", on the {data.get('source', 'unknown')} data set."
    )
    summary["sentences"] = sentences
    return summary
