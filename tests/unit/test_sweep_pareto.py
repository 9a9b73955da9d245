"""A multi-objective sweep: its input's checks, its rows' values, its Pareto front and ranking,
each against a brute-force computation."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from pydantic import ValidationError

from temporal_ml.search import (
    AshaScheduler,
    Float,
    GridSearcher,
    Int,
    NSGAIISearcher,
    RandomSearcher,
    SearchSpace,
    TPESearcher,
    dominates,
    non_dominated_sort,
)
from temporal_ml.search._pareto import crowding_distance, front_ranks
from temporal_ml.sweeps import (
    SweepInput,
    TrialRow,
    front_of,
    objective_values,
    pareto_ranked,
    row_point,
)
from temporal_ml.types import DatasetSource, TrainConfig

BASE = TrainConfig(trainable="mlp", max_steps=10, hparams={"lr": 0.01, "hidden": 8})
SPACE = SearchSpace({"hparams.lr": Float(1e-3, 1e-1, log=True), "hparams.hidden": Int(4, 32)})
DATA = DatasetSource(generator="blobs")


def _inp(**kw: object) -> SweepInput:
    args: dict[str, object] = {"base": BASE, "space": SPACE, "n_trials": 4, "dataset": DATA,
                               "searcher": NSGAIISearcher(), "objectives": ["accuracy", "loss"],
                               "directions": ["maximize", "minimize"]}
    args.update(kw)
    return SweepInput(**args)  # type: ignore[arg-type]


def _brute_ranks(points: list[tuple[float, ...]]) -> list[int]:
    """Front of each point by peeling: the non-dominated of what is left, again and again."""
    left, rank, ranks = set(range(len(points))), 1, [0] * len(points)
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


@pytest.mark.parametrize("dims", [2, 3, 4])
@pytest.mark.parametrize("seed", range(25))
def test_front_ranks_equal_brute_force_with_ties_and_duplicates(dims: int, seed: int) -> None:
    rng = random.Random(seed * 10 + dims)
    n = rng.randint(0, 60)
    grid = rng.choice([3, 6, 1000])  # a coarse grid makes equal values and equal points common
    points = [tuple(float(rng.randrange(grid)) for _ in range(dims)) for _ in range(n)]
    ranks = front_ranks(points)
    assert ranks == _brute_ranks(points)
    by_sort = [0] * n
    for k, front in enumerate(non_dominated_sort(points), start=1):
        for i in front:
            by_sort[i] = k
    assert ranks == by_sort


def _row(index: int, values: list[float] | None, state: str = "done") -> TrialRow:
    return TrialRow(index=index, params={"hparams.lr": 0.01}, state=state, values=values)  # type: ignore[arg-type]


def test_the_front_and_the_ranking_of_rows_against_brute_force() -> None:
    rng = random.Random(3)
    directions = ["maximize", "minimize"]
    rows = [_row(k, [round(rng.random(), 1), round(rng.random(), 1)]) for k in range(200)]
    rows += [_row(200, None, "failed"), _row(201, None, "training"), _row(202, [float("nan"), 0.0])]
    points = {r.index: (-r.values[0], r.values[1]) for r in rows[:200]}  # type: ignore[index]
    brute = sorted(i for i, p in points.items() if not any(dominates(q, p) for q in points.values()))
    front, dropped = front_of(rows, directions)  # type: ignore[arg-type]
    assert [r.index for r in front] == brute and dropped == 0
    ranked = pareto_ranked(rows, directions)  # type: ignore[arg-type]
    assert len(ranked) == 200  # failed, running and non-finite rows are not ranked
    ranks = _brute_ranks(list(points.values()))
    assert {r.index: k for r, k in ranked} == dict(zip(points, ranks, strict=True))
    assert [k for _, k in ranked] == sorted(k for _, k in ranked)  # by front first
    for rank in set(ranks):  # then by crowding distance within the front (larger first), then index
        members = [r for r, k in ranked if k == rank]
        by_index = sorted(r.index for r in members)  # (equal points: the distance depends on the order)
        distance = dict(zip(by_index, crowding_distance([points[i] for i in by_index]), strict=True))
        assert [r.index for r in members] == sorted(distance, key=lambda i: (-distance[i], i))


def test_a_front_beyond_its_bound_keeps_its_ends_and_counts_what_it_left_out() -> None:
    rows = [_row(k, [k / 10, k / 10]) for k in range(30)]  # maximize both... minimize the second: all on the front
    front, dropped = front_of(rows, ["maximize", "maximize"], limit=5)
    assert [r.index for r in front] == [29] and dropped == 0  # maximizing both: one dominates all
    front, dropped = front_of(rows, ["maximize", "minimize"], limit=5)
    assert len(front) == 5 and dropped == 25
    assert {0, 29} <= {r.index for r in front}  # the ends (infinite crowding distance) stay


def test_a_row_is_told_to_the_searcher_with_its_values() -> None:
    record = _row(3, [0.9, 0.2]).record()
    assert record.state == "complete" and record.values == (0.9, 0.2) and record.value is None
    assert _row(4, [0.9, float("inf")]).record().state == "failed"
    assert _row(5, None, "training").record().state == "pending"
    single = TrialRow(index=1, params={"x": 1}, state="done", value=0.5)
    assert "values" not in json.loads(single.model_dump_json())  # single-objective rows as before
    assert row_point(_row(6, [0.9, 0.2]), ["maximize", "minimize"]) == (-0.9, 0.2)


def test_objective_values_fail_in_one_line() -> None:
    assert objective_values({"accuracy": 0.8, "loss": 0.3}, ["loss", "accuracy"]) == ([0.3, 0.8], None)
    values, why = objective_values({"accuracy": float("nan"), "loss": 0.3}, ["accuracy", "latency_ms"])
    assert values is None and why is not None and "\n" not in why
    assert "'accuracy', 'latency_ms'" in why and "['accuracy', 'loss']" in why


def test_a_single_objective_input_serializes_as_before() -> None:
    inp = SweepInput(base=BASE, space=SPACE, n_trials=4, dataset=DATA)
    dumped = json.loads(inp.model_dump_json())
    assert "objectives" not in dumped and "directions" not in dumped
    assert inp.search_direction == "maximize" and not inp.multi_objective
    multi = _inp()
    assert multi.search_direction == ("maximize", "minimize") and multi.multi_objective
    again = SweepInput.model_validate_json(multi.model_dump_json())
    assert again.objectives == ["accuracy", "loss"] and again.directions == ["maximize", "minimize"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"directions": None}, "objectives and directions go together"),
    ({"objectives": None}, "objectives and directions go together"),
    ({"objectives": ["accuracy"], "directions": ["maximize"]}, "at least 2"),
    ({"directions": ["maximize"]}, "one per objective (2 objectives, 1 directions)"),
    ({"objectives": ["loss", "loss"]}, "'loss' given more than once"),
    ({"objectives": ["loss", " "]}, "got an empty one"),
    ({"directions": ["maximize", "sideways"]}, "should be 'minimize' or 'maximize'"),
    ({"searcher": TPESearcher()}, "searcher 'tpe' optimizes one objective"),
    ({"scheduler": AshaScheduler(min_budget=2, max_budget=8)}, "a scheduler (asha) ranks trials by one value"),
    ({"objective": "loss", "direction": "minimize"}, "not both"),
])
def test_a_bad_multi_objective_input_is_refused_in_one_line(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _inp(**changes)
    [error] = info.value.errors()
    assert message in error["msg"] and "\n" not in error["msg"]


def test_searchers_that_ignore_the_results_may_run_several_objectives() -> None:
    grid = SearchSpace({"hparams.lr": Float(0.01, 0.05, step=0.01), "hparams.hidden": Int(4, 32)})
    for searcher in (RandomSearcher(), GridSearcher(), NSGAIISearcher()):
        assert _inp(searcher=searcher, space=grid).multi_objective
    assert _inp(objective="accuracy", direction="maximize").objectives == ["accuracy", "loss"]  # the first pair


def test_front_ranks_is_fast_on_a_whole_table() -> None:
    import time

    rng = random.Random(0)
    points = [(rng.random(), rng.random()) for _ in range(50_000)]
    began = time.perf_counter()
    ranks = front_ranks(points)
    assert time.perf_counter() - began < 10 and min(ranks) == 1
    few = list(itertools.islice(points, 300))
    assert front_ranks(few) == _brute_ranks(few)
