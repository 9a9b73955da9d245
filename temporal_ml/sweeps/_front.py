"""A multi-objective sweep's ranking: its Pareto front and the order of its leaderboard.

A done trial's ``values`` (one per objective) are ranked by non-dominated sorting: front 1 holds the
trials no other done trial dominates (no worse in every objective, better in one), front 2 those
dominated only by front 1, and so on. Within a front the larger crowding distance comes first
(NSGA-II's order: the ends of the front, then the trials in its sparser stretches), then the lower
index. Pure Python (``temporal_ml.search._pareto``), so a workflow replays to the same order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from temporal_ml.search import Direction
from temporal_ml.search._pareto import crowding_distance, front_ranks
from temporal_ml.sweeps._rows import TrialRow

__all__ = ["FRONT_ROWS", "row_point", "pareto_ranked", "front_of"]

#: The Pareto front a sweep keeps in its state and returns in its result at most (rows); a larger
#: front is thinned by crowding distance (its ends are always kept), and ``results()`` reads the
#: exact front from the whole results table.
FRONT_ROWS = 50


def row_point(row: TrialRow, directions: Sequence[Direction]) -> tuple[float, ...] | None:
    """A done row's values as values to minimize (a maximized objective negated), or ``None``
    when it has none to rank (not done, or not one finite value per direction)."""
    values = row.values
    if row.state != "done" or values is None or len(values) != len(directions):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return tuple(v if d == "minimize" else -v for v, d in zip(values, directions, strict=True))


def pareto_ranked(rows: Sequence[TrialRow], directions: Sequence[Direction]) -> list[tuple[TrialRow, int]]:
    """The done rows with values, best first, each with its front (1: on the Pareto front): by
    front, then larger crowding distance within it, then lower index. A trial listed twice counts
    as its last row."""
    latest = {r.index: r for r in rows}
    scored = [(r, p) for r in latest.values() if (p := row_point(r, directions)) is not None]
    ranks = front_ranks([p for _, p in scored])
    by_front: dict[int, list[int]] = {}
    for k, rank in enumerate(ranks):
        by_front.setdefault(rank, []).append(k)
    crowding = [0.0] * len(scored)
    for members in by_front.values():
        for k, d in zip(members, crowding_distance([scored[k][1] for k in members]), strict=True):
            crowding[k] = d
    order = sorted(range(len(scored)), key=lambda k: (ranks[k], -crowding[k], scored[k][0].index))
    return [(scored[k][0], ranks[k]) for k in order]


def front_of(rows: Sequence[TrialRow], directions: Sequence[Direction],
             limit: int = FRONT_ROWS) -> tuple[list[TrialRow], int]:
    """The Pareto front of ``rows`` by index, at most ``limit`` rows (beyond it those of largest
    crowding distance, the ends first), and how many front rows were left out."""
    front = [r for r, rank in pareto_ranked(rows, directions) if rank == 1]
    kept = front[:limit]
    return sorted(kept, key=lambda r: r.index), len(front) - len(kept)
