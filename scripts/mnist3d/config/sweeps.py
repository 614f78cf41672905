"""Expands the `sweeps:` section of a models file into ordinary named entries.

A sweep is a name and either a `grid:` (field -> list of values; the cartesian product) or a seeded
`random:` sample, plus optional `fixed:` overrides and `replicates:` for every combination. Each
combination becomes one entry whose overrides go on top of `defaults` like a hand-written run's;
mnist3d.config.runs then validates and trains it as any other entry.

Imported by the Snakefile at parse time: no TensorFlow, no YAML, nothing slow.

Decisions, and why:
- Names come only from the sweep's name and the combination's own varied values, fields in sorted
  order: `width-dropout.dropout-0.3.filters-16-32-64`. The same combination therefore has the same
  name (and keeps its trained results) whatever order the grid or its values are written in, and
  adding a value to a grid adds names without changing the others. `fixed` values are not in the
  name: changing one changes the runs' parameters, so Snakemake retrains them under the same names.
- Value text is the shortest exact one: 0.3, 0.001, 1e-5 (exponent without '+' or leading zeros),
  90 for both 90 and 90.0 (a number field's 90 and 90.0 are one run), true/false, lists joined by '-'
  (filters-16-32-64). Characters a directory name cannot hold become '_'. A name longer than
  MAX_NAME_LENGTH keeps its readable start and ends in 8 hex digits of a digest of the full name.
- Two values of one grid list with the same text (0.3 and 0.30, 90 and 90.0) are an error, which also
  makes every name of a grid unique; names are still checked across sweeps, and `check_no_clash`
  checks them against the hand-written `runs:` (the caller has those).
- A bundle is a grid key that is no run field, whose values are mappings of fields varied together
  (filters, kernel_sizes and pool_sizes of one depth). Its optional `name` is its text in the entry
  name; without one the text is its values in sorted field order joined by '_' (16-32_3-3_2-2).
- Random samples: `count` distinct combinations drawn with Python's seeded Mersenne Twister
  (stable across Python versions), parameters in sorted order; a combination drawn twice is drawn
  again, so raising `count` keeps the earlier combinations. A list is a uniform choice (integers
  come only from lists); `{uniform: [low, high]}` and `{log_uniform: [low, high]}` (low > 0) draw from
  [low, high), rounded to 3 significant digits before use, so the name shows the value trained.
- The number of runs (combinations x replicates, all sweeps together) is counted before any
  combination is built, so a grid of 10^20 combinations fails at once instead of hanging.
- `halving:` (mnist3d.config.halving) changes how far each combination trains, not what it is: the
  entries, their names and parameters are the same with it or without it.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from mnist3d.config.halving import check_spec as check_halving
from mnist3d.config.names import closest, entry_name, unknown_field, unsafe_reason, value_text

SWEEP_KEYS = ("fixed", "replicates", "grid", "random", "halving")
RANDOM_KEYS = ("count", "seed", "parameters")
DISTRIBUTIONS = ("uniform", "log_uniform")
# `replicates` counts runs per combination; it is no parameter of a run, so it cannot vary.
NOT_VARIED = ("replicates",)
BUNDLE_NAME = "name"
SIGNIFICANT_DIGITS = 3
# Draws allowed per wanted value before a range or a sample is declared too small.
DRAW_ATTEMPTS = 100


class SweepError(ValueError):
    """A sweep that cannot be expanded; the message names the file, the sweep and the field."""


@dataclass(frozen=True)
class SweepEntry:
    name: str
    sweep: str
    overrides: dict = field(hash=False)
    varied: dict = field(hash=False)

    @property
    def label(self) -> str:
        """The combination as a person reads it: 'dropout=0.3, filters=16-32-64'."""
        return ", ".join(f"{key}={text}" for key, text in self.varied.items())


@dataclass(frozen=True)
class _Option:
    """One value of one varied key: its text in names, and the run fields it sets."""

    text: str
    fields: dict


@dataclass(frozen=True)
class _Range:
    low: float
    high: float
    log: bool


class _Sweep:
    """One sweep's name and file, for error messages that say where."""

    def __init__(self, where: str, name: str):
        self.where, self.name = where, name

    def error(self, message: str, *, key: str | None = None, field_name: str | None = None,
              combination: str | None = None) -> SweepError:
        parts = [f"sweep '{self.name}'"]
        if combination is not None:
            parts.append(f"combination {combination}")
        if key is not None:
            parts.append(f"key '{key}'")
        if field_name is not None:
            parts.append(f"field '{field_name}'")
        return SweepError(f"{self.where}: {', '.join(parts)}: {message}")


def _is_count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_fixed(sweep: _Sweep, spec: dict, known: Collection[str]) -> dict:
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise sweep.error(f"must be a mapping of run fields to values, not {fixed!r}", key="fixed")
    for name in fixed:
        if name not in known:
            raise sweep.error(f"{unknown_field(str(name), known)} (in fixed)", field_name=str(name))
    fixed = dict(fixed)
    if "replicates" in spec:
        if "replicates" in fixed:
            raise sweep.error("given twice, as replicates and as fixed.replicates; keep one", field_name="replicates")
        fixed["replicates"] = spec["replicates"]
    if "replicates" in fixed and not _is_count(fixed["replicates"], 1):
        raise sweep.error(f"must be a whole number >= 1, not {fixed['replicates']!r}", field_name="replicates")
    return fixed


def _options(sweep: _Sweep, key: str, values, known: Collection[str], where_key: str) -> list[_Option]:
    """The values of one grid key (or random choice) as options, each checked."""
    if key in NOT_VARIED:
        raise sweep.error("is the number of runs per combination and cannot vary; set it once with "
                          "`replicates:`", field_name=key)
    if not isinstance(values, list) or not values:
        raise sweep.error(f"{where_key} values must be a non-empty list, e.g. [0.3, 0.5], not {values!r} "
                          "(a single value belongs under fixed)", field_name=key)
    bundle = key not in known
    if bundle and not any(isinstance(value, dict) for value in values):
        raise sweep.error(f"{unknown_field(key, known)}; a key that is no field is a bundle, whose values are "
                          "mappings of fields varied together", field_name=key)
    if bundle and (reason := unsafe_reason(key)):
        raise sweep.error(f"a bundle's key is part of run names: {reason}", key=key)
    options = []
    for value in values:
        if bundle:
            options.append(_bundle_option(sweep, key, value, known))
        elif isinstance(value, dict):
            raise sweep.error(f"value {value!r} is a mapping, but '{key}' is a run field; to vary several fields "
                              "together, give the bundle a key that is no field (e.g. layers)", field_name=key)
        else:
            options.append(_Option(value_text(value), {key: value}))
    seen = {}
    for option, value in zip(options, values):
        if option.text in seen:
            first = seen[option.text]
            twice = (f"value {value!r} is listed twice" if repr(first) == repr(value)
                     else f"values {first!r} and {value!r} are the same value ({option.text})")
            raise sweep.error(f"{twice}; list each value once", field_name=key)
        seen[option.text] = value
    return options


def _bundle_option(sweep: _Sweep, key: str, value, known: Collection[str]) -> _Option:
    if not isinstance(value, dict):
        raise sweep.error(f"bundle '{key}': value {value!r} is not a mapping of fields varied together",
                          key=key)
    fields = {name: item for name, item in value.items() if name != BUNDLE_NAME}
    if not fields:
        raise sweep.error(f"bundle '{key}': value {value!r} sets no field", key=key)
    for name in fields:
        if name not in known:
            raise sweep.error(f"{unknown_field(str(name), known)} (in bundle '{key}')", field_name=str(name))
        if name in NOT_VARIED:
            raise sweep.error(f"cannot vary (in bundle '{key}'); set it once with `replicates:`", field_name=name)
        if isinstance(fields[name], dict):
            raise sweep.error(f"bundle '{key}': a field's value cannot be a mapping", field_name=name)
    if BUNDLE_NAME in value:
        text = value[BUNDLE_NAME]
        if reason := unsafe_reason(text):
            raise sweep.error(f"bundle '{key}': its name is part of run names: {reason}", key=f"{key}.name")
    else:
        text = "_".join(value_text(fields[name]) for name in sorted(fields))
    return _Option(str(text), fields)


def _check_overlaps(sweep: _Sweep, fixed: dict, axes: dict) -> None:
    """A field set in two places (fixed and varied, or by two keys) would silently lose one of them."""
    owner = {name: "fixed" for name in fixed}
    for key in sorted(axes):
        axis = axes[key]
        names = {key} if isinstance(axis, _Range) else {name for option in axis for name in option.fields}
        for name in sorted(names):
            if name in owner and owner[name] != key:
                raise sweep.error(f"is set by both {owner[name]} and {key}; set it in one place", field_name=name)
            owner[name] = key


def _range(sweep: _Sweep, key: str, spec: dict, known: Collection[str], field_types) -> _Range:
    if key not in known:
        raise sweep.error(unknown_field(key, known), field_name=key)
    if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise sweep.error(f"a distribution is one of {{uniform: [low, high]}}, {{log_uniform: [low, high]}}, "
                          f"or a list of values to choose from, not {spec!r}", field_name=key)
    kind, bounds = next(iter(spec.items()))
    if field_types is not None and field_types.get(key, "number") != "number":
        values = field_types[key] or "one of a fixed set of"  # an enum field has no type
        raise sweep.error(f"takes {values} values, so {kind} cannot draw them: list the values to choose "
                          f"from instead, e.g. {key}: [a, b, c]", field_name=key)
    numbers = isinstance(bounds, list) and len(bounds) == 2 and all(
        isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
    if not numbers or not bounds[0] < bounds[1]:
        raise sweep.error(f"{kind} needs [low, high], two finite numbers with low < high, not {bounds!r}",
                          field_name=key)
    if kind == "log_uniform" and bounds[0] <= 0:
        raise sweep.error(f"log_uniform needs low > 0 (it draws the logarithm uniformly), not {bounds!r}",
                          field_name=key)
    return _Range(float(bounds[0]), float(bounds[1]), kind == "log_uniform")


def _random_spec(sweep: _Sweep, spec, known, field_types) -> tuple[int, int, dict]:
    if not isinstance(spec, dict):
        raise sweep.error(f"must be a mapping with count, seed and parameters, not {spec!r}", key="random")
    for key in spec:
        if key not in RANDOM_KEYS:
            raise sweep.error(f"unknown key; random has {', '.join(RANDOM_KEYS)}", key=f"random.{key}")
    count, seed = spec.get("count"), spec.get("seed", 0)
    if not _is_count(count, 1):
        raise sweep.error(f"the number of combinations to draw, a whole number >= 1, not {count!r}",
                          key="random.count")
    if not _is_count(seed, 0):
        raise sweep.error(f"must be a whole number >= 0, not {seed!r}", key="random.seed")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise sweep.error("must map each varied field to a list of values or a distribution",
                          key="random.parameters")
    axes = {}
    for key in sorted(parameters, key=str):
        values = parameters[key]
        if isinstance(values, dict):
            axes[str(key)] = _range(sweep, str(key), values, known, field_types)
        else:
            axes[str(key)] = _options(sweep, str(key), values, known, "random")
    return count, seed, axes


def _draw_value(sweep: _Sweep, key: str, rng: random.Random, spread: _Range) -> _Option:
    low, high = (math.log(spread.low), math.log(spread.high)) if spread.log else (spread.low, spread.high)
    for _ in range(DRAW_ATTEMPTS):
        value = low + rng.random() * (high - low)
        value = float(f"{math.exp(value) if spread.log else value:.{SIGNIFICANT_DIGITS}g}")
        if spread.low <= value < spread.high:
            return _Option(value_text(value), {key: value})
    raise sweep.error(f"[{spread.low!r}, {spread.high!r}) holds no {SIGNIFICANT_DIGITS}-significant-digit "
                      "value; widen it", field_name=key)


def _sample(sweep: _Sweep, count: int, seed: int, axes: dict) -> list[dict[str, _Option]]:
    if all(isinstance(axis, list) for axis in axes.values()):
        size = math.prod(len(axis) for axis in axes.values())
        if count > size:
            raise sweep.error(f"asks for {count} distinct combinations of lists that make only {size}",
                              key="random.count")
    rng = random.Random(seed)
    combinations, seen = [], set()
    for _ in range(DRAW_ATTEMPTS * count):
        combination = {
            key: axis[rng.randrange(len(axis))] if isinstance(axis, list) else _draw_value(sweep, key, rng, axis)
            for key, axis in axes.items()
        }
        texts = tuple(option.text for option in combination.values())
        if texts not in seen:
            seen.add(texts)
            combinations.append(combination)
            if len(combinations) == count:
                return combinations
    raise sweep.error(f"found only {len(combinations)} distinct combinations in {DRAW_ATTEMPTS * count} draws; "
                      "lower count or widen the ranges", key="random.count")


def _parse(sweep: _Sweep, spec, known, field_types):
    """Checks one sweep; returns its fixed overrides, its number of combinations, and a function that
    makes them (called only once the number of runs is known to be under the cap)."""
    if reason := unsafe_reason(sweep.name):
        raise sweep.error(f"a sweep's name is part of run names: {reason}")
    if not isinstance(spec, dict):
        raise sweep.error(f"must be a mapping with grid or random (and optional fixed, replicates, halving), "
                          f"not {spec!r}")
    for key in spec:
        if key not in SWEEP_KEYS:
            close = closest(str(key), SWEEP_KEYS)
            hint = f"did you mean '{close}'?" if close else "varied fields go under grid: or random.parameters:"
            raise sweep.error(f"unknown key; a sweep has {', '.join(SWEEP_KEYS)} ({hint})", key=str(key))
    if ("grid" in spec) == ("random" in spec):
        raise sweep.error("needs exactly one of grid (every combination) or random (a seeded sample)",
                          key="grid/random")
    fixed = _check_fixed(sweep, spec, known)
    if "halving" in spec:  # the rest (epochs, early stopping) once the runs are resolved: config.halving.plans
        check_halving(spec["halving"], sweep.error)
    if "grid" in spec:
        grid = spec["grid"]
        if not isinstance(grid, dict) or not grid:
            raise sweep.error(f"must map each varied field to a list of values, not {grid!r}", key="grid")
        axes = {str(key): _options(sweep, str(key), values, known, "grid") for key, values in grid.items()}
        _check_overlaps(sweep, fixed, axes)
        keys = sorted(axes)
        total = math.prod(len(axes[key]) for key in keys)
        return fixed, total, lambda: (
            dict(zip(keys, options)) for options in itertools.product(*(axes[key] for key in keys))
        )
    count, seed, axes = _random_spec(sweep, spec["random"], known, field_types)
    _check_overlaps(sweep, fixed, axes)
    return fixed, count, lambda: _sample(sweep, count, seed, axes)


def expand_sweeps(sweeps: dict, where: str, max_runs: int, known_fields: list[str], *,
                  default_replicates: int = 1, runs_before: int = 0,
                  field_types: Mapping[str, str] | None = None) -> list[SweepEntry]:
    """Every combination of every sweep as an entry: sweeps in file order, then each grid's product
    over its sorted keys (values in written order) or each sample in draw order.

    `max_runs` caps the runs of the whole file: `runs_before` (the hand-written runs) plus every
    sweep's combinations x replicates (from the sweep, else `default_replicates`). `field_types`
    ({field: JSON-schema type}), when given, refuses a numeric range on a field that is no number.
    """
    if sweeps is None:
        return []
    if not isinstance(sweeps, dict):
        raise SweepError(f"{where}: sweeps must be a mapping of sweep names to sweeps, not {sweeps!r}")
    known = list(known_fields)
    planned, total_runs = [], runs_before
    for name, spec in sweeps.items():
        sweep = _Sweep(where, str(name))
        fixed, combinations, expand = _parse(sweep, spec, known, field_types)
        replicates = fixed.get("replicates", default_replicates)
        runs = combinations * replicates
        if total_runs + runs > max_runs:
            before = f" on top of {total_runs} from runs: and earlier sweeps" if total_runs else ""
            plural = "s" * (replicates != 1)
            raise sweep.error(
                f"{combinations} combinations x {replicates} replicate{plural} = {runs} runs{before} exceed "
                f"max_runs = {max_runs}; check for a typo, or raise max_runs in config/config.yaml "
                "(or --config max_runs=N)", key="grid" if "grid" in spec else "random.count")
        total_runs += runs
        planned.append((sweep, fixed, expand))

    _check_figure_names([sweep.name for sweep, _, _ in planned], where)
    entries, owners = [], {}
    for sweep, fixed, expand in planned:
        for combination in expand():
            varied = {key: option.text for key, option in sorted(combination.items())}
            overrides = dict(fixed)
            for option in combination.values():
                overrides.update(option.fields)
            entry = SweepEntry(entry_name(sweep.name, varied), sweep.name, overrides, varied)
            if entry.name in owners:
                other = owners[entry.name]
                raise sweep.error(f"its run name '{entry.name}' is also that of combination {other.label} of "
                                  f"sweep '{other.sweep}'; rename a sweep", combination=entry.label)
            owners[entry.name] = entry
            entries.append(entry)
    return entries


# A sweep's figures share one folder: SWEEP.png, SWEEP-parallel.png and SWEEP-halving.png.
FIGURE_SUFFIXES = {"-parallel": "parallel-coordinates", "-halving": "halving"}


def _check_figure_names(names: list[str], where: str) -> None:
    """Sweeps `x` and `x-parallel` (or `x-halving`) would both draw results/plots/sweeps/x-parallel.png."""
    for name in names:
        for suffix, figure in FIGURE_SUFFIXES.items():
            if name.endswith(suffix) and name[: -len(suffix)] in names:
                raise _Sweep(where, name).error(
                    f"its figure results/plots/sweeps/{name}.png would also be the {figure} figure of sweep "
                    f"'{name[: -len(suffix)]}'; rename a sweep")


def check_no_clash(entries: Iterable[SweepEntry], run_names: Iterable[str], where: str) -> None:
    """A sweep's entry named like a hand-written run would share its results folder."""
    taken = {str(name) for name in run_names}
    for entry in entries:
        if entry.name in taken:
            raise _Sweep(where, entry.sweep).error(
                f"its run name '{entry.name}' is also a run under runs:; rename that run or the sweep",
                combination=entry.label)
