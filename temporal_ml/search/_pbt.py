"""Population-based training (Jaderberg et al., 2017) as a sweep scheduler, in synchronous rounds.

A population of ``n_trials`` trials trains in rounds of ``perturbation_interval`` steps up to
``max_budget``. When every member has reported a round (its evaluation at the round's budget), the
members are ranked by that value: each of the bottom ``quantile`` *exploits* a member of the top
``quantile`` (it continues from a verified copy of that member's checkpoint, in a run directory of
its own) and *explores* (each mutated parameter is resampled from the space with probability
``resample_probability``, else multiplied by one of ``factors``); every other member continues its
own run with its own parameters. A member that failed in a round (say its loss diverged) ranks
last, so it is replaced by a copy of a good one.

Rounds are synchronous, as in Determined's PBT, where Ray Tune's is asynchronous: a round's
decisions see the whole population at the same step, and they depend on the values and the seed
only, never on which trial finished first. So a sweep gives the same weights at any concurrency,
and a killed worker changes nothing (each round resumes exactly).

Example:
    >>> from temporal_ml.search import Float, SearchSpace
    >>> pbt = PbtScheduler(perturbation_interval=10, max_budget=30)
    >>> pbt.budgets()
    [10, 20, 30]
    >>> ranked = pbt_round({0: 0.9, 1: 0.5, 2: 0.7, 3: 0.1}, "maximize", seed=0, round=0)
    >>> [(d.index, d.donor) for d in ranked]
    [(3, 0), (0, None), (2, None), (1, None)]
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from temporal_ml.search._base import Direction
from temporal_ml.search._rungs import Bracket, Rung, RungTable
from temporal_ml.search._space import Categorical, Float, Int, SearchSpace

__all__ = ["PbtScheduler", "PbtDecision", "pbt_round", "explore"]


class PbtScheduler(BaseModel):
    """Population-based training in synchronous rounds (see the module docstring).

    Attributes:
        perturbation_interval: training steps per round; a round's budget is the steps trained
            by its end (the last round ends at ``max_budget``).
        max_budget: the steps every member trains in all (the LR schedule spans it).
        quantile: the fraction of the population that exploits (the bottom) and that is copied
            (the top); at least one member each once the population has two.
        resample_probability: the chance that exploring resamples a parameter from the space
            instead of perturbing it.
        factors: what a perturbed number is multiplied by (one chosen at random); an integer moves
            by at least one, a categorical to a neighbouring choice.
        mutate: the space's parameters to explore (``None``: all but fixed ones).

    Example:
        >>> PbtScheduler(perturbation_interval=25, max_budget=100, quantile=0.25).budgets()
        [25, 50, 75, 100]
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    kind: Literal["pbt"] = "pbt"
    perturbation_interval: int = Field(ge=1)
    max_budget: int = Field(ge=1)
    quantile: float = Field(default=0.25, gt=0, le=0.5)
    resample_probability: float = Field(default=0.25, ge=0, le=1)
    factors: tuple[float, float] = (0.8, 1.2)
    mutate: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> PbtScheduler:
        if self.perturbation_interval >= self.max_budget:
            raise ValueError(f"perturbation_interval ({self.perturbation_interval}) must be less than "
                             f"max_budget ({self.max_budget}): PBT needs at least two rounds")
        if not all(math.isfinite(f) and f > 0 for f in self.factors):
            raise ValueError(f"factors must be positive numbers (got {list(self.factors)})")
        return self

    def budgets(self) -> list[int]:
        """The steps trained by the end of each round."""
        budgets = list(range(self.perturbation_interval, self.max_budget, self.perturbation_interval))
        return [*budgets, self.max_budget]

    def new_table(self, direction: Direction = "minimize") -> RungTable:
        """The rounds as one bracket of rungs (what the sweep's rung index reads)."""
        return RungTable(direction=direction, brackets=[Bracket(rungs=[Rung(budget=b) for b in self.budgets()])])

    def problem_with(self, space: SearchSpace) -> str | None:
        """What is wrong with exploring ``space`` (``mutate`` names a parameter it lacks), or ``None``."""
        unknown = sorted(set(self.mutate or ()) - set(space.names))
        if unknown:
            return f"mutate names {unknown}, which the search space does not have (it has {space.names})"
        return None


@dataclass(frozen=True)
class PbtDecision:
    """What one member does after a round: continue (``donor`` is ``None``) or exploit ``donor``.
    ``rank`` is 1 for the best; ``value`` its value at the round (NaN when it failed)."""

    index: int
    rank: int
    size: int
    value: float
    donor: int | None = None


def pbt_round(values: Mapping[int, float], direction: Direction, *, seed: int, round: int,
              quantile: float = 0.25) -> list[PbtDecision]:
    """The decisions of a round from every member's value there (NaN: it failed), exploits first,
    then the members that continue, best first (a failed member in the top quantile is no donor). Deterministic: ties rank by trial index, and the
    donor of each exploit is drawn from the top quantile by a generator seeded with ``seed``, the
    round and the member."""
    sign = 1.0 if direction == "minimize" else -1.0
    ranking = sorted(values, key=lambda i: (math.isnan(values[i]), 0.0 if math.isnan(values[i]) else sign * values[i], i))
    size = len(ranking)
    cut = max(1, int(size * quantile)) if size >= 2 else 0
    top = [i for i in ranking[:cut] if not math.isnan(values[i])]  # a failed member is never copied
    bottom = set(ranking[size - cut:]) if top else set()
    exploits, continues = [], []
    for rank, index in enumerate(ranking, start=1):
        if index in bottom:
            donor = top[_rng(seed, round, index, "donor").randrange(len(top))]
            exploits.append(PbtDecision(index=index, rank=rank, size=size, value=values[index], donor=donor))
        else:
            continues.append(PbtDecision(index=index, rank=rank, size=size, value=values[index]))
    return exploits + continues


def explore(scheduler: PbtScheduler, space: SearchSpace, params: Mapping[str, JsonValue], *, seed: int,
            round: int, index: int) -> tuple[dict[str, JsonValue], list[str]]:
    """The donor's ``params`` explored for member ``index`` after ``round``, and one line per
    parameter that changed (``lr 0.01 -> 0.012 (x1.2)``, ``wd 0.1 -> 0.03 (resampled)``)."""
    rng = _rng(seed, round, index, "explore")
    out, notes = dict(params), []
    names = scheduler.mutate if scheduler.mutate is not None else space.names
    for name in names:
        param = space.params[name]
        if not isinstance(param, (Float, Int, Categorical)) or name not in params:
            continue
        old = params[name]
        if rng.random() < scheduler.resample_probability:
            new, how = _resample(param, rng), "resampled"
        else:
            new, how = _perturb(param, old, rng, scheduler.factors)
        out[name] = new
        if new != old:
            notes.append(f"{name} {_show(old)} -> {_show(new)} ({how})")
    return out, notes


def _resample(param: Float | Int | Categorical, rng: random.Random) -> JsonValue:
    if isinstance(param, Categorical):
        return param.choices[rng.randrange(len(param.choices))]
    return param.from_unit(rng.random())


def _perturb(param: Float | Int | Categorical, value: Any, rng: random.Random,
             factors: tuple[float, float]) -> tuple[JsonValue, str]:
    if isinstance(param, Categorical):  # a neighbouring choice
        i = param.index(value)
        step = rng.choice((-1, 1))
        j = min(max(i + step, 0), len(param.choices) - 1)
        return param.choices[j], "neighbour"
    factor = factors[rng.randrange(len(factors))]
    raw = min(max(float(value) * factor, param.low), param.high)
    new = param.from_unit(param.to_unit(raw))  # on the parameter's grid (integers, steps)
    if isinstance(param, Int) and new == value:  # an integer moves by at least one
        new = min(max(int(value) + (1 if factor > 1 else -1), param.low), param.high)
    return new, f"x{factor:g}"


def _rng(seed: int, round: int, index: int, what: str) -> random.Random:
    return random.Random(f"pbt:{what}:{seed}:{round}:{index}")  # str seeds hash the same in every process


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)
