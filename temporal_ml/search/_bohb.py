"""BOHB: Bayesian optimization over Hyperband budgets (Falkner, Klein & Hutter, ICML 2018).

A Hyperband scheduler decides which trials go on to larger budgets; this searcher decides where
new trials start. Each suggestion:

1. with probability ``random_fraction`` (1/3, as in the paper) is drawn uniformly from the space;
2. otherwise takes the largest budget with at least ``min_points_in_model`` finite results
   (default ``d + 1`` for ``d`` parameters), ranks the trials *at that budget only*, fits a Parzen
   density to the best ``top_fraction`` (15%) and one to the rest, draws ``n_candidates`` (64)
   points from the good density with its bandwidths widened by ``bandwidth_factor`` (3), and
   returns the one with the largest density ratio ``l(x) / g(x)``;
3. falls back to a uniform draw while no budget has enough results.

Where it differs from the paper, on purpose: the densities are our TPE's Parzen estimators (with a
prior kernel, so neither group needs ``d + 1`` points and the two groups do not overlap); running
trials are ignored, as the paper's; and the brackets are asynchronous (``AshaScheduler(brackets=)``
sends new trials round-robin to its brackets) rather than BOHB's synchronous Hyperband iterations.

``TPESearcher`` with a scheduler is a different search: it sees each trial's ``value``, the value at
the highest rung the trial reached, so trials stopped at the first rung and trials trained to the
full budget share one good/bad split. The docs call it "ASHA + TPE on highest-rung values".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, JsonValue

from temporal_ml.search._base import Direction, Searcher, TrialRecord, trial_rng
from temporal_ml.search._parzen import ParzenEstimator
from temporal_ml.search._schedulers import AshaScheduler, ladder_budgets
from temporal_ml.search._space import SearchSpace
from temporal_ml.search._tpe import _argmax_ratio, _Codec

__all__ = ["BOHBSearcher", "bohb", "FULL_BUDGET"]

FULL_BUDGET = math.inf
"""The level of a complete trial that carries no ``rung_values`` (a sweep without a scheduler, a
``Study``): its ``value`` counts as a result above every rung."""


class BOHBSearcher(Searcher):
    """BOHB's model-based sampler: a density per budget, fitted on the largest budget with enough
    results (use it with a Hyperband scheduler: :func:`bohb` builds the pair).

    It reads ``TrialRecord.rung_values`` (a sweep with a scheduler fills them); a complete trial
    without them counts as one result at the full budget, so in a sweep without a scheduler this is
    TPE with BOHB's settings and random fraction.

    Attributes:
        min_points_in_model: results a budget needs before its density is fitted; ``None`` (the
            paper's default): the number of parameters plus one.
        top_fraction: fraction of that budget's results in the good group (at least one).
        n_candidates: points drawn from the widened good density per suggestion.
        random_fraction: probability that a suggestion is a uniform draw (keeps exploring).
        bandwidth_factor: candidates are drawn with the good density's bandwidths times this.
        prior_weight: weight of each density's broad prior kernel (each observation weighs 1).

    Example:
        >>> from temporal_ml.search import Float, SearchSpace, TrialRecord
        >>> space = SearchSpace({"x": Float(0, 1)})
        >>> history = [TrialRecord(index=i, params={"x": i / 10}, value=(i / 10 - 0.3) ** 2,
        ...                        rung_values={0: (i / 10 - 0.3) ** 2}) for i in range(10)]
        >>> BOHBSearcher().model_level(space, history)
        0
    """

    kind: Literal["bohb"] = "bohb"
    min_points_in_model: int | None = Field(default=None, ge=1)
    top_fraction: float = Field(default=0.15, gt=0, lt=1)
    n_candidates: int = Field(default=64, ge=1)
    random_fraction: float = Field(default=1 / 3, ge=0, le=1)
    bandwidth_factor: float = Field(default=3.0, ge=1)
    prior_weight: float = Field(default=1.0, gt=0)

    def n_min(self, space: SearchSpace) -> int:
        """Results a budget needs for a model: ``min_points_in_model``, else ``d + 1``."""
        if self.min_points_in_model is not None:
            return self.min_points_in_model
        return sum(p.kind != "fixed" for p in space.params.values()) + 1

    def results_by_level(
        self, space: SearchSpace, history: Sequence[TrialRecord]
    ) -> dict[float, list[tuple[TrialRecord, float]]]:
        """Every trial's result at each level it reached (:data:`FULL_BUDGET` for a complete trial
        without ``rung_values``), non-finite ones included; trials of another space are skipped."""
        names = set(space.params)
        out: dict[float, list[tuple[TrialRecord, float]]] = {}
        for t in history:
            if t.params.keys() != names:
                continue
            if t.rung_values:
                for level, value in t.rung_values.items():
                    out.setdefault(float(level), []).append((t, value))
            elif t.state == "complete" and t.value is not None:
                out.setdefault(FULL_BUDGET, []).append((t, t.value))
        return out

    def model_level(self, space: SearchSpace, history: Sequence[TrialRecord]) -> float | None:
        """The largest level with at least :meth:`n_min` finite results (``None``: no model yet).

        An integer level comes back as an ``int``; :data:`FULL_BUDGET` as ``inf``.
        """
        return _model_level(self.results_by_level(space, history), self.n_min(space))

    def suggest(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        *,
        seed: int,
        index: int,
        direction: Direction = "minimize",
    ) -> dict[str, JsonValue]:
        uniform = trial_rng(seed, index, "bohb-random")
        if trial_rng(seed, index, "bohb-coin").random() < self.random_fraction:
            return self.random_point(space, uniform)
        by_level = self.results_by_level(space, history)
        level = _model_level(by_level, self.n_min(space))
        if level is None:
            return self.random_point(space, uniform)
        results = by_level[float(level)]
        sign = 1.0 if direction == "minimize" else -1.0
        finite = sorted(((t, v) for t, v in results if math.isfinite(v)),
                        key=lambda tv: (sign * tv[1], tv[0].index))
        n_good = max(1, math.ceil(self.top_fraction * len(finite)))
        good = [t for t, _ in finite[:n_good]]
        bad = [t for t, _ in finite[n_good:]] + [t for t, v in results if not math.isfinite(v)]
        codec = _Codec(space)
        settings = {"n_numeric": codec.n_numeric, "n_choices": codec.n_choices,
                    "prior_weight": self.prior_weight}
        below = ParzenEstimator(codec.encode_all(good), **settings)  # type: ignore[arg-type]
        above = ParzenEstimator(codec.encode_all(bad), **settings)  # type: ignore[arg-type]
        wide = copy.copy(below)  # sampling reads the bandwidths only: widen a shallow copy's
        wide.sigmas = [[min(1.0, s * self.bandwidth_factor) for s in col] for col in below.sigmas]
        rng = trial_rng(seed, index, "bohb")
        candidates = [
            (tuple(snap(u) for snap, u in zip(codec.snappers, nums, strict=True)), cats)
            for nums, cats in wide.sample(rng, self.n_candidates)
        ]
        best = candidates[_argmax_ratio(below.log_pdf(candidates), above, candidates)]
        return codec.decode(best)


def _model_level(by_level: dict[float, list[tuple[TrialRecord, float]]], need: int) -> float | None:
    levels = [level for level, results in by_level.items()
              if sum(math.isfinite(v) for _, v in results) >= need]
    if not levels:
        return None
    top = max(levels)
    return int(top) if math.isfinite(top) else top


def bohb(
    min_budget: int, max_budget: int, eta: int = 3, **settings: object
) -> tuple[BOHBSearcher, AshaScheduler]:
    """BOHB as a searcher + scheduler pair: :class:`BOHBSearcher` and asynchronous Hyperband with
    every bracket the budgets allow (rungs ``min_budget * eta**k`` up to ``max_budget``).

    Example:
        >>> searcher, scheduler = bohb(1, 81)
        >>> scheduler.budgets(), scheduler.brackets
        ([1, 3, 9, 27, 81], 4)
    """
    brackets = len(ladder_budgets(min_budget, max_budget, eta)) - 1
    scheduler = AshaScheduler(min_budget=min_budget, max_budget=max_budget, eta=eta,
                              brackets=brackets)
    return BOHBSearcher.model_validate(settings), scheduler
