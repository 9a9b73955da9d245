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
from collections.abc import Sequence
from itertools import chain, compress, product
from operator import sub

__all__ = ["ParzenEstimator", "Point"]

Point = tuple[tuple[float, ...], tuple[int, ...]]
"""(numeric coordinates in [0, 1], categorical choice indices)."""

_Columns = tuple[list[int], list[float], list[list[float]], list[list[float]]]
"""Kernels as columns: indices, base terms, and the bucketed dimensions' means and scales."""

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SQRT2 = math.sqrt(2.0)
_SQRT_HALF = math.sqrt(0.5)
_CUT = 50.0  # e**-50 < 2e-22: kernels this far below the prior kernel do not change a density
_WINDOW = 0.15  # kernels reaching at most this far (first two dimensions) are found by buckets
_CELL = _WINDOW / 2
_INDEX_AFTER = 8  # points evaluated one by one before the kernels are bucketed
_N_CELLS = math.ceil(1.0 / _CELL)
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
    gaps = list(map(sub, ends[1:], ends[:-1]))  # map/zip loops run in C: this is a hot path
    if not endpoints and len(mus) >= 2:
        gaps[0], gaps[-1] = gaps[1], gaps[-2]
    widest = map(max, gaps[:-1], gaps[1:])
    clipped = [min_sigma if g < min_sigma else (1.0 if g > 1.0 else g) for g in widest]
    sigmas = [0.0] * len(mus)
    for i, sigma in zip(order, clipped, strict=True):
        sigmas[i] = sigma
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
            base = list(map(sub, base, map(math.log, sigmas)))
            for j, (mu, sigma) in enumerate(zip(mus, sigmas, strict=True)):
                if not _TAIL * sigma < mu < 1.0 - _TAIL * sigma:  # else the tails are < 1e-18
                    mass = _normal_cdf((1.0 - mu) / sigma) - _normal_cdf(-mu / sigma)
                    base[j] -= math.log(max(mass, 1e-300))
            self.mus.append(mus)
            self.sigmas.append(sigmas)
            self.scales.append([_SQRT_HALF / s for s in sigmas])
        if n_numeric:
            base = [b - n_numeric * _LOG_SQRT_2PI for b in base]
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
        self._n_choices = list(n_choices)
        self._buckets: dict[tuple[int, ...], _Columns] | None = None
        self._visits = 0  # points evaluated so far: the kernel index pays off only for many

    def _index_kernels(self) -> None:
        """Bucket narrow kernels by their first two coordinates, so a point visits nearby ones only.

        Whatever the point, its log density is at least the prior kernel's term, which is at least
        ``floor`` (the prior's base, uniform choices, at most ``1/8`` off per dimension). A kernel
        that one coordinate alone puts ``_CUT`` below that cannot matter, which bounds its reach in
        that dimension to ``slack / scale``. Kernels reaching at most ``_WINDOW`` in the bucketed
        dimensions go into square buckets of half that width; a point visits the buckets within
        ``_WINDOW`` of it, plus the few wide kernels (and the prior), always.
        """
        if not self.mus or len(self.base) < 64:
            return
        prior = len(self.base) - 1
        floor = (
            self.base[prior] - sum(math.log(k) for k in self._n_choices) - len(self.mus) / 8 - _CUT
        )
        dims = range(min(2, len(self.mus)))
        buckets: dict[tuple[int, ...], list[int]] = {}
        wide: list[int] = []
        for j, b in enumerate(self.base):
            slack = math.sqrt(max(b - floor, 0.0))
            if j == prior or any(slack / self.scales[d][j] > _WINDOW for d in dims):
                wide.append(j)
            else:
                key = tuple(min(int(self.mus[d][j] / _CELL), _N_CELLS - 1) for d in dims)
                buckets.setdefault(key, []).append(j)
        self._wide = self._columns(wide)
        self._buckets = {key: self._columns(js) for key, js in sorted(buckets.items())}

    def _columns(self, kernels: list[int]) -> _Columns:
        """The kernels' indices, base terms and the bucketed dimensions' means and scales."""
        return (
            kernels,
            [self.base[j] for j in kernels],
            [[self.mus[d][j] for j in kernels] for d in range(min(2, len(self.mus)))],
            [[self.scales[d][j] for j in kernels] for d in range(min(2, len(self.mus)))],
        )

    def _nearby(self, nums: tuple[float, ...]) -> _Columns:
        """The kernels that can matter at ``nums`` (wide ones first, then bucket by bucket)."""
        assert self._buckets is not None
        ranges = [
            range(max(0, math.floor((x - _WINDOW) / _CELL)),
                  min(_N_CELLS - 1, math.floor((x + _WINDOW) / _CELL)) + 1)
            for x in nums[:2]
        ]
        parts = [self._wide]
        parts += [self._buckets[k] for k in product(*ranges) if k in self._buckets]
        join = chain.from_iterable
        dims = range(len(parts[0][2]))
        return (
            list(join(p[0] for p in parts)),
            list(join(p[1] for p in parts)),
            [list(join(p[2][d] for p in parts)) for d in dims],
            [list(join(p[3][d] for p in parts)) for d in dims],
        )

    def _log_pdf_all(self, nums: tuple[float, ...], cats: tuple[int, ...]) -> float:
        """Log density visiting every kernel (small mixtures: no pruning bookkeeping)."""
        acc = self.base
        for choice, logps in zip(cats, self.cat_logps, strict=True):
            acc = [a + b for a, b in zip(acc, logps[choice], strict=True)]
        for x, mus, scales in zip(nums, self.mus, self.scales, strict=True):
            acc = [a - (t := (x - m) * h) * t for a, m, h in zip(acc, mus, scales, strict=True)]
        return _logsumexp(acc)

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

    def log_prior_term(self, point: Point) -> float:
        """The prior kernel's term of :meth:`log_pdf`, computed exactly as there: a lower bound."""
        prior = len(self.base) - 1
        acc = self.base[prior]
        for choice, logps in zip(point[1], self.cat_logps, strict=True):
            acc = acc + logps[choice][prior]
        for x, mus, scales in zip(point[0], self.mus, self.scales, strict=True):
            acc = acc - (t := (x - mus[prior]) * scales[prior]) * t
        return acc

    def log_pdf(self, points: Sequence[Point]) -> list[float]:
        """Log density of each point under the mixture."""
        self._visits += len(points)
        if self._buckets is None and self._visits > _INDEX_AFTER:
            self._index_kernels()
        if self._buckets is None:
            return [self._log_pdf_all(nums, cats) for nums, cats in points]
        result = []
        prior = len(self.base) - 1
        for nums, cats in points:
            keep, acc, mus_cols, scale_cols = self._nearby(nums)
            for choice, logps in zip(cats, self.cat_logps, strict=True):
                column = logps[choice]
                acc = [a + column[j] for a, j in zip(acc, keep, strict=True)]
            # Exponents only fall as dimensions are added, and the prior kernel's final exponent
            # bounds the total from below: a kernel already _CUT below it adds less than e**-_CUT
            # of the density, so it is dropped (large histories get several times faster).
            floor = self.base[prior] + sum(
                logps[choice][prior] for choice, logps in zip(cats, self.cat_logps, strict=True)
            ) - _CUT - sum(
                ((x - mus[prior]) * scales[prior]) ** 2
                for x, mus, scales in zip(nums, self.mus, self.scales, strict=True)
            )
            for d, x in enumerate(nums):
                if d < len(mus_cols):  # bucketed dimensions: gathered columns
                    acc = [
                        a - (t := (x - m) * h) * t
                        for a, m, h in zip(acc, mus_cols[d], scale_cols[d], strict=True)
                    ]
                else:  # the rest: by kernel index (few kernels are left by now)
                    mus, scales = self.mus[d], self.scales[d]
                    acc = [
                        a - (t := (x - mus[j]) * scales[j]) * t
                        for a, j in zip(acc, keep, strict=True)
                    ]
                alive = list(map(floor.__le__, acc))  # C-speed filtering: this loop is hot
                if not all(alive):
                    acc = list(compress(acc, alive))
                    keep = list(compress(keep, alive))
                    for e in range(d + 1, len(mus_cols)):
                        mus_cols[e] = list(compress(mus_cols[e], alive))
                        scale_cols[e] = list(compress(scale_cols[e], alive))
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
