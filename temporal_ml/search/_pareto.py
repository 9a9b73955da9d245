"""Pareto dominance in pure Python: fronts, non-dominated sorting, crowding distance, hypervolume.

Points here are tuples of objective values *to minimize*; :func:`minimized` turns a trial's values
into that form (a ``maximize`` objective is negated). Pure Python, no numpy, so a workflow replays
to the same floats on any machine.

Example:
    >>> non_dominated_sort([(1, 4), (2, 2), (4, 1), (3, 3), (5, 5)])
    [[0, 1, 2], [3], [4]]
    >>> hypervolume([(1, 3), (2, 2), (3, 1)], reference=(4, 4))
    6.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from temporal_ml.search._base import Direction, Directions, TrialRecord, as_directions

__all__ = [
    "minimized",
    "dominates",
    "non_dominated_sort",
    "front_ranks",
    "crowding_distance",
    "pareto_front",
    "hypervolume",
]

Point = tuple[float, ...]


def minimized(trial: TrialRecord, directions: Sequence[Direction]) -> Point | None:
    """The trial's objectives as values to minimize, or ``None`` if it has none to rank.

    A trial counts when it is complete with finite values, one per direction (``value`` stands
    for a single objective). Failed, pending and non-finite trials, and trials with another
    number of objectives, have none: they are on no front.
    """
    if not trial.ok:
        return None
    raw = trial.values if trial.values is not None else (trial.value,)
    if len(raw) != len(directions):
        return None
    return tuple(float(v) if d == "minimize" else -float(v)  # type: ignore[arg-type]
                 for v, d in zip(raw, directions, strict=True))


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every objective and better in one (minimizing)."""
    better = False
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if x < y:
            better = True
    return better


def non_dominated_sort(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """The indices of ``points`` by front: the non-dominated first, then those dominated only by
    the first front, and so on (the fronts of :func:`front_ranks`).

    Equal points share a front. Each front lists its indices in increasing order.

    Example:
        >>> non_dominated_sort([(1, 4), (2, 2), (4, 1), (3, 3), (5, 5)])
        [[0, 1, 2], [3], [4]]
    """
    ranks = front_ranks(points)
    fronts: list[list[int]] = [[] for _ in range(max(ranks, default=0))]
    for i, rank in enumerate(ranks):
        fronts[rank - 1].append(i)
    return fronts


def front_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """Each point's front (1: non-dominated, 2: dominated only by front 1, ...), as
    :func:`non_dominated_sort` numbers them, but fast enough for a whole sweep's table.

    Efficient non-dominated sorting with binary search (Zhang et al. 2015): points are visited in
    lexicographic order, so none is dominated by a later one, and each joins the first front with no
    member that dominates it (the fronts that hold a dominator are a prefix, so a binary search finds
    it). Two objectives take ``O(N log N)`` (a front is checked by its lowest second value); more take
    ``O(N log F)`` front checks of at most a front's size each.

    Example:
        >>> front_ranks([(1, 4), (2, 2), (4, 1), (3, 3), (5, 5)])
        [1, 1, 1, 2, 3]
    """
    n = len(points)
    ranks = [0] * n
    order = sorted(range(n), key=lambda i: (tuple(points[i]), i))
    two = bool(points) and all(len(p) == 2 for p in points)
    lowest: list[tuple[float, float]] = []  # two objectives: each front's (lowest y, the x it came with)
    fronts: list[list[Sequence[float]]] = []

    def dominated_in(k: int, p: Sequence[float]) -> bool:
        if two:  # members came earlier (x no larger): one dominates p iff its y is lower, or equal
            y, x = lowest[k]  # with a lower x
            return y < p[1] or (y == p[1] and x < p[0])
        return any(dominates(q, p) for q in fronts[k])

    for i in order:
        p = points[i]
        lo, hi = 0, len(fronts) if not two else len(lowest)
        while lo < hi:  # the first front without a member that dominates p
            mid = (lo + hi) // 2
            if dominated_in(mid, p):
                lo = mid + 1
            else:
                hi = mid
        if two:
            if lo == len(lowest):
                lowest.append((p[1], p[0]))
            elif p[1] < lowest[lo][0]:
                lowest[lo] = (p[1], p[0])
        else:
            if lo == len(fronts):
                fronts.append([])
            fronts[lo].append(p)
        ranks[i] = lo + 1
    return ranks


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """Each point's crowding distance within its front (Deb et al. 2002).

    Per objective, the points are sorted (ties by position); the two ends get ``inf``, every other
    point adds the gap between its neighbours divided by the objective's range. An objective on
    which all points are equal adds nothing. Fronts of one or two points are all ``inf``.
    """
    n = len(points)
    distance = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][m], i))
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, n - 1):
            i = order[k]
            if distance[i] != math.inf:
                distance[i] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (high - low)
    return distance


def pareto_front(trials: Sequence[TrialRecord], directions: Directions) -> list[TrialRecord]:
    """The non-dominated trials among ``trials``, in their order.

    Only trials with finite values for every direction are ranked (see :func:`minimized`); two
    trials with equal values are both on the front. ``O(N log N + N F)`` for a front of ``F``:
    trials are visited in lexicographic order of their values, and one that no earlier front member
    dominates joins the front (a later point never dominates an earlier one).

    Example:
        >>> ts = [TrialRecord(index=i, params={}, values=v)
        ...       for i, v in enumerate([(0.9, 30.0), (0.8, 10.0), (0.7, 20.0)])]
        >>> [t.index for t in pareto_front(ts, ["maximize", "minimize"])]
        [0, 1]
    """
    dirs = as_directions(directions)
    ranked = [(p, k) for k, t in enumerate(trials) if (p := minimized(t, dirs)) is not None]
    ranked.sort()
    front: list[tuple[Point, int]] = []
    for point, k in ranked:
        if not any(dominates(q, point) for q, _ in front):
            front.append((point, k))
    return [trials[k] for k in sorted(k for _, k in front)]


def hypervolume(
    points: Sequence[Sequence[float]],
    reference: Sequence[float],
    directions: Directions = ("minimize", "minimize"),
) -> float:
    """The area dominated by ``points`` and bounded by ``reference`` (two objectives, exact).

    Points are objective values in the given ``directions`` (``reference`` too: for a maximized
    objective it lies below every point of interest). A point not strictly better than the
    reference in both objectives adds nothing. ``O(N log N)``.

    Example:
        >>> hypervolume([(0.5, 30.0), (0.25, 10.0)], reference=(0.0, 100.0),
        ...             directions=["maximize", "minimize"])
        40.0

    Raises:
        ValueError: not two objectives, or a non-finite reference.
    """
    dirs = as_directions(directions)
    if len(dirs) != 2 or len(reference) != 2:
        raise ValueError(f"hypervolume is exact for 2 objectives (got {len(dirs)} directions, "
                         f"a reference of {len(reference)})")
    if not all(math.isfinite(r) for r in reference):
        raise ValueError(f"the reference point must be finite (got {tuple(reference)})")
    sign = [1.0 if d == "minimize" else -1.0 for d in dirs]
    rx, ry = sign[0] * reference[0], sign[1] * reference[1]
    inside = []
    for p in points:
        if len(p) != 2:
            raise ValueError(f"a point of a 2-objective hypervolume has 2 values (got {tuple(p)})")
        x, y = sign[0] * p[0], sign[1] * p[1]
        if x < rx and y < ry:  # (NaN compares false: left out)
            inside.append((x, y))
    inside.sort()
    area, best_y = 0.0, ry
    for x, y in inside:
        if y < best_y:
            area += (rx - x) * (best_y - y)
            best_y = y
    return area
