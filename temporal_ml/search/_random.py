"""Random search: every point drawn independently from the space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import JsonValue

from temporal_ml.search._base import Directions, Searcher, TrialRecord, trial_rng
from temporal_ml.search._space import SearchSpace

__all__ = ["RandomSearcher"]


class RandomSearcher(Searcher):
    """Uniform random search (log-uniform on log-scale parameters).

    Example:
        >>> from temporal_ml.search import Float, SearchSpace
        >>> space = SearchSpace({"x": Float(0, 1)})
        >>> a = RandomSearcher().suggest(space, [], seed=0, index=3)
        >>> a == RandomSearcher().suggest(space, [], seed=0, index=3)
        True
    """

    kind: Literal["random"] = "random"
    uses_history: ClassVar[bool] = False
    multi_objective: ClassVar[bool] = True

    def suggest(
        self,
        space: SearchSpace,
        history: Sequence[TrialRecord],
        *,
        seed: int,
        index: int,
        direction: Directions = "minimize",
    ) -> dict[str, JsonValue]:
        return self.random_point(space, trial_rng(seed, index, "random"))
