"""Successive halving on a sweep: the `halving:` key checked, and each halving sweep's rung plan.

A halving sweep trains every combination to the first rung's epoch, keeps the best 1/eta (by
validation accuracy at exactly that epoch, mnist3d.results.halving) and trains those on to the next
rung, and so on up to the sweep's full `epochs`. With `brackets: N` it runs Hyperband (Li et al.
2018): N such brackets, each starting a rung later with fewer combinations. Imported by the
Snakefile at parse time: no TensorFlow, nothing slow.

Decisions, and why:
- Halving decides how far a run trains, never what it is: the combinations are the sweep's ordinary
  entries with its full `epochs` (and a learning-rate schedule over all of them), so a run that
  survives every rung is the same run as one trained straight through.
- Rungs at min_epochs x eta^k below `epochs`, then `epochs` itself (3, 9, 27 for min_epochs 3, eta
  3 and 27 epochs); the rung epochs are what a run's states are keyed by (entry, replicate, epoch).
- A sweep whose runs stop on their own (early_stopping_patience) or differ in `epochs` has no single
  epoch to compare them at: refused, as are an eta below 2 and a min_epochs that leaves one rung.
- Bracket b's rungs are bracket 1's from its b-th on (min_epochs x eta^(b-1), ..., epochs), so every
  bracket's states are states of bracket 1's rung epochs: a run's state at an epoch is the same
  whichever bracket took it there, and the brackets share them. The last bracket may start at
  `epochs` itself (Hyperband's bracket without decisions); more brackets than rungs are refused.
- Bracket 1 holds every combination, so adding brackets changes none of its decisions. Bracket b
  holds n_b = ceil(G x k_1 / (k_b x eta^(b-1))) of the G combinations (k: its number of rungs;
  Hyperband's n proportional to eta^s / (s + 1)), at most G: those with the smallest sha256 of
  "SWEEP/bracket-B/ENTRY": not the first by name, which in a grid is parameter order, and stable:
  an added combination can only take the place of a chosen one with a larger digest.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

HALVING_KEYS = ("min_epochs", "eta", "brackets")


@dataclass(frozen=True)
class HalvingSpec:
    min_epochs: int
    eta: int
    brackets: int = 1


def _whole(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def check_spec(spec, error: Callable[..., Exception]) -> HalvingSpec:
    """The sweep's `halving:` mapping checked alone; `error(message, key=...)` makes the named error."""
    if not isinstance(spec, dict):
        raise error(f"must be a mapping such as {{min_epochs: 3, eta: 3}}, not {spec!r}", key="halving")
    for key in spec:
        if key not in HALVING_KEYS:
            raise error(f"unknown key; halving has {', '.join(HALVING_KEYS)}", key=f"halving.{key}")
    if "min_epochs" not in spec:
        raise error("missing: the epochs every combination trains before the first cut", key="halving.min_epochs")
    min_epochs, eta, brackets = spec["min_epochs"], spec.get("eta", 3), spec.get("brackets", 1)
    if not _whole(min_epochs, 1):
        raise error(f"must be a whole number >= 1, not {min_epochs!r}", key="halving.min_epochs")
    if not _whole(eta, 2):
        raise error(f"must be a whole number >= 2 (each rung keeps the best 1/eta), not {eta!r}", key="halving.eta")
    if not _whole(brackets, 1):
        raise error(f"must be a whole number >= 1, not {brackets!r}", key="halving.brackets")
    return HalvingSpec(min_epochs, eta, brackets)


def rung_epochs(min_epochs: int, eta: int, epochs: int) -> tuple[int, ...]:
    """min_epochs x eta^k for every k that stays below `epochs`, then `epochs`."""
    rungs, epoch = [], min_epochs
    while epoch < epochs:
        rungs.append(epoch)
        epoch *= eta
    return (*rungs, epochs)


def keep_count(alive: int, eta: int) -> int:
    """How many of `alive` combinations go on to the next rung: the best ceil(alive / eta)."""
    return math.ceil(alive / eta)


def bracket_size(combinations: int, first_rungs: int, rungs: int, bracket: int, eta: int) -> int:
    """n_b: how many of a sweep's `combinations` bracket `bracket` (from 1) holds, when bracket 1 has
    `first_rungs` rungs and this one `rungs`: ceil(G x k_1 / (k_b x eta^(b-1))), at most G."""
    numerator, denominator = combinations * first_rungs, rungs * eta ** (bracket - 1)
    return min(combinations, -(-numerator // denominator))


def bracket_entries(sweep: str, bracket: int, entries: Iterable[str], count: int) -> tuple[str, ...]:
    """The `count` entries of bracket `bracket` (sorted): those with the smallest sha256 of
    "SWEEP/bracket-B/ENTRY", a choice that no other entry's name or order changes."""
    def key(entry: str) -> str:
        return hashlib.sha256(f"{sweep}/bracket-{bracket}/{entry}".encode()).hexdigest()

    return tuple(sorted(sorted(entries, key=key)[:count]))


@dataclass(frozen=True)
class Bracket:
    """One bracket of a halving sweep: successive halving of `entries` (sorted) over `rungs`, a tail
    of bracket 1's. Its decisions are results/sweeps/SWEEP/rung-K.json for bracket 1 and
    results/sweeps/SWEEP/bracket-B/rung-K.json for the others (rules/halving.smk)."""

    number: int
    rungs: tuple[int, ...]
    entries: tuple[str, ...]

    @property
    def decisions(self) -> range:
        """The rungs followed by a decision: every one but the last (none when it starts at `epochs`)."""
        return range(1, len(self.rungs))

    def planned_counts(self, eta: int) -> list[int]:
        """Combinations that reach each rung, when no decision has to keep a failed one."""
        counts = [len(self.entries)]
        for _ in self.rungs[1:]:
            counts.append(keep_count(counts[-1], eta))
        return counts

    def steps(self, eta: int) -> str:
        return ", ".join(f"{count} to epoch {epoch}" for count, epoch in zip(self.planned_counts(eta), self.rungs))


@dataclass(frozen=True)
class HalvingPlan:
    """One halving sweep: its combinations (entries, sorted), replicates each, and rung epochs; with
    Hyperband, its brackets (`brackets`; one, bracket 1, otherwise).

    `rungs` and `entries` are bracket 1's: every rung epoch of every bracket, and every combination.
    Rungs count from 1; a decision follows every rung but the last (rung K's is rung-K.json).
    """

    sweep: str
    eta: int
    min_epochs: int
    epochs: int
    rungs: tuple[int, ...]
    entries: tuple[str, ...]
    replicates: int
    brackets: tuple[Bracket, ...] = ()

    def __post_init__(self):
        if not self.brackets:
            object.__setattr__(self, "brackets", (Bracket(1, self.rungs, self.entries),))

    def bracket(self, number: int) -> Bracket:
        """Bracket `number` (from 1); ValueError when the sweep has no such bracket."""
        if not 1 <= number <= len(self.brackets):
            raise ValueError(f"halving sweep '{self.sweep}' has brackets 1 to {len(self.brackets)}, not {number}")
        return self.brackets[number - 1]

    def brackets_of(self, entry: str) -> list[Bracket]:
        """The brackets that hold combination `entry` (bracket 1 always does)."""
        return [bracket for bracket in self.brackets if entry in bracket.entries]

    def rung(self, epoch: int) -> int:
        """The rung (from 1) whose epoch is `epoch`; ValueError when it is none."""
        if epoch not in self.rungs:
            raise ValueError(f"epoch {epoch} is no rung of halving sweep '{self.sweep}' (rungs at {self.rungs})")
        return self.rungs.index(epoch) + 1

    def previous_epoch(self, epoch: int) -> int | None:
        """The rung epoch a run continues from to reach rung epoch `epoch`; None for the first rung."""
        rung = self.rung(epoch)
        return None if rung == 1 else self.rungs[rung - 2]

    @property
    def decisions(self) -> range:
        """The rungs followed by a decision: every one but the last."""
        return range(1, len(self.rungs))

    def planned_counts(self) -> list[int]:
        """Combinations that reach each rung of bracket 1, when no decision has to keep a failed one."""
        return self.brackets[0].planned_counts(self.eta)

    def summary(self) -> str:
        """What `snakemake -n` says about the sweep before any rung is decided."""
        plural = "s" * (self.replicates != 1)
        head = f"halving sweep '{self.sweep}': {len(self.entries)} combinations x {self.replicates} replicate{plural}"
        decided = "each later rung is decided as the one before it finishes"
        if len(self.brackets) == 1:
            return (f"{head}, eta {self.eta}; rungs train {self.brackets[0].steps(self.eta)}. Only rung 1 is planned "
                    f"now: {decided} (results/sweeps/{self.sweep}/rung-K.json)")
        steps = "; ".join(f"bracket {bracket.number} trains {bracket.steps(self.eta)}" for bracket in self.brackets)
        return (f"{head}, eta {self.eta}, {len(self.brackets)} brackets (Hyperband); {steps}. Only each bracket's "
                f"first rung is planned now: {decided} (results/sweeps/{self.sweep}/rung-K.json for bracket 1, "
                f"results/sweeps/{self.sweep}/bracket-B/rung-K.json for bracket B)")

    def as_param(self) -> dict:
        """The plan as plain values: bracket 1's rungs and every combination, and each bracket's."""
        return {"sweep": self.sweep, "eta": self.eta, "min_epochs": self.min_epochs, "epochs": self.epochs,
                "rungs": list(self.rungs), "replicates": self.replicates, "entries": list(self.entries),
                "brackets": [{"bracket": bracket.number, "rungs": list(bracket.rungs), "entries": list(bracket.entries)}
                             for bracket in self.brackets]}

    def bracket_param(self, number: int) -> dict:
        """One bracket as plain values, for its decisions' params (mnist3d.results.halving.decide).
        Nothing of the other brackets: adding brackets leaves bracket 1's decisions as they are."""
        bracket = self.bracket(number)
        return {"sweep": self.sweep, "bracket": bracket.number, "eta": self.eta, "epochs": self.epochs,
                "rungs": list(bracket.rungs), "replicates": self.replicates, "entries": list(bracket.entries)}


def _named_error(error_type: type[Exception], where: str, sweep: str) -> Callable[..., Exception]:
    def error(message: str, key: str = "halving") -> Exception:
        return error_type(f"{where}: sweep '{sweep}', key '{key}': {message}")

    return error


def plans(sweeps: dict | None, runs: Iterable, where: str, error_type: type[Exception] = ValueError
          ) -> dict[str, HalvingPlan]:
    """The plan of every sweep with `halving:` in the models file's `sweeps` section, from its
    resolved runs (mnist3d.config.runs.Run: entry, replicate, params, sweep)."""
    by_sweep: dict[str, list] = {}
    for run in runs:
        if run.sweep:
            by_sweep.setdefault(run.sweep, []).append(run)
    found = {}
    for name, spec in (sweeps or {}).items():
        if not isinstance(spec, dict) or "halving" not in spec:
            continue
        name = str(name)
        error = _named_error(error_type, where, name)
        halving = check_spec(spec["halving"], error)
        sweep_runs = by_sweep.get(name, [])
        epochs = sorted({run.params["epochs"] for run in sweep_runs})
        if len(epochs) != 1:
            raise error(f"its combinations train for different epochs ({', '.join(map(str, epochs))}); halving "
                        "compares them at the same epochs: set epochs once, under fixed or defaults")
        stopping = sorted({run.entry for run in sweep_runs if run.params.get("early_stopping_patience")})
        if stopping:
            raise error(f"early_stopping_patience is set ({stopping[0]}): a run that stops itself has no validation "
                        "accuracy at the rungs' epochs; leave early stopping out of a halving sweep")
        if halving.min_epochs >= epochs[0]:
            raise error(f"min_epochs {halving.min_epochs} leaves no rung before the sweep's {epochs[0]} epochs; "
                        "make it smaller than epochs", key="halving.min_epochs")
        rungs = rung_epochs(halving.min_epochs, halving.eta, epochs[0])
        if halving.brackets > len(rungs):
            raise error(f"{halving.brackets} brackets, but rungs at {', '.join(map(str, rungs))} epochs allow at most "
                        f"{len(rungs)}: bracket {len(rungs)} starts at the last rung, epoch {epochs[0]}",
                        key="halving.brackets")
        entries = tuple(sorted({run.entry for run in sweep_runs}))
        brackets = tuple(
            Bracket(number, rungs[number - 1:], bracket_entries(
                name, number, entries, bracket_size(len(entries), len(rungs), len(rungs) - number + 1, number,
                                                    halving.eta)))
            for number in range(1, halving.brackets + 1))
        found[name] = HalvingPlan(name, halving.eta, halving.min_epochs, epochs[0], rungs, entries,
                                  max(run.replicate for run in sweep_runs), brackets)
    return found
