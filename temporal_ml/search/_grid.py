"""Grid search: every point of a finite space exactly once, in a fixed order, then exhausted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field, JsonValue

from temporal_ml.search._base import Directions, Searcher, SearchExhausted, TrialRecord, trial_rng
from temporal_ml.search._space import SearchSpace, canonical_json

__all__ = ["GridSearcher"]


class GridSearcher(Searcher):
    """Each grid point once: the first not yet in the history (complete, failed or pending).

    The order is the space's grid order (last parameter fastest), or a permutation of it fixed by
    the seed when ``shuffle`` is set, so a cut-short grid still covers the space evenly.

    Attributes:
        shuffle: visit the points in a seeded random order.
        max_points: refuse spaces with more grid points than this (a typo guard).

    Example:
        >>> from temporal_ml.search import Categorical, SearchSpace
        >>> space = SearchSpace({"act": Categorical(["relu", "gelu"])})
        >>> GridSearcher().suggest(space, [], seed=0, index=0)
        {'act': 'relu'}
    """

    kind: Literal["grid"] = "grid"
    shuffle: bool = False
    max_points: int = Field(default=100_000, ge=1)
    multi_objective: ClassVar[bool] = True  # it never reads the values

    def check_space(self, space: SearchSpace) -> None:
        size = len(space.grid())  # raises, naming a continuous parameter
        if size > self.max_points:
            raise ValueError(f"the grid has {size} points, more than max_points={self.max_points}")

    def suggest(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        *,
        seed: int,
        index: int,
        direction: Directions = "minimize",
    ) -> dict[str, JsonValue]:
        self.check_space(space)
        points = space.grid()
        if self.shuffle:
            trial_rng(seed, 0, "grid").shuffle(points)
        seen = {canonical_json(t.params) for t in history}
        for point in points:
            if canonical_json(point) not in seen:
                return point
        raise SearchExhausted(f"all {len(points)} grid points have been tried")
