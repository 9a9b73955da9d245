"""Ask/tell search without Temporal: run our searchers in any script or training loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

from pydantic import JsonValue

from temporal_ml.search._base import Direction, Searcher, TrialRecord, as_directions
from temporal_ml.search._nsga2 import NSGAIISearcher
from temporal_ml.search._pareto import pareto_front
from temporal_ml.search._space import SearchSpace
from temporal_ml.search._tpe import TPESearcher

__all__ = ["Study"]


class Study:
    """A search driven by hand: ``ask`` for a point, train, ``tell`` the result.

    Every suggestion is a pure function of (space, searcher, seed, trials so far), so a study
    rebuilt from its trials (``Study(..., trials=old.trials)``) continues exactly as the original.

    A study has one objective (``direction``) or several (``directions``, e.g. accuracy to maximize
    and latency to minimize): each trial is then told a list of values, one per direction, and
    :attr:`best_trials` is the Pareto front. A multi-objective study needs a searcher that handles
    several objectives (``NSGAIISearcher``, its default; ``RandomSearcher``, ``GridSearcher``).
    ``directions`` of one direction is the same as ``direction``.

    Example:
        >>> from temporal_ml.search import Float, Int, Categorical, SearchSpace, Study, TPESearcher
        >>> space = SearchSpace({"x": Float(-5, 10), "lr": Float(1e-5, 1e-2, log=True),
        ...                      "layers": Int(1, 6), "act": Categorical(["relu", "gelu"])})
        >>> study = Study(space, searcher=TPESearcher(), seed=0, direction="minimize")
        >>> for _ in range(20):
        ...     trial = study.ask()
        ...     _ = study.tell(trial, (trial.params["x"] - 2) ** 2 + trial.params["layers"])
        >>> study.best_trial.value < 5
        True

    Example (two objectives):
        >>> study = Study(SearchSpace({"x": Float(0, 1)}), directions=["minimize", "minimize"])
        >>> front = study.optimize(lambda p: [p["x"], (1 - p["x"]) ** 2], n_trials=30)
        >>> [t.index for t in front] == [t.index for t in study.best_trials]
        True
    """

    def __init__(
        self,
        space: SearchSpace,
        searcher: Searcher | None = None,
        *,
        seed: int = 0,
        direction: Direction | None = None,
        directions: Sequence[Direction] | None = None,
        trials: list[TrialRecord] | None = None,
    ) -> None:
        if direction is not None and directions is not None:
            raise ValueError("give a study direction (one objective) or directions, not both")
        if direction is not None and direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize' (got {direction!r})")
        if isinstance(directions, str):
            raise ValueError(f"directions is a list, one per objective (got {directions!r}); "
                             "for one objective use direction=")
        dirs = as_directions(directions if directions is not None else (direction or "minimize"))
        self.directions: list[Direction] = list(dirs)
        if searcher is None:
            searcher = NSGAIISearcher() if self.multi_objective else TPESearcher()
        if self.multi_objective and not type(searcher).multi_objective:
            raise ValueError(f"the {searcher.kind} searcher handles one objective; a study with "
                             f"{len(dirs)} directions needs one that handles several (nsga2, "
                             "random, grid)")
        self.space = space
        self.searcher = searcher
        self.searcher.check_space(space)
        self.seed = seed
        self._trials: list[TrialRecord] = list(trials or [])
        self._queue: list[dict[str, JsonValue]] = []

    @property
    def multi_objective(self) -> bool:
        """Whether the study has more than one direction."""
        return len(self.directions) > 1

    @property
    def direction(self) -> Direction:
        """The direction of a single-objective study (``ValueError`` in a multi-objective one)."""
        if self.multi_objective:
            raise ValueError("a multi-objective study has directions, not a direction")
        return self.directions[0]

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial so far, in order (pending, complete and failed)."""
        return list(self._trials)

    def enqueue(self, params: Mapping[str, Any]) -> None:
        """Make the next ``ask`` return ``params`` (checked against the space) instead of a suggestion."""
        problem = self.space.problem_with(params)
        if problem:
            raise ValueError(f"cannot enqueue {dict(params)}: {problem}")
        self._queue.append(dict(params))

    def ask(self) -> TrialRecord:
        """A new pending trial with the searcher's next point (raises ``SearchExhausted``)."""
        index = len(self._trials)
        if self._queue:
            params = self._queue.pop(0)
        else:
            # a searcher with multi_objective = True takes a tuple of directions (checked above)
            suggest: Callable[..., dict[str, JsonValue]] = self.searcher.suggest
            params = suggest(
                self.space, self._trials, seed=self.seed, index=index,
                direction=tuple(self.directions) if self.multi_objective else self.directions[0],
            )
        trial = TrialRecord(index=index, params=params, state="pending")
        self._trials.append(trial)
        return trial

    def tell(
        self,
        trial: TrialRecord | int,
        value: float | Sequence[float] | None = None,
        *,
        failed: bool = False,
    ) -> TrialRecord:
        """Record a pending trial's objective ``value``, or ``failed=True``.

        In a multi-objective study ``value`` is a list of floats, one per direction. A NaN or
        infinite value (any of them, with several objectives) is recorded as a failure: the trial
        is on no Pareto front and never the best.

        Raises:
            ValueError: one line: an unknown or already told trial, neither or both of a value and
                ``failed``, a list in a single-objective study, or the wrong number of values.
        """
        index = trial if isinstance(trial, int) else trial.index
        if not 0 <= index < len(self._trials):
            raise ValueError(f"no trial {index} in this study")
        if self._trials[index].state != "pending":
            raise ValueError(f"trial {index} was already told ({self._trials[index].state})")
        if failed == (value is not None):
            raise ValueError("tell a trial either a value or failed=True")
        single: float | None = None
        values: tuple[float, ...] | None = None
        if value is not None:
            if self.multi_objective:
                values = self._values(index, value)
                if not all(math.isfinite(v) for v in values):
                    failed, values = True, None
            else:
                if isinstance(value, (str, bytes)) or not isinstance(value, (int, float)):
                    raise ValueError(f"trial {index}: a single-objective study is told one number "
                                     f"(got {type(value).__name__}); for several objectives give "
                                     "the study directions=[...]")
                single = float(value)
                if not math.isfinite(single):
                    failed, single = True, None
        record = TrialRecord(
            index=index,
            params=self._trials[index].params,
            state="failed" if failed else "complete",
            value=single,
            values=values,
        )
        self._trials[index] = record
        return record

    def _values(self, index: int, value: Any) -> tuple[float, ...]:
        want = f"{len(self.directions)} values, one per direction ({', '.join(self.directions)})"
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ValueError(f"trial {index}: a multi-objective study is told {want}, "
                             f"not {type(value).__name__}")
        if len(value) != len(self.directions):
            raise ValueError(f"trial {index}: expected {want}, got {len(value)}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"trial {index}: the values must be numbers (got {list(value)!r})")
        return tuple(float(v) for v in value)

    @overload
    def optimize(
        self,
        objective: Callable[[dict[str, JsonValue]], float],
        n_trials: int,
        *,
        catch: tuple[type[BaseException], ...] = (),
    ) -> TrialRecord: ...

    @overload
    def optimize(
        self,
        objective: Callable[[dict[str, JsonValue]], Sequence[float]],
        n_trials: int,
        *,
        catch: tuple[type[BaseException], ...] = (),
    ) -> list[TrialRecord]: ...

    def optimize(
        self,
        objective: Callable[[dict[str, JsonValue]], Any],
        n_trials: int,
        *,
        catch: tuple[type[BaseException], ...] = (),
    ) -> TrialRecord | list[TrialRecord]:
        """Run ``n_trials`` trials of ``objective(params)`` one after another.

        Returns the best trial, or with several directions the Pareto front (:attr:`best_trials`).
        Exceptions listed in ``catch`` mark the trial failed and the search goes on; others are
        re-raised after the trial is recorded as failed.
        """
        for _ in range(n_trials):
            trial = self.ask()
            try:
                value = objective(dict(trial.params))
            except catch:
                self.tell(trial, failed=True)
                continue
            except BaseException:
                self.tell(trial, failed=True)
                raise
            self.tell(trial, value)
        return self.best_trials if self.multi_objective else self.best_trial

    @property
    def best_trials(self) -> list[TrialRecord]:
        """The Pareto front: the complete trials no other complete trial dominates, in order.

        A trial dominates another when it is no worse in every objective and better in one.
        Failed, pending and non-finite trials are left out. With one objective: the trials with
        the best value. Empty before any trial completes.
        """
        return pareto_front(self._trials, self.directions)

    @property
    def best_trial(self) -> TrialRecord:
        """The complete trial with the best value (the earliest on ties); single objective only."""
        if self.multi_objective:
            raise ValueError("a multi-objective study has no single best trial; see best_trials "
                             "(the Pareto front)")
        done = [t for t in self._trials if t.ok]
        if not done:
            raise ValueError("no trial has completed yet")
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(done, key=lambda t: (sign * float(t.value or 0.0), t.index))

    @property
    def best_params(self) -> dict[str, JsonValue]:
        return dict(self.best_trial.params)

    @property
    def best_value(self) -> float:
        return float(self.best_trial.value or 0.0)
