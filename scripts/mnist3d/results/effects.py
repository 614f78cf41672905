"""Which settings of a sweep change test accuracy, with evidence (rule sweep_effects):
results/sweeps/SWEEP-effects.csv, one row per term.

A grid with replicates is a factorial experiment: an analysis of variance of the finished runs' test
accuracy on the varied fields as categories and their two-field interactions (statsmodels ols +
anova_lm, type II, so a failed replicate, dropped, leaves the sums of squares valid). Per term: its
share of the variance (its sum of squares over the total around the mean), its p-value and a verdict.
A random sample, or a grid without replicates, gets a linear model instead: numeric fields as numbers
(learning_rate as log10, per tenfold), the others as categories against their first value, each
coefficient with its 95 % interval.

Columns: sweep, term, model ("anova" or "linear"; empty where a term is left out), df,
share_of_variance, p_value, coefficient, ci_low, ci_high, verdict. A field with one value is left out
with a row that says so; with too few residual degrees of freedom for the interactions an "interactions"
row says only main effects were tested. p-values are per term, not adjusted across terms.

`spec` is the sweep as the rules hold it (SWEEPS in rules/common.smk): {"name", "fields", "entries":
{entry: {field: value label}}}; the runs come from results/metrics.csv.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnist3d.config.names import ordered_labels
from mnist3d.results import stats
from mnist3d.results.metrics import read_table, write_csv

COLUMNS = ["sweep", "term", "model", "df", "share_of_variance", "p_value", "coefficient", "ci_low", "ci_high",
           "verdict"]
ANOVA, LINEAR = "anova", "linear"
# Fields whose effect is multiplicative: the linear model takes their log10.
LOG_FIELDS = {"learning_rate"}
# Interactions only where the full model leaves at least this many residual degrees of freedom.
MIN_RESIDUAL_DF = 2
ASSUMPTION = (
    "Both models assume the runs are independent and their test accuracies roughly normal, with the same "
    "spread between seeds for every combination; the linear model also assumes that accuracy changes "
    "in a straight line with each numeric field (with learning_rate, per tenfold)."
)


def sweep_runs(table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per finished run of the sweep: its entry, the varied fields' value labels, test_accuracy.
    Failed runs are dropped."""
    finished = table[(table["status"] == "ok") & table["test_accuracy"].notna()]
    rows = [
        {"entry": row["entry"], **{field: str(spec["entries"][row["entry"]][field]) for field in spec["fields"]},
         "test_accuracy": float(row["test_accuracy"])}
        for _, row in finished.iterrows()
        if row["entry"] in spec["entries"]
    ]
    return pd.DataFrame(rows, columns=["entry", *spec["fields"], "test_accuracy"])


def _row(sweep: str, term: str, verdict: str, model: str = "", **numbers) -> dict:
    row = dict.fromkeys(COLUMNS, math.nan)
    row.update(sweep=sweep, term=term, model=model, verdict=verdict, **numbers)
    return row


def is_replicated_grid(runs: pd.DataFrame, fields: list[str]) -> bool:
    """Every combination of the fields' values has a finished run, and some have more than one."""
    combinations = runs.groupby(fields).size()
    full = math.prod(runs[field].nunique() for field in fields)
    return len(combinations) == full and len(runs) > full


def _design(runs: pd.DataFrame, fields: list[str]) -> tuple[pd.DataFrame, dict]:
    # Formula-safe names (f0, f1, ...): field names may hold dots, as bundles and nested settings do.
    names = {field: f"f{index}" for index, field in enumerate(fields)}
    data = runs.rename(columns=names)[[*names.values(), "test_accuracy"]]
    return data, names


def _share(value: float) -> str:
    return f"{100 * value:.0f} % of the variance"


def _term_verdict(label: str, p: float, share: float) -> str:
    """'dropout matters (p < 0.001, 41 % of the variance)', 'no evidence that dense matters (p = 0.62)',
    and for an interaction 'a:b' 'the effect of a depends on b (...)' or 'no evidence that a and b interact'."""
    if not math.isfinite(p):
        return f"{label}: not tested (no spread between runs left to test against)"
    detail = f"({stats.format_p(p)}, {_share(share)})"
    if ":" in label:
        first, second = label.split(":", 1)
        if p < stats.ALPHA:
            return f"the effect of {first} depends on {second} {detail}"
        return f"no evidence that {first} and {second} interact ({stats.format_p(p)})"
    return f"{label} matters {detail}" if p < stats.ALPHA else f"no evidence that {label} matters ({stats.format_p(p)})"


def anova_effects(runs: pd.DataFrame, fields: list[str], sweep: str) -> list[dict]:
    """Type II analysis of variance of test accuracy on `fields` (categories) and their two-field
    interactions where the residual degrees of freedom allow; rows per term, then the residual."""
    from statsmodels.formula.api import ols  # here: statsmodels costs seconds to import
    from statsmodels.stats.anova import anova_lm

    data, names = _design(runs, fields)
    main = [f"C({name})" for name in names.values()]
    pairs = [f"{a}:{b}" for index, a in enumerate(main) for b in main[index + 1:]]
    levels = {f"C({names[field]})": runs[field].nunique() - 1 for field in fields}
    parameters = 1 + sum(levels.values()) + sum(levels[a] * levels[b] for a, b in (pair.split(":") for pair in pairs))
    interactions = bool(pairs) and len(data) - parameters >= MIN_RESIDUAL_DF
    model = ols("test_accuracy ~ " + " + ".join(main + (pairs if interactions else [])), data=data).fit()
    table = anova_lm(model, typ=2)
    total = float(((data["test_accuracy"] - data["test_accuracy"].mean()) ** 2).sum())
    labels = {f"C({name})": field for field, name in names.items()}
    rows = []
    for term, result in table.iterrows():
        share = float(result["sum_sq"]) / total if total > 0 else math.nan
        if term == "Residual":
            label, verdict, p = "residual", f"between seeds and unexplained: {_share(share)}", math.nan
        else:
            label = ":".join(labels[part] for part in term.split(":"))
            p = float(result["PR(>F)"])
            verdict = _term_verdict(label, p, share)
        rows.append(_row(sweep, label, verdict, model=ANOVA, df=float(result["df"]), share_of_variance=share,
                         p_value=p))
    if pairs and not interactions:
        rows.append(_row(sweep, "interactions", f"not tested: too few runs for them ({len(data)} runs, "
                                                f"{parameters} parameters), main effects only", model=ANOVA))
    return rows


def _numeric(labels) -> bool:
    try:
        [float(label) for label in labels]
    except ValueError:
        return False
    return True


def linear_effects(runs: pd.DataFrame, fields: list[str], sweep: str) -> list[dict]:
    """Least squares of test accuracy on `fields`: numbers as numbers (LOG_FIELDS as log10), the rest as
    categories against their first value; one row per coefficient with its 95 % interval."""
    from statsmodels.formula.api import ols

    data, names = _design(runs, fields)
    terms, labels = [], {}
    for field, name in names.items():
        if _numeric(runs[field]):
            values = runs[field].astype(float)
            data[name] = np.log10(values) if field in LOG_FIELDS else values
            terms.append(name)
            labels[name] = (f"log10({field})" if field in LOG_FIELDS else field, None)
        else:
            order = ordered_labels(runs[field])
            data[name] = pd.Categorical(runs[field], categories=order)
            terms.append(f"C({name})")
            labels.update({f"C({name})[T.{level}]": (f"{field}={level}", order[0]) for level in order[1:]})
    model = ols("test_accuracy ~ " + " + ".join(terms), data=data).fit()
    if model.df_resid < 1:
        return [_row(sweep, "linear model", f"not estimated: {len(data)} runs for {int(model.df_model) + 1} "
                                            "coefficients", model=LINEAR)]
    intervals = model.conf_int(alpha=1 - stats.CONFIDENCE)
    rows = []
    for term, (label, reference) in labels.items():
        coefficient, p = float(model.params[term]), float(model.pvalues[term])
        low, high = (float(value) for value in intervals.loc[term])
        rows.append(_row(sweep, label, _coefficient_verdict(label, reference, coefficient, low, high, p), model=LINEAR,
                         df=1.0, p_value=p, coefficient=coefficient, ci_low=low, ci_high=high))
    return rows


def _coefficient_verdict(label: str, reference, coefficient: float, low: float, high: float, p: float) -> str:
    interval = f"95 % interval {low:+.3f} to {high:+.3f}, {stats.format_p(p)}"
    if reference is not None:
        field, level = label.split("=", 1)
        what = f"{field} {level} against {reference}"
    else:
        what = f"each step of 1 in {label}" if not label.startswith("log10(") else f"each tenfold {label[6:-1]}"
    if not math.isfinite(p):
        return f"{what}: not estimated"
    if low > 0 or high < 0:
        return f"{what} {'adds' if coefficient > 0 else 'takes'} {abs(coefficient):.3f} test accuracy ({interval})"
    return f"no clear effect of {what} ({coefficient:+.3f}, {interval})"


def sweep_effects(table: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """The effects frame of one sweep (COLUMNS) from the runs table (results/metrics.csv)."""
    sweep, runs = spec["name"], sweep_runs(table, spec)
    rows, fields = [], []
    for field in spec["fields"]:
        values = ordered_labels(runs[field])
        if len(values) >= 2:
            fields.append(field)
        else:
            shown = f" ({values[0]})" if values else ""
            rows.append(_row(sweep, field, f"left out: one value among the finished runs{shown}"))
    if fields:
        replicated = is_replicated_grid(runs, fields)
        rows = (anova_effects if replicated else linear_effects)(runs, fields, sweep) + rows
    return pd.DataFrame(rows, columns=COLUMNS)


def model_description(models: set[str]) -> str:
    """What was fitted, from the model column's values."""
    if ANOVA in models:
        return "analysis of variance of its finished runs' test accuracy"
    if LINEAR in models:
        return "linear model of its finished runs' test accuracy, 95 % intervals of each coefficient"
    return "no model: fewer than two values in every varied field"


def effects_sentences(frame: pd.DataFrame) -> list[str]:
    """One sentence per sweep: which model, then each term's verdict (the residual and left-out fields last)."""
    sentences = []
    for sweep, rows in frame.groupby("sweep", sort=False):
        what = model_description(set(rows["model"]))
        verdicts = [str(verdict) for verdict in rows["verdict"]]
        sentences.append(f"{sweep} ({what}): " + "; ".join(verdicts) + ".")
    return sentences


def write_effects(table_path: str | Path, spec: dict, out_path: str | Path) -> pd.DataFrame:
    """results/sweeps/SWEEP-effects.csv from results/metrics.csv, written whole or not at all."""
    frame = sweep_effects(read_table(table_path), spec)
    write_csv(frame, out_path)
    return frame
