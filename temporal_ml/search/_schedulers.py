"""Multi-fidelity schedulers: successive halving and ASHA over a :class:`RungTable`.

A scheduler holds settings only. ``next(table)`` reads the table and returns one
:class:`LadderDecision` (start a new trial, promote one, wait, or done) that says why; the caller
applies it to the table and runs the training. Promotion means *continuing the same trial* from
its rung checkpoint to the next budget, never retraining from scratch.

Budgets (training steps) are ``min_budget * eta**k`` up to the maximum: with ``min_budget=10``,
``max_budget=100``, ``eta=3`` the rungs are 10, 30 and 100.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from temporal_ml.search._base import Direction
from temporal_ml.search._rungs import Bracket, Rung, RungTable

__all__ = ["LadderDecision", "AshaScheduler", "SuccessiveHalvingScheduler", "ladder_budgets"]


class LadderDecision(BaseModel):
    """What to do next, and why.

    Attributes:
        action: ``start`` a new trial, ``promote`` one, ``wait`` for running trials, or ``done``.
        trial_id: the trial to promote (``None`` for the other actions).
        bracket: the bracket of the trial (started or promoted).
        rung: the rung the trial now trains toward.
        budget: the training steps it trains to (the rung's budget).
        reason: the audit line: rank in the rung, rung size, how many go on.
        rank / size / quota: a promotion's rank in its rung (1 is the best), the rung's results and
            how many of them go on (ASHA).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    action: Literal["start", "promote", "wait", "done"]
    trial_id: str | None = None
    bracket: int = 0
    rung: int = 0
    budget: int = 0
    reason: str
    rank: int | None = None
    size: int | None = None
    quota: int | None = None


def ladder_budgets(min_budget: int, max_budget: int, eta: int) -> list[int]:
    """Rung budgets ``min_budget * eta**k`` while they stay below the maximum, then the maximum.

    Example:
        >>> ladder_budgets(10, 100, 3)
        [10, 30, 100]
    """
    budgets = [min_budget]
    while budgets[-1] * eta <= max_budget:
        budgets.append(budgets[-1] * eta)
    if len(budgets) == 1:
        budgets.append(max_budget)  # less than one eta step: two rungs, min and max
    budgets[-1] = max_budget  # the last rung trains to the full budget
    return budgets


class _Ladder(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    min_budget: int = Field(ge=1)
    max_budget: int = Field(ge=1)
    eta: int = Field(default=3, ge=2)

    @model_validator(mode="after")
    def _check(self) -> _Ladder:
        if self.min_budget >= self.max_budget:
            raise ValueError(
                f"min_budget ({self.min_budget}) must be less than max_budget ({self.max_budget})"
            )
        return self

    def budgets(self) -> list[int]:
        """The rung budgets of the first bracket."""
        return ladder_budgets(self.min_budget, self.max_budget, self.eta)

    def _table(self, direction: Direction, n_brackets: int) -> RungTable:
        budgets = self.budgets()
        return RungTable(
            direction=direction,
            brackets=[
                Bracket(rungs=[Rung(budget=b) for b in budgets[s:]]) for s in range(n_brackets)
            ],
        )


def _promote_reason(
    tid: str, pos: int, size: int, quota: int, eta: int, rung: Rung, nxt: Rung, k: int
) -> str:
    return (
        f"trial {tid} ranks {pos + 1} of {size} at rung {k} (budget {rung.budget}); "
        f"the top 1/{eta} ({quota}) go on: continue it to budget {nxt.budget}"
    )


class AshaScheduler(_Ladder):
    """Asynchronous successive halving (Li et al., MLSys 2020), optionally with Hyperband brackets.

    A trial is promoted as soon as it is in the top ``1/eta`` of its rung; when nothing can be
    promoted, a new trial starts. With ``brackets > 1``, new trials go round-robin to brackets
    whose first rung is ``min_budget * eta**s`` (asynchronous Hyperband).

    Example:
        >>> sched = AshaScheduler(min_budget=10, max_budget=90, eta=3)
        >>> table = sched.new_table()
        >>> sched.next(table).action
        'start'
    """

    kind: Literal["asha"] = "asha"
    brackets: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_brackets(self) -> AshaScheduler:
        if self.brackets > len(self.budgets()) - 1:
            raise ValueError(
                f"brackets ({self.brackets}) must be at most {len(self.budgets()) - 1} "
                f"for the rungs {self.budgets()}"
            )
        return self

    def new_table(self, direction: Direction = "minimize") -> RungTable:
        return self._table(direction, self.brackets)

    def next(self, table: RungTable, *, may_start: bool = True) -> LadderDecision:
        """Promote the best promotable trial of the highest rung, else start one, else wait."""
        order = sorted(
            ((b, k) for b, br in enumerate(table.brackets) for k in range(len(br.rungs) - 1)),
            key=lambda bk: (-table.brackets[bk[0]].rungs[bk[1]].budget, bk[0]),
        )
        for b, k in order:
            rungs = table.brackets[b].rungs
            quota = len(rungs[k].results) // self.eta
            if quota == 0:
                continue
            ranking = table.ranking(b, k)
            promoted = set(rungs[k].promoted)
            for pos, tid in enumerate(ranking[:quota]):
                if tid not in promoted:
                    return LadderDecision(
                        action="promote", trial_id=tid, bracket=b, rung=k + 1,
                        budget=rungs[k + 1].budget,
                        reason=_promote_reason(tid, pos, len(ranking), quota, self.eta,
                                               rungs[k], rungs[k + 1], k),
                        rank=pos + 1, size=len(ranking), quota=quota,
                    )
        running = any(r.running for br in table.brackets for r in br.rungs)
        if table.closed or not may_start:
            return LadderDecision(
                action="wait" if running else "done",
                reason="no trial can be promoted yet"
                + (" and no new trials may start" if running else "; nothing is running"),
            )
        b = table.n_trials % len(table.brackets)
        first = table.brackets[b].rungs[0]
        return LadderDecision(
            action="start", bracket=b, rung=0, budget=first.budget,
            reason=f"no trial is in the top 1/{self.eta} of its rung unpromoted: "
            f"start a new trial in bracket {b} at budget {first.budget}",
        )

    def unpromotable(self, table: RungTable, max_trials: int | None = None) -> list[tuple[str, int]]:
        """(trial id, rung) pairs that can never be promoted, given at most ``max_trials`` trials.

        Ranks only get worse as trials join a rung, and rung ``k`` can promote at most
        ``floor(U_k / eta)`` trials, where ``U_0`` is the trial cap per bracket and
        ``U_{k+1} = floor(U_k / eta)``. A trial ranked beyond that can never go on, so its rung
        checkpoint can be deleted. With no cap and an open table nothing is certain (empty list).
        """
        if max_trials is None and not table.closed:
            return []
        dead: list[tuple[str, int]] = []
        for b, bracket in enumerate(table.brackets):
            members = [t for t, tb in table.trial_bracket.items() if tb == b]
            cap = len(members) if table.closed or max_trials is None else math.ceil(
                max(max_trials - table.n_trials, 0) / len(table.brackets)
            ) + len(members)
            for k, rung in enumerate(bracket.rungs[:-1]):
                quota = cap // self.eta
                promoted = set(rung.promoted)
                for pos, tid in enumerate(table.ranking(b, k)):
                    if pos >= quota and tid not in promoted:
                        dead.append((tid, k))
                cap = quota
        return dead


    def dead(self, table: RungTable, max_trials: int | None = None) -> list[tuple[str, int]]:
        """(trial id, rung) pairs that can never be promoted, given at most ``max_trials`` trials;
        sound under asynchronous promotion (what a sweep deletes).

        A trial's rank at a rung only gets worse as results join, and it is promoted only while it
        is in the top ``floor(n / eta)`` of the ``n`` results there; with at most ``U_k`` results
        ever at rung ``k``, a trial ranked at or beyond ``floor(U_k / eta)`` never is. ``U_0`` is
        the bracket's trials (every one started, failed ones too: they may run again) plus its share
        of those still to start; ``U_{k+1}`` is at most the trials promoted from rung ``k`` so far,
        plus those there that still may be, plus the results rung ``k`` may still get. (Promotion
        is asynchronous, so more than ``floor(U_k / eta)`` may go on: :meth:`unpromotable` assumed
        not, and is kept for the ladders of earlier releases, whose recorded histories use it.)
        """
        if max_trials is None and not table.closed:
            return []
        dead: list[tuple[str, int]] = []
        for b, bracket in enumerate(table.brackets):
            members = sum(1 for tb in table.trial_bracket.values() if tb == b)
            to_start = 0 if table.closed or max_trials is None else math.ceil(
                max(max_trials - table.n_trials, 0) / len(table.brackets))
            cap = members + to_start
            for k, rung in enumerate(bracket.rungs[:-1]):
                quota = cap // self.eta
                promoted = set(rung.promoted)
                ranking = table.ranking(b, k)
                alive = 0
                for pos, tid in enumerate(ranking):
                    if tid in promoted:
                        continue
                    if pos >= quota:
                        dead.append((tid, k))
                    else:
                        alive += 1
                cap = len(promoted) + alive + max(cap - len(ranking), 0)
        return dead


class SuccessiveHalvingScheduler(_Ladder):
    """Synchronous successive halving over ``n_trials`` trials (Jamieson & Talwalkar, 2016).

    All ``n_trials`` start at the first rung; once a rung is complete, its best
    ``floor(n / eta**k)`` go on to the next. Slower than ASHA when trials take unequal time, but
    every promotion sees the whole rung.
    """

    kind: Literal["sh"] = "sh"
    n_trials: int = Field(ge=1)

    def new_table(self, direction: Direction = "minimize") -> RungTable:
        return self._table(direction, 1)

    def capacities(self) -> list[int]:
        """How many trials each rung holds: ``max(1, floor(n_trials / eta**k))``."""
        return [max(1, self.n_trials // self.eta**k) for k in range(len(self.budgets()))]

    def next(self, table: RungTable, *, may_start: bool = True) -> LadderDecision:
        rungs = table.brackets[0].rungs
        caps = self.capacities()
        if table.n_trials < self.n_trials and not table.closed and may_start:
            return LadderDecision(
                action="start", rung=0, budget=rungs[0].budget,
                reason=f"rung 0 has {table.n_trials} of {self.n_trials} trials: start one "
                f"at budget {rungs[0].budget}",
            )
        for k in range(len(rungs) - 2, -1, -1):
            if not self._complete(table, k):
                continue
            ranking = table.ranking(0, k)
            quota = min(caps[k + 1], len(ranking))
            for pos, tid in enumerate(ranking[:quota]):
                if tid not in rungs[k].promoted:
                    return LadderDecision(
                        action="promote", trial_id=tid, rung=k + 1, budget=rungs[k + 1].budget,
                        reason=_promote_reason(tid, pos, len(ranking), quota, self.eta,
                                               rungs[k], rungs[k + 1], k),
                    )
        running = any(r.running for r in rungs)
        return LadderDecision(
            action="wait" if running else "done",
            reason="waiting for the rest of the rung" if running else "every rung is complete",
        )

    def _complete(self, table: RungTable, k: int) -> bool:
        rungs = table.brackets[0].rungs
        if rungs[k].running:
            return False
        if k == 0:
            return table.n_trials >= self.n_trials or table.closed
        before = rungs[k - 1]
        quota = min(self.capacities()[k], len(before.results))
        return self._complete(table, k - 1) and len(before.promoted) >= quota

    def unpromotable(self, table: RungTable, max_trials: int | None = None) -> list[tuple[str, int]]:
        """(trial id, rung) pairs of complete rungs that did not make the cut."""
        rungs = table.brackets[0].rungs
        caps = self.capacities()
        dead = []
        for k in range(len(rungs) - 1):
            if self._complete(table, k):
                dead += [(t, k) for t in table.ranking(0, k)[caps[k + 1]:]]
        return dead
