"""Rung tables: the state of a multi-fidelity search, kept as plain serializable data.

A rung is a training budget (steps) and the results of the trials that reached it. Schedulers
(:mod:`temporal_ml.search._schedulers`) read a table and decide; the caller applies each decision to
the table (``start``, ``promote``, ``report``). A workflow keeps the table as its state and carries
it through continue-as-new; nothing lives in a scheduler object.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from temporal_ml.search._base import Direction

__all__ = ["Rung", "Bracket", "RungTable"]


class Rung(BaseModel):
    """One budget level of a bracket (a NaN result travels as the JSON string ``"NaN"``).

    Attributes:
        budget: training steps a trial has had when it reports at this rung.
        results: trial id -> objective at this rung, in reporting order.
        running: trials started at (or promoted to) this rung that have not reported yet.
        promoted: trials promoted from this rung to the next.
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    budget: int = Field(ge=1)
    results: dict[str, float] = Field(default_factory=dict)
    running: list[str] = Field(default_factory=list)
    promoted: list[str] = Field(default_factory=list)


class Bracket(BaseModel):
    """A ladder of rungs with budgets ``min_budget * eta**k`` (the last one capped at the maximum)."""

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    rungs: list[Rung]


class RungTable(BaseModel):
    """Every bracket's rungs, and which bracket each trial belongs to.

    Example:
        >>> from temporal_ml.search import AshaScheduler
        >>> sched = AshaScheduler(min_budget=10, max_budget=90, eta=3)
        >>> table = sched.new_table()
        >>> [r.budget for r in table.brackets[0].rungs]
        [10, 30, 90]
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    direction: Direction = "minimize"
    brackets: list[Bracket]
    trial_bracket: dict[str, int] = Field(default_factory=dict)
    closed: bool = False
    #: Rankings known ahead, by (bracket, rung): :meth:`seed_rankings`; not serialized.
    _ranked: dict[tuple[int, int], list[str]] = PrivateAttr(default_factory=dict)

    def seed_rankings(self, ranked: dict[tuple[int, int], list[str]]) -> None:
        """Give :meth:`ranking` each rung's order ahead (a builder that keeps rungs sorted: the
        sweep's plan); a report at a rung forgets that rung's. The lists are not copied: the
        rankings returned are the same lists, and nobody may change them."""
        self._ranked = ranked

    def rungs_of(self, trial_id: str) -> list[Rung]:
        return self.brackets[self.trial_bracket[trial_id]].rungs

    def start(self, trial_id: str, bracket: int = 0) -> None:
        """A new trial begins training toward the first rung of ``bracket``."""
        if trial_id in self.trial_bracket:
            raise ValueError(f"trial {trial_id!r} is already in the table")
        self.trial_bracket[trial_id] = bracket
        self.brackets[bracket].rungs[0].running.append(trial_id)

    def promote(self, trial_id: str, rung: int) -> None:
        """``trial_id`` goes on from rung ``rung`` toward rung ``rung + 1``."""
        rungs = self.rungs_of(trial_id)
        if trial_id not in rungs[rung].results or rung + 1 >= len(rungs):
            raise ValueError(f"trial {trial_id!r} cannot be promoted from rung {rung}")
        if trial_id in rungs[rung].promoted:
            raise ValueError(f"trial {trial_id!r} was already promoted from rung {rung}")
        rungs[rung].promoted.append(trial_id)
        rungs[rung + 1].running.append(trial_id)

    def report(self, trial_id: str, rung: int, value: float) -> None:
        """``trial_id`` reached rung ``rung`` with objective ``value`` (NaN counts as the worst)."""
        rungs = self.rungs_of(trial_id)
        if trial_id not in rungs[rung].running:
            raise ValueError(f"trial {trial_id!r} is not running toward rung {rung}")
        rungs[rung].running.remove(trial_id)
        rungs[rung].results[trial_id] = value
        self._ranked.pop((self.trial_bracket[trial_id], rung), None)

    def drop(self, trial_id: str) -> None:
        """A running trial failed or was stopped: it leaves its rung without a result."""
        for rung in self.rungs_of(trial_id):
            if trial_id in rung.running:
                rung.running.remove(trial_id)

    def rerun(self, trial_id: str, rung: int) -> None:
        """A trial that failed toward rung ``rung`` (and was dropped) trains toward it again."""
        rungs = self.rungs_of(trial_id)
        if trial_id in rungs[rung].results:
            raise ValueError(f"trial {trial_id!r} already reported at rung {rung}")
        if trial_id not in rungs[rung].running:
            rungs[rung].running.append(trial_id)

    def ranking(self, bracket: int, rung: int) -> list[str]:
        """Trial ids of a rung, best first (ties: earlier report first; NaN last)."""
        seeded = self._ranked.get((bracket, rung))
        if seeded is not None:
            return seeded
        sign = 1.0 if self.direction == "minimize" else -1.0
        results = self.brackets[bracket].rungs[rung].results
        order = {tid: i for i, tid in enumerate(results)}

        def key(tid: str) -> tuple[bool, float, int]:
            value = results[tid]
            return (math.isnan(value), sign * value if not math.isnan(value) else 0.0, order[tid])

        return sorted(results, key=key)

    @property
    def n_trials(self) -> int:
        return len(self.trial_bracket)

    def best(self) -> tuple[str, int, float] | None:
        """(trial id, rung, value) of the best result at the highest rung any trial reached."""
        found: tuple[str, int, float] | None = None
        for b, bracket in enumerate(self.brackets):
            for k in range(len(bracket.rungs) - 1, -1, -1):
                ranking = self.ranking(b, k)
                if ranking:
                    tid = ranking[0]
                    candidate = (tid, bracket.rungs[k].budget, bracket.rungs[k].results[tid])
                    if found is None or _better(candidate, found, self.direction):
                        found = candidate
                    break
        return found


def _better(a: tuple[str, int, float], b: tuple[str, int, float], direction: Direction) -> bool:
    if a[1] != b[1]:
        return a[1] > b[1]  # a larger budget wins: its value is the better-informed one
    return a[2] < b[2] if direction == "minimize" else a[2] > b[2]
