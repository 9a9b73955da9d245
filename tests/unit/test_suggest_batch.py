"""Asking the searcher for several trials' points at once (a sweep's ``held_more``) gives the points
asking one at a time gives when no result arrives in between: each later one sees the earlier ones as
pending. So a batch changes nothing a sweep trains, and ``sweep audit`` recomputes each point alone."""

from __future__ import annotations

import pytest

from temporal_ml.activities.sweep import SuggestRequest, suggest_point
from temporal_ml.search import (
    Float,
    GridSearcher,
    Int,
    RandomSearcher,
    SearchSpace,
    TPESearcher,
    TrialRecord,
)

SPACE = SearchSpace({"x": Float(-2.0, 2.0), "n": Int(1, 8)})
DONE = [TrialRecord(index=i, params={"x": -2.0 + 0.5 * i, "n": 1 + i % 8}, state="complete", value=float(i % 3))
        for i in range(6)]


@pytest.mark.parametrize("searcher", [RandomSearcher(), TPESearcher(n_startup=3), GridSearcher()],
                         ids=lambda s: s.kind)
def test_a_batch_equals_asking_one_at_a_time_without_new_results(searcher: object) -> None:
    space = SearchSpace({"x": Float(-2.0, 2.0, step=0.5), "n": Int(1, 8)}) if searcher.kind == "grid" else SPACE  # type: ignore[attr-defined]
    history = [] if searcher.kind == "grid" else list(DONE)  # type: ignore[attr-defined]
    start = len(history)
    batch = suggest_point(SuggestRequest(searcher=searcher, space=space, history=history, seed=7, index=start,
                                         direction="minimize", count=4))
    points = [batch.params, *batch.more]
    one_by_one, seen = [], list(history)
    for k in range(4):
        got = suggest_point(SuggestRequest(searcher=searcher, space=space, history=seen, seed=7, index=start + k,
                                           direction="minimize"))
        one_by_one.append(got.params)
        seen.append(TrialRecord(index=start + k, params=got.params, state="pending"))
    assert points == one_by_one and len(points) == 4


def test_a_batch_stops_where_the_searcher_runs_out() -> None:
    space = SearchSpace({"n": Int(1, 3)})
    got = suggest_point(SuggestRequest(searcher=GridSearcher(), space=space, history=[], seed=0, index=0,
                                       direction="minimize", count=10))
    assert [got.params, *got.more] == [{"n": 1}, {"n": 2}, {"n": 3}]  # the grid has 3 points
    tried = [TrialRecord(index=n - 1, params={"n": n}, state="complete", value=1.0) for n in (1, 2, 3)]
    empty = suggest_point(SuggestRequest(searcher=GridSearcher(), space=space, history=tried, seed=0, index=3,
                                         direction="minimize", count=10))
    assert empty.params is None and empty.exhausted
