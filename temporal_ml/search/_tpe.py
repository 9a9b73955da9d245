"""Tree-structured Parzen Estimator search (Bergstra et al., NeurIPS 2011).

The completed trials are split into a *good* group (the best ``gamma`` fraction, at most
``max_good``) and a *bad* group (the rest, plus failed trials and, as a constant liar, the trials
still running). A Parzen estimator is fitted to each group, ``n_candidates`` points are drawn from
the good one, and the candidate with the largest density ratio ``l(x) / g(x)`` is suggested.

What differs from a mutable sampler object: nothing is cached between calls. The estimators are
rebuilt from the history each time, and the random draws come from a generator seeded by
``(seed, index)``, so the suggestion is a pure function of its inputs (replay-safe).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field, JsonValue

from temporal_ml.search._base import Direction, Searcher, TrialRecord, trial_rng
from temporal_ml.search._parzen import ParzenEstimator, Point
from temporal_ml.search._space import Categorical, Float, Int, SearchSpace, canonical_json

__all__ = ["TPESearcher"]


class TPESearcher(Searcher):
    """TPE with joint (multivariate) kernels, a prior, constant-liar pending trials and failures.

    Attributes:
        n_startup: completed trials before TPE takes over from random search.
        n_candidates: points drawn from the good density per suggestion.
        gamma: fraction of completed trials in the good group (at least one, at most ``max_good``).
        max_good: cap on the good group's size.
        prior_weight: weight of the broad prior kernel (each observation weighs 1).
        multivariate: joint kernels over all parameters (captures interactions); ``False`` scores
            each parameter on its own (the original, independent TPE).
        constant_liar: count running trials as bad, so parallel suggestions spread out.
        failed_as_bad: count failed trials as bad (steer away from where runs crash).
        consider_endpoints: let the range ends bound the bandwidth of the outermost observations.
        sharpen: draw candidates from a copy of the good density whose smallest bandwidth shrinks
            with the whole history (``1 / min(100, n + 1)`` for ``n`` trials) rather than with the
            good group's size, so a long search proposes points finely around its best ones.
            Candidates are still *scored* with the ordinary densities: scoring with the sharp one
            locks onto a local optimum on multimodal problems (Levy). Continuous parameters only.

    Example:
        >>> from temporal_ml.search import Float, SearchSpace, TrialRecord
        >>> space = SearchSpace({"x": Float(-5, 5)})
        >>> history = [TrialRecord(index=i, params={"x": i - 5.0}, value=(i - 5.0) ** 2)
        ...            for i in range(11)]
        >>> point = TPESearcher().suggest(space, history, seed=0, index=11)
        >>> -5 <= point["x"] <= 5
        True
    """

    kind: Literal["tpe"] = "tpe"
    n_startup: int = Field(default=10, ge=1)
    n_candidates: int = Field(default=48, ge=1)
    gamma: float = Field(default=0.1, gt=0, lt=1)
    max_good: int = Field(default=25, ge=1)
    prior_weight: float = Field(default=1.0, gt=0)
    multivariate: bool = True
    constant_liar: bool = True
    failed_as_bad: bool = True
    consider_endpoints: bool = False
    sharpen: bool = True

    def suggest(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        *,
        seed: int,
        index: int,
        direction: Direction = "minimize",
    ) -> dict[str, JsonValue]:
        names = set(space.params)
        fits = [t for t in history if t.params.keys() == names]  # skip trials of another space
        done = [t for t in fits if t.ok]
        if len(done) < self.n_startup:
            return self.random_point(space, trial_rng(seed, index, "tpe-startup"))
        sign = 1.0 if direction == "minimize" else -1.0
        ranked = sorted(done, key=lambda t: (sign * float(t.value or 0.0), t.index))
        n_good = max(1, min(math.ceil(self.gamma * len(ranked)), self.max_good))
        good, bad = ranked[:n_good], ranked[n_good:]
        if self.failed_as_bad:
            bad += [t for t in fits if t.state == "failed" or (t.state == "complete" and not t.ok)]
        if self.constant_liar:
            bad += [t for t in fits if t.state == "pending"]
        codec = _Codec(space)
        rng = trial_rng(seed, index, "tpe")
        good_points = codec.encode_all(good)
        bad_points = codec.encode_all(bad)
        if self.multivariate or codec.n_dims <= 1:
            best = self._best(
                rng, good_points, bad_points, codec.snappers, codec.n_choices, codec.cells
            )
        else:  # independent TPE: each dimension scored on its own
            nums: list[float] = []
            cats: list[int] = []
            for d in range(codec.n_numeric):
                pick = self._best(
                    rng,
                    [((p[0][d],), ()) for p in good_points],
                    [((p[0][d],), ()) for p in bad_points],
                    [codec.snappers[d]],
                    [],
                    [codec.cells[d]],
                )
                nums.append(pick[0][0])
            for d, k in enumerate(codec.n_choices):
                pick = self._best(
                    rng,
                    [((), (p[1][d],)) for p in good_points],
                    [((), (p[1][d],)) for p in bad_points],
                    [],
                    [k],
                    [],
                )
                cats.append(pick[1][0])
            best = (tuple(nums), tuple(cats))
        return codec.decode(best)

    def _best(
        self,
        rng: Any,
        good: list[Point],
        bad: list[Point],
        snappers: list[Callable[[float], float]],
        n_choices: list[int],
        cells: list[float],
    ) -> Point:
        n_numeric = len(snappers)
        settings: dict[str, Any] = {
            "n_numeric": n_numeric, "n_choices": n_choices,
            "prior_weight": self.prior_weight, "endpoints": self.consider_endpoints,
        }
        below = ParzenEstimator(good, **settings)
        above = ParzenEstimator(bad, **settings)
        proposals = below
        if self.sharpen:  # proposals resolve finer as the whole history grows (continuous only)
            floor = 1.0 / min(100.0, 1.0 + len(good) + len(bad))
            sharp: list[float | None] = [None if cell else floor for cell in cells]
            proposals = ParzenEstimator(good, min_sigma=sharp, **settings)
        # score each candidate where it will really land (integers, steps)
        candidates = [
            (tuple(snap(u) for snap, u in zip(snappers, nums, strict=True)), cats)
            for nums, cats in proposals.sample(rng, self.n_candidates)
        ]
        return candidates[_argmax_ratio(below.log_pdf(candidates), above, candidates)]


class _Codec:
    """Points of a space <-> unit-cube coordinates (snapped to what the space can hold)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.numeric = [n for n, p in space.params.items() if p.kind in ("float", "int")]
        self.categorical = [n for n, p in space.params.items() if p.kind == "categorical"]
        self.n_numeric = len(self.numeric)
        self.n_choices = [
            len(p.choices) for p in space.params.values() if isinstance(p, Categorical)
        ]
        self.n_dims = self.n_numeric + len(self.categorical)
        params: Any = space.params
        # width of one value in unit coordinates (0 for continuous); discrete dimensions keep the
        # group-sized bandwidth floor, or TPE could lock onto one integer and never leave it
        self.cells = [_cell(params[n]) for n in self.numeric]
        self._to_unit = [(n, _fast_to_unit(params[n])) for n in self.numeric]
        self._bounds = [_bounds(params[n]) for n in self.numeric]
        self._choice_index = {
            n: {canonical_json(c): i for i, c in enumerate(params[n].choices)} for n in self.categorical
        }
        self.snappers = [_snapper(params[n]) for n in self.numeric]

    def encode(self, point: dict[str, Any]) -> Point:
        """Unit coordinates of a point (``ValueError`` if a choice is not in the space)."""
        nums = tuple(to_unit(point[n]) for n, to_unit in self._to_unit)
        cats = tuple(self._choice_index[n].get(canonical_json(point[n]), -1) for n in self.categorical)
        if -1 in cats:
            raise ValueError("a categorical value is not among the space's choices")
        return nums, cats

    def encode_all(self, trials: Sequence[TrialRecord]) -> list[Point]:
        """Unit coordinates of each trial that fits the space (others are skipped).

        Column by column: encoding a long history is a hot path of every suggestion.
        """
        fitting = [t.params for t in trials]
        try:
            return self._encode_columns(fitting)
        except (TypeError, ValueError, KeyError):  # some trial does not fit: filter, then encode
            return self._encode_columns([p for p in fitting if self._fits(p)])

    def _encode_columns(self, fitting: list[dict[str, Any]]) -> list[Point]:
        columns: list[list[float]] = []
        for name, (low, span, log) in zip(self.numeric, self._bounds, strict=True):
            raw = [p[name] for p in fitting]
            if log:
                raw = [math.log(v) for v in raw]
            columns.append([
                0.0 if u < 0.0 else (1.0 if u > 1.0 else u)
                for u in [(v - low) / span for v in raw]
            ])
        choice_columns = [
            [self._choice_index[name][canonical_json(p[name])] for p in fitting]
            for name in self.categorical
        ]
        nums = list(zip(*columns, strict=True)) if columns else [()] * len(fitting)
        cats = list(zip(*choice_columns, strict=True)) if choice_columns else [()] * len(fitting)
        return list(zip(nums, cats, strict=True))

    def _fits(self, point: dict[str, Any]) -> bool:
        for name, (_, _, log) in zip(self.numeric, self._bounds, strict=True):
            value = point[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return False  # (a bool would encode as 0/1 silently)
            if log and value <= 0:
                return False
        return all(canonical_json(point[n]) in self._choice_index[n] for n in self.categorical)

    def decode(self, unit: Point) -> dict[str, JsonValue]:
        params: Any = self.space.params
        values: dict[str, Any] = {}
        for n, u in zip(self.numeric, unit[0], strict=True):
            values[n] = params[n].from_unit(u)
        for n, c in zip(self.categorical, unit[1], strict=True):
            values[n] = params[n].choices[c]
        return {
            name: values[name] if name in values else param.value  # type: ignore[union-attr]
            for name, param in self.space.params.items()
        }


def _bounds(param: Float | Int) -> tuple[float, float, bool]:
    """(low, span, log) of the unit mapping: ``u = (x - low) / span`` with ``x = log(v)`` if log."""
    low, high = param._span()
    return low, high - low, param.log


def _fast_to_unit(param: Float | Int) -> Callable[[float], float]:
    """``param.to_unit`` with its bounds bound once (encoding a long history is a hot path)."""
    low, high = param._span()
    span = high - low
    if param.log:
        log = math.log
        return lambda v: min(1.0, max(0.0, (log(v) - low) / span))
    return lambda v: min(1.0, max(0.0, (v - low) / span))


def _cell(param: Float | Int) -> float:
    values = param.grid()
    return 0.0 if values is None else 1.0 / len(values)


def _snapper(param: Float | Int) -> Callable[[float], float]:
    """Unit coordinate -> the unit coordinate of the value it decodes to (integers, steps)."""
    return lambda u: param.to_unit(param.from_unit(u))


def _argmax_ratio(log_l: list[float], above: ParzenEstimator, candidates: list[Point]) -> int:
    """Index of the candidate with the largest ``log l - log g`` (the first one on ties).

    Branch and bound, exact: ``log g`` is at least its prior kernel's term, so ``log l`` minus that
    term bounds a candidate's score from above. Candidates are scored in order of that bound until
    the bound falls below the best score found. Far from every bad observation ``g`` is about its
    prior term, so most candidates never need the expensive ``g``.
    """
    bounds = [lo - above.log_prior_term(c) for lo, c in zip(log_l, candidates, strict=True)]
    best, best_score = -1, -math.inf
    for i in sorted(range(len(candidates)), key=lambda i: (-bounds[i], i)):
        if best >= 0 and (bounds[i] < best_score or (bounds[i] == best_score and i > best)):
            break
        score = log_l[i] - above.log_pdf([candidates[i]])[0]
        if score > best_score or (score == best_score and i < best):
            best, best_score = i, score
    return best
