"""Successive halving on a sweep: the `halving:` key checked, and each halving sweep's rung plan.

A halving sweep trains every combination to the first rung's epoch, keeps the best 1/eta (by
validation accuracy at exactly that epoch, mnist3d.results.halving) and trains those on to the next
rung, and so on up to the sweep's full `epochs`. Imported by the Snakefile at parse time: no
TensorFlow, nothing slow.

Decisions, and why:
- Halving decides how far a run trains, never what it is: the combinations are the sweep's ordinary
  entries with its full `epochs` (and a learning-rate schedule over all of them), so a run that
  survives every rung is the same run as one trained straight through.
- Rungs at min_epochs x eta^k below `epochs`, then `epochs` itself (3, 9, 27 for min_epochs 3, eta
  3 and 27 epochs); the rung epochs are what a run's states are keyed by (entry, replicate, epoch).
- A sweep whose runs stop on their own (early_stopping_patience) or differ in `epochs` has no single
  epoch to compare them at: refused, as are an eta below 2 and a min_epochs that leaves one rung.
- Hyperband's `brackets` is accepted by the schema and refused above 1 for now (not implemented).
"""

from __future__ import annotations

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
    if brackets > 1:
        raise error(f"{brackets} brackets (Hyperband) are not supported yet; leave brackets out for successive "
                    "halving", key="halving.brackets")
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


@dataclass(frozen=True)
class HalvingPlan:
    """One halving sweep: its combinations (entries, sorted), replicates each, and rung epochs.

    Rungs count from 1; a decision follows every rung but the last (rung K's is rung-K.json).
    """

    sweep: str
    eta: int
    min_epochs: int
    epochs: int
    rungs: tuple[int, ...]
    entries: tuple[str, ...]
    replicates: int

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
        """Combinations that reach each rung, when no decision has to keep a failed one."""
        counts = [len(self.entries)]
        for _ in self.rungs[1:]:
            counts.append(keep_count(counts[-1], self.eta))
        return counts

    def summary(self) -> str:
        """What `snakemake -n` says about the sweep before any rung is decided."""
        steps = ", ".join(f"{count} to epoch {epoch}" for count, epoch in zip(self.planned_counts(), self.rungs))
        plural = "s" * (self.replicates != 1)
        return (f"halving sweep '{self.sweep}': {len(self.entries)} combinations x {self.replicates} "
                f"replicate{plural}, eta {self.eta}; rungs train {steps}. Only rung 1 is planned now: each later rung is decided as "
                f"the one before it finishes (results/sweeps/{self.sweep}/rung-K.json)")

    def as_param(self) -> dict:
        """The plan as plain values, for the decision rule's params."""
        return {"sweep": self.sweep, "eta": self.eta, "min_epochs": self.min_epochs, "epochs": self.epochs,
                "rungs": list(self.rungs), "replicates": self.replicates, "entries": list(self.entries)}


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
        entries = tuple(sorted({run.entry for run in sweep_runs}))
        found[name] = HalvingPlan(name, halving.eta, halving.min_epochs, epochs[0],
                                  rung_epochs(halving.min_epochs, halving.eta, epochs[0]), entries,
                                  max(run.replicate for run in sweep_runs))
    return found
