"""The searcher contract: a pure function from (space, seed, index, history) to the next point.

Searchers hold only their settings (pydantic, JSON-serializable, so a workflow input can carry
one); everything that changes during a search is in the ``history`` the caller passes in. With all
randomness drawn from :func:`trial_rng` seeded by ``(seed, index)``, the same inputs always give the
same suggestion, which is what lets a Temporal workflow replay a sweep to the same decisions.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from temporal_ml.search._space import SearchSpace

__all__ = [
    "Direction",
    "Directions",
    "TrialState",
    "TrialRecord",
    "Searcher",
    "SearchExhausted",
    "trial_rng",
    "as_directions",
]

Direction = Literal["minimize", "maximize"]
TrialState = Literal["complete", "failed", "pending"]
Directions = Direction | Sequence[Direction]
"""One direction (a single objective) or one per objective (a multi-objective search)."""


def as_directions(direction: Directions) -> tuple[Direction, ...]:
    """``direction`` as a tuple of directions, one per objective (``ValueError`` if one is unknown)."""
    out: tuple[Direction, ...] = (direction,) if isinstance(direction, str) else tuple(direction)
    if not out or any(d not in ("minimize", "maximize") for d in out):
        raise ValueError(f"directions are 'minimize' or 'maximize', at least one (got {direction!r})")
    return out


class SearchExhausted(Exception):
    """The searcher has no new point to suggest (e.g. every grid point has been tried)."""


class TrialRecord(BaseModel):
    """What a searcher knows about one trial.

    Attributes:
        index: the trial's number in its search (0, 1, 2, ...).
        params: the point it was given (space keys to values).
        state: ``complete`` (``value`` is set), ``failed``, or ``pending`` (still running).
        value: the objective, for complete trials of a single-objective search. A non-finite
            value counts as a failure.
        values: the objectives, one per direction, for complete trials of a multi-objective search
            (then ``value`` is ``None``). A non-finite one counts as a failure. Left out of the JSON
            when ``None``, so a single-objective record serializes as it always has.
        rung_values: a trial trained in rungs (a sweep with a scheduler): its objective at each
            rung level it reached, level -> value. Level ``k`` is the ``k``-th budget of the
            scheduler's ladder (``scheduler.budgets()[k]``; rung ``r`` of Hyperband bracket ``b``
            is level ``b + r``), so equal levels mean equal budgets across brackets.
            :class:`BOHBSearcher` reads it; ``value`` stays the value at the highest rung reached.
            A non-finite one counts as a failure at that level. Left out of the JSON when empty.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    index: int = Field(ge=0)
    params: dict[str, JsonValue]
    state: TrialState = "complete"
    value: float | None = None
    values: tuple[float, ...] | None = Field(default=None, exclude_if=lambda v: v is None)
    rung_values: dict[int, float] = Field(default_factory=dict, exclude_if=lambda v: not v)

    @model_validator(mode="after")
    def _value_when_complete(self) -> TrialRecord:
        if self.value is not None and self.values is not None:
            raise ValueError(f"trial {self.index}: give value (one objective) or values, not both")
        if self.values is not None and not self.values:
            raise ValueError(f"trial {self.index}: values needs one value per objective, not none")
        if self.state == "complete" and self.value is None and self.values is None:
            raise ValueError(f"trial {self.index}: a complete trial needs a value")
        return self

    @property
    def ok(self) -> bool:
        """Complete with finite objective value(s)."""
        if self.state != "complete":
            return False
        if self.values is not None:
            return all(math.isfinite(v) for v in self.values)
        return self.value is not None and math.isfinite(self.value)


def trial_rng(seed: int, index: int, salt: str) -> random.Random:
    """A generator seeded by ``(seed, index, salt)`` alone: stable across processes and versions."""
    digest = hashlib.sha256(f"temporal-ml/{salt}/{seed}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class Searcher(BaseModel):
    """Base of every searcher: settings only, no state.

    Subclasses set ``kind`` (the JSON discriminator) and implement :meth:`suggest`.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    kind: str
    #: whether :meth:`suggest` reads the history (a sweep skips reading its results table if not)
    uses_history: ClassVar[bool] = True
    #: whether :meth:`suggest` accepts a tuple of directions (one per objective) as ``direction``
    #: and reads ``TrialRecord.values``: only such searchers may run a multi-objective study
    multi_objective: ClassVar[bool] = False

    def check_space(self, space: SearchSpace) -> None:
        """Raise ``ValueError`` if this searcher cannot search ``space`` (before any trial runs)."""

    def suggest(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        *,
        seed: int,
        index: int,
        direction: Direction = "minimize",
    ) -> dict[str, JsonValue]:
        """The point for trial ``index``, from the trials so far (complete, failed and pending).

        Pure: equal arguments give an equal point. Raises :class:`SearchExhausted` when there is
        no new point to try.
        """
        raise NotImplementedError

    @staticmethod
    def random_point(space: SearchSpace, rng: random.Random) -> dict[str, JsonValue]:
        """A point drawn uniformly (on each parameter's own scale) from ``space``."""
        point: dict[str, Any] = {}
        for name, param in space.params.items():
            if param.kind == "categorical":
                point[name] = param.choices[rng.randrange(len(param.choices))]
            elif param.kind == "fixed":
                point[name] = param.value
            else:
                point[name] = param.from_unit(rng.random())
        return point
