"""Ask/tell search without Temporal: run our searchers in any script or training loop."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import JsonValue

from temporal_ml.search._base import Direction, Searcher, TrialRecord
from temporal_ml.search._space import SearchSpace
from temporal_ml.search._tpe import TPESearcher

__all__ = ["Study"]


class Study:
    """A search driven by hand: ``ask`` for a point, train, ``tell`` the result.

    Every suggestion is a pure function of (space, searcher, seed, trials so far), so a study
    rebuilt from its trials (``Study(..., trials=old.trials)``) continues exactly as the original.

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
    """

    def __init__(
        self,
        space: SearchSpace,
        searcher: Searcher | None = None,
        *,
        seed: int = 0,
        direction: Direction = "minimize",
        trials: list[TrialRecord] | None = None,
    ) -> None:
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction must be 'minimize' or 'maximize' (got {direction!r})")
        self.space = space
        self.searcher = searcher if searcher is not None else TPESearcher()
        self.searcher.check_space(space)
        self.seed = seed
        self.direction: Direction = direction
        self._trials: list[TrialRecord] = list(trials or [])
        self._queue: list[dict[str, JsonValue]] = []

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
            params = self.searcher.suggest(
                self.space, self._trials, seed=self.seed, index=index, direction=self.direction
            )
        trial = TrialRecord(index=index, params=params, state="pending")
        self._trials.append(trial)
        return trial

    def tell(
        self, trial: TrialRecord | int, value: float | None = None, *, failed: bool = False
    ) -> TrialRecord:
        """Record a pending trial's objective ``value``, or ``failed=True``.

        A NaN or infinite value is recorded as a failure.
        """
        index = trial if isinstance(trial, int) else trial.index
        if not 0 <= index < len(self._trials):
            raise ValueError(f"no trial {index} in this study")
        if self._trials[index].state != "pending":
            raise ValueError(f"trial {index} was already told ({self._trials[index].state})")
        if failed == (value is not None):
            raise ValueError("tell a trial either a value or failed=True")
        if value is not None and not math.isfinite(value):
            failed, value = True, None
        record = TrialRecord(
            index=index,
            params=self._trials[index].params,
            state="failed" if failed else "complete",
            value=None if failed else float(value),  # type: ignore[arg-type]
        )
        self._trials[index] = record
        return record

    def optimize(
        self,
        objective: Callable[[dict[str, JsonValue]], float],
        n_trials: int,
        *,
        catch: tuple[type[BaseException], ...] = (),
    ) -> TrialRecord:
        """Run ``n_trials`` trials of ``objective(params)`` one after another; return the best.

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
        return self.best_trial

    @property
    def best_trial(self) -> TrialRecord:
        """The complete trial with the best value (the earliest on ties)."""
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
