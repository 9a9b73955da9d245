"""Parzen estimators over the unit cube: the density model behind :class:`TPESearcher`.

A mixture of one kernel per observation plus a broad prior kernel. Numeric dimensions use normal
kernels truncated to ``[0, 1]`` whose bandwidth is the larger distance to a neighbouring
observation (clipped so it neither collapses nor exceeds the range); categorical dimensions use a
kernel that puts most of its mass on the observed choice. Pure Python, so densities are the same
wherever a workflow replays.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import compress, pairwise

__all__ = ["ParzenEstimator", "Point"]

Point = tuple[tuple[float, ...], tuple[int, ...]]
"""(numeric coordinates in [0, 1], categorical choice indices)."""

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT2 = math.sqrt(2.0)
_SQRT_HALF = math.sqrt(0.5)
_CUT = 50.0  # e**-50 < 2e-22: kernels this far below the prior kernel do not change a density
_WINDOW = 0.15  # kernels reaching at most this far (in the first dimension) are found by bisection
_TAIL = 9.0  # P(|z| > 9) < 1e-18: a kernel this far inside the cube needs no truncation term


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / _SQRT2))


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    exp = math.exp
    return top + math.log(sum([exp(v - top) for v in values]))


def _neighbour_bandwidths(mus: Sequence[float], min_sigma: float, endpoints: bool) -> list[float]:
    """Per observation: the larger gap to its neighbours.

    With ``endpoints`` the range ends count as neighbours; without, the outermost observations use
    their inner gap only (so one observation near an edge does not get a kernel as wide as that
    empty edge).
    """
    order = sorted(range(len(mus)), key=mus.__getitem__)  # stable: ties keep index order
    ends = [0.0, *(mus[i] for i in order), 1.0]
    gaps = [hi - lo for lo, hi in pairwise(ends)]
    if not endpoints and len(mus) >= 2:
        gaps[0], gaps[-1] = gaps[1], gaps[-2]
    sigmas = [0.0] * len(mus)
    for i, (left, right) in zip(order, pairwise(gaps), strict=True):
        gap = left if left > right else right
        sigmas[i] = min_sigma if gap < min_sigma else (1.0 if gap > 1.0 else gap)
    return sigmas


class ParzenEstimator:
    """A kernel mixture fitted to observations in the unit cube (plus a prior kernel).

    Args:
        points: observations as (numeric coords, categorical indices).
        n_choices: number of choices of each categorical dimension.
        n_numeric: number of numeric dimensions.
        prior_weight: weight of the prior kernel (centre 0.5, bandwidth 1; uniform choices);
            each observation weighs 1.
        min_sigma: the smallest bandwidth of each numeric dimension (``None``, the default:
            ``1 / min(100, n + 2)`` for ``n`` observations).
        endpoints: let the range ends count as neighbours when choosing bandwidths.
    """

    def __init__(
        self,
        points: Sequence[Point],
        *,
        n_numeric: int,
        n_choices: Sequence[int],
        prior_weight: float,
        min_sigma: Sequence[float | None] | None = None,
        endpoints: bool = False,
    ) -> None:
        n = len(points)
        weights = [1.0] * n + [prior_weight]
        total = sum(weights)
        self.log_weights = [math.log(w / total) for w in weights]
        self.cum_weights = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self.cum_weights.append(acc)
        default_min = 1.0 / min(100.0, 1.0 + (n + 1))
        floors = [default_min if m is None else m for m in (min_sigma or [None] * n_numeric)]
        self.mus: list[list[float]] = []
        self.sigmas: list[list[float]] = []
        self.scales: list[list[float]] = []  # sqrt(0.5) / sigma: the exponent is -((x - mu) * scale)**2
        base = list(self.log_weights)  # log weight + every dimension's log normalizer, per kernel
        for d in range(n_numeric):
            mus = [p[0][d] for p in points]
            sigmas = _neighbour_bandwidths(mus, floors[d], endpoints) + [1.0]
            mus = mus + [0.5]
            log = math.log
            base = [
                b - log(sigma) - _LOG_SQRT_2PI - (
                    0.0  # the cut-off tails are below double precision
                    if (reach := _TAIL * sigma) < mu < 1.0 - reach
                    else log(max(_normal_cdf((1.0 - mu) / sigma) - _normal_cdf(-mu / sigma), 1e-300))
                )
                for b, mu, sigma in zip(base, mus, sigmas, strict=True)
            ]
            self.mus.append(mus)
            self.sigmas.append(sigmas)
            self.scales.append([_SQRT_HALF / s for s in sigmas])
        # categorical: log P(choice | kernel), laid out [dim][choice] -> list over kernels
        self.cat_probs: list[list[list[float]]] = []
        self.cat_logps: list[list[list[float]]] = []
        for d, k in enumerate(n_choices):
            eps = prior_weight / (n + 1)
            per_choice_p: list[list[float]] = [[] for _ in range(k)]
            for p in points:
                observed = p[1][d]
                norm = 1.0 + eps * k
                for c in range(k):
                    per_choice_p[c].append(((1.0 if c == observed else 0.0) + eps) / norm)
            for c in range(k):
                per_choice_p[c].append(1.0 / k)
            self.cat_probs.append(per_choice_p)
            self.cat_logps.append([[math.log(q) for q in col] for col in per_choice_p])
        self.base = base
        self._index_first_dimension(n_choices)

    def _index_first_dimension(self, n_choices: Sequence[int]) -> None:
        """Sort narrow kernels by their first coordinate, so a point visits only nearby ones.

        Whatever the point, its log density is at least the prior kernel's term, which is at least
        ``floor`` below (the prior's base, uniform choices, at most ``1/8`` per dimension). A
        kernel whose first coordinate alone puts it ``_CUT`` below that cannot matter, which
        bounds its reach in the first dimension to ``radius``; kernels that reach at most
        ``_WINDOW`` are looked up by bisection, the (few) wider ones are always visited.
        """
        self._window: tuple[list[float], list[int], list[int]] | None = None
        if not self.mus or len(self.base) < 64:
            return
        prior = len(self.base) - 1
        floor = (
            self.base[prior] - sum(math.log(k) for k in n_choices) - len(self.mus) / 8 - _CUT
        )
        narrow: list[int] = []
        wide: list[int] = []
        for j, (b, h) in enumerate(zip(self.base, self.scales[0], strict=True)):
            radius = math.sqrt(max(b - floor, 0.0)) / h
            (narrow if radius <= _WINDOW and j != prior else wide).append(j)
        narrow.sort(key=lambda j: (self.mus[0][j], j))
        self._window = ([self.mus[0][j] for j in narrow], narrow, wide)

    def _nearby(self, x: float) -> list[int] | None:
        """Kernels that can matter for a point whose first coordinate is ``x`` (``None``: all)."""
        if self._window is None:
            return None
        keys, narrow, wide = self._window
        lo, hi = bisect_left(keys, x - _WINDOW), bisect_right(keys, x + _WINDOW)
        return wide + narrow[lo:hi]

    def sample(self, rng: random.Random, count: int) -> list[Point]:
        """``count`` points drawn from the mixture (kernel by weight, then each dimension)."""
        out: list[Point] = []
        for _ in range(count):
            j = min(_bisect(self.cum_weights, rng.random()), len(self.cum_weights) - 1)
            nums = tuple(
                _truncated_normal(rng, self.mus[d][j], self.sigmas[d][j])
                for d in range(len(self.mus))
            )
            cats = []
            for per_choice in self.cat_probs:
                r, acc, pick = rng.random(), 0.0, len(per_choice) - 1
                for c, col in enumerate(per_choice):
                    acc += col[j]
                    if r < acc:
                        pick = c
                        break
                cats.append(pick)
            out.append((nums, tuple(cats)))
        return out

    def log_pdf(self, points: Sequence[Point]) -> list[float]:
        """Log density of each point under the mixture."""
        result = []
        prior = len(self.base) - 1
        for nums, cats in points:
            keep = self._nearby(nums[0]) if nums else None
            base = self.base
            acc = base if keep is None else [base[j] for j in keep]
            for choice, logps in zip(cats, self.cat_logps, strict=True):
                column = logps[choice]
                if keep is None:
                    acc = [a + b for a, b in zip(acc, column, strict=True)]
                else:
                    acc = [a + column[j] for a, j in zip(acc, keep, strict=True)]
            # Exponents only fall as dimensions are added, and the prior kernel's final exponent
            # bounds the total from below: a kernel already _CUT below it adds less than e**-_CUT
            # of the density, so it is dropped (large histories get several times faster).
            floor = base[prior] + sum(
                logps[choice][prior] for choice, logps in zip(cats, self.cat_logps, strict=True)
            ) - _CUT - sum(
                ((x - mus[prior]) * scales[prior]) ** 2
                for x, mus, scales in zip(nums, self.mus, self.scales, strict=True)
            )
            for x, mus, scales in zip(nums, self.mus, self.scales, strict=True):
                if keep is None:
                    acc = [a - (t := (x - m) * h) * t for a, m, h in zip(acc, mus, scales, strict=True)]
                else:
                    acc = [a - (t := (x - mus[j]) * scales[j]) * t for a, j in zip(acc, keep, strict=True)]
                alive = list(map(floor.__le__, acc))  # C-speed filtering: this loop is hot
                if not all(alive):
                    keep = list(compress(range(len(acc)) if keep is None else keep, alive))
                    acc = list(compress(acc, alive))
            result.append(_logsumexp(acc))
        return result


def _bisect(cumulative: Sequence[float], r: float) -> int:
    lo, hi = 0, len(cumulative)
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] <= r:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _truncated_normal(rng: random.Random, mu: float, sigma: float) -> float:
    for _ in range(64):
        x = rng.gauss(mu, sigma)
        if 0.0 <= x <= 1.0:
            return x
    return rng.random()  # vanishingly rare (a kernel far outside the cube); stay inside it
