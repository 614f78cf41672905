"""Accuracy against cost, per entry: which entries no other entry beats on both accuracy and cost
(Pareto-optimal), and the cheapest entry tied with the best. Read by the cost figure
(mnist3d.plots.cost) and the report's summary, so the chart and the sentence name the same entries.

Pandas and NumPy only: no drawing here.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mnist3d.results.metrics import ranked_entries

# Each cost as (column of `entry_costs`, what the reader calls it).
COSTS = {"seconds": "training time", "parameters": "parameters"}


def _is_true(value) -> bool:
    # tied_with_best read back from CSV: a bool, or text where the column has blanks.
    return value is True or value is np.True_ or str(value) == "True"


def pareto_optimal(costs, accuracies) -> np.ndarray:
    """True where no other point has a cost as low and an accuracy as high, one of them strictly;
    False for points missing either number."""
    costs, accuracies = np.asarray(costs, dtype=float), np.asarray(accuracies, dtype=float)
    known = np.isfinite(costs) & np.isfinite(accuracies)
    optimal = known.copy()
    for index in np.flatnonzero(known):
        others = known & (costs <= costs[index]) & (accuracies >= accuracies[index])
        others &= (costs < costs[index]) | (accuracies > accuracies[index])
        optimal[index] = not others.any()
    return optimal


def entry_costs(table: pd.DataFrame, entries: pd.DataFrame) -> pd.DataFrame:
    """One row per entry with a finished run, best first: `entry`, `mean`, `low`, `high` (its mean
    test accuracy and 95 % interval), `verdict`, `sweep`, `tied` (the best or tied with it), `seconds` (mean
    training time of its finished runs), `parameters` (their parameter count), and `pareto_seconds`,
    `pareto_parameters`: whether it is Pareto-optimal on that cost."""
    finished = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    grouped = finished.groupby("entry", sort=False)
    summary = entries.set_index("entry")
    order = [entry for entry in ranked_entries(table) if entry in grouped.groups and entry in summary.index]
    frame = pd.DataFrame(
        {
            "entry": order,
            "mean": summary.loc[order, "test_accuracy_mean"].to_numpy(dtype=float),
            "low": summary.loc[order, "test_accuracy_ci_low"].to_numpy(dtype=float),
            "high": summary.loc[order, "test_accuracy_ci_high"].to_numpy(dtype=float),
            "verdict": summary.loc[order, "verdict"].fillna("").astype(str).to_numpy(),
            "sweep": summary.loc[order, "sweep"].fillna("").astype(str).to_numpy() if "sweep" in summary else "",
            "tied": [_is_true(summary.loc[entry, "tied_with_best"]) for entry in order],
            "seconds": grouped["training_seconds"].mean().reindex(order).to_numpy(dtype=float),
            "parameters": grouped["parameter_count"].median().reindex(order).to_numpy(dtype=float),
        }
    )
    frame["tied"] |= frame["verdict"] == "best"
    for cost in COSTS:
        frame[f"pareto_{cost}"] = pareto_optimal(frame[cost], frame["mean"])
    return frame


def cheapest_tied(frame: pd.DataFrame, cost: str) -> dict | None:
    """The entry tied with the best (the best included) with the lowest `cost` ("seconds" or
    "parameters"): {"entry", "cost", "best_cost", "ratio" (best's cost over its), "is_best"}; None
    when no tied entry has that cost."""
    tied = frame[frame["tied"] & np.isfinite(frame[cost])]
    best = frame[frame["verdict"] == "best"]
    if tied.empty or best.empty or not math.isfinite(best[cost].iloc[0]):
        return None
    cheapest = tied.loc[tied[cost].idxmin()]
    best_cost = float(best[cost].iloc[0])
    ratio = best_cost / float(cheapest[cost]) if cheapest[cost] > 0 else math.inf
    return {
        "entry": str(cheapest["entry"]),
        "cost": float(cheapest[cost]),
        "best_cost": best_cost,
        "ratio": ratio,
        "is_best": cheapest["verdict"] == "best" or ratio <= 1.0,
    }
