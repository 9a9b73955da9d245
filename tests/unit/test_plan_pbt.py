"""Population-based training's plan (``plan_next`` with a :class:`PbtScheduler`), driven by a
simulated sweep: the decisions of every round are the same whatever the concurrency and whichever
trial finishes first, exploits take a top-quantile member and explore its params, and a member
that failed is replaced by a copy of a good one.

Randomised: the completion order comes from ``TML_TEST_SEED`` (printed) to reproduce a failure.
"""

from __future__ import annotations

import math
import os
import random

import pytest

from temporal_ml.activities.plan import PlanRequest, PlanRow, plan_next
from temporal_ml.search import (
    Categorical,
    Float,
    PbtScheduler,
    RandomSearcher,
    SearchSpace,
    explore,
    pbt_round,
)

SPACE = SearchSpace({"hparams.lr": Float(1e-4, 1e-1, log=True), "hparams.width": Categorical([8, 16, 32])})
PBT = PbtScheduler(perturbation_interval=10, max_budget=40, quantile=0.25)
SEED = int(os.environ.get("TML_TEST_SEED", random.randrange(1 << 30)))


def _score(params: dict, rung: int, index: int) -> float:
    """A trial's value at a round: a smooth function of its params and the round (what training gives)."""
    lr = float(params["hparams.lr"])
    if index == 5 and rung == 1:
        return math.nan  # member 5 diverges in round 1: it fails there
    return -abs(math.log10(lr) + 2.0) + 0.1 * rung + 0.01 * int(params["hparams.width"]) / 8


def _simulate(concurrency: int, seed: int, population: int = 8) -> tuple[list[tuple[int, int, int | None, str]], dict]:
    """Run a sweep of ``population`` members against the plan; answer each decision (round, trial,
    donor, params) in the order applied, and the rows at the end."""
    rng = random.Random(seed)
    rows: dict[int, PlanRow] = {}
    decisions: list[tuple[int, int, int | None, str]] = []
    next_index, plans = 0, 0
    while True:
        running = [r for r in rows.values() if r.running]
        req = PlanRequest(scheduler=PBT, searcher=RandomSearcher(), space=SPACE, seed=3, direction="maximize",
                          rows=list(rows.values()), next_index=next_index, max_trials=population,
                          slots=concurrency - len(running), results_seen=0)
        got = plan_next(req)
        plans += 1
        assert plans < 500, "the plan never ends"
        for a in got.actions:
            if a.action == "start":
                rows[a.index] = PlanRow(index=a.index, params=a.params, state="training")
                next_index += 1
                continue
            row = rows[a.index]
            values, seqs = list(row.rung_values), list(row.rung_seqs)
            while len(values) < a.rung:  # failed in the round: no value there (as the sweep pads it)
                values.append(math.nan)
                seqs.append(-1)
            rows[a.index] = row.model_copy(update={"state": "training", "rung": a.rung, "params": a.params,
                                                   "rung_values": values, "rung_seqs": seqs})
            decisions.append((a.rung - 1, a.index, a.donor, repr(sorted(a.params.items()))))
        if got.done:
            return decisions, rows
        running = [r for r in rows.values() if r.running]
        assert running, f"the plan answered nothing while nothing runs: {got}"
        row = running[rng.randrange(len(running))]  # any running trial may finish first
        value = _score(row.params, row.rung, row.index)
        if math.isnan(value):
            rows[row.index] = row.model_copy(update={"state": "failed"})
        else:
            rows[row.index] = row.model_copy(update={"state": "done", "rung_values": [*row.rung_values, value],
                                                     "rung_seqs": [*row.rung_seqs, plans]})


def test_the_rounds_decide_the_same_at_any_concurrency_and_completion_order() -> None:
    print(f"TML_TEST_SEED={SEED}")
    baseline, rows = _simulate(1, SEED)
    for concurrency in (2, 3, 8):
        for k in range(3):
            got, _ = _simulate(concurrency, SEED + 7 * k + concurrency)
            assert sorted(got) == sorted(baseline), (concurrency, k)
    # every member trained every round (member 5 failed once, was replaced, and went on)
    assert all(len(r.rung_values) == len(PBT.budgets()) and r.state == "done" for r in rows.values()), rows
    assert math.isnan(rows[5].rung_values[1])
    exploits = [d for d in baseline if d[2] is not None]
    assert len(exploits) == 2 * (len(PBT.budgets()) - 1), exploits  # a quarter of 8, each of 3 rounds
    assert any(d[1] == 5 and d[0] == 1 for d in exploits), "the failed member exploits a good one"


def test_exploits_take_the_top_quantile_and_explore_its_params() -> None:
    values = {i: float(v) for i, v in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6])}
    decisions = pbt_round(values, "maximize", seed=1, round=0, quantile=0.25)
    exploits = [d for d in decisions if d.donor is not None]
    assert {d.index for d in exploits} == {2, 6}  # the worst two
    assert {d.donor for d in exploits} <= {1, 5}  # the best two
    assert [d.index for d in decisions[2:]] == [1, 5, 3, 7, 0, 4]  # then the others, best first
    assert pbt_round({0: math.nan, 1: 0.1}, "minimize", seed=0, round=0)[0].index == 0  # NaN ranks last
    nan = math.nan  # members that failed are never copied; with no finite top, nobody exploits
    decisions = pbt_round({0: 0.9, 1: nan, 2: nan, 3: nan}, "maximize", seed=0, round=0, quantile=0.5)
    assert {(d.index, d.donor) for d in decisions if d.donor is not None} == {(2, 0), (3, 0)}, decisions
    decisions = pbt_round({0: nan, 1: nan}, "maximize", seed=0, round=0)
    assert all(d.donor is None for d in decisions), decisions
    params = {"hparams.lr": 0.01, "hparams.width": 16}
    new, notes = explore(PBT, SPACE, params, seed=0, round=0, index=2)
    assert new == explore(PBT, SPACE, params, seed=0, round=0, index=2)[0]  # deterministic
    assert SPACE.problem_with(new) is None and notes, (new, notes)
    for index in range(50):  # perturbed by a factor, or resampled, always inside the space
        new, notes = explore(PBT, SPACE, params, seed=0, round=1, index=index)
        assert SPACE.problem_with(new) is None
        for line in notes:
            assert line.endswith(("(x0.8)", "(x1.2)", "(resampled)", "(neighbour)")), line


def test_a_pbt_scheduler_refuses_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="at least two rounds"):
        PbtScheduler(perturbation_interval=40, max_budget=40)
    with pytest.raises(ValueError, match="factors must be positive"):
        PbtScheduler(perturbation_interval=10, max_budget=40, factors=(0.0, 1.2))
    assert PbtScheduler(perturbation_interval=10, max_budget=40, mutate=["lr"]).problem_with(SPACE) is not None
    assert PbtScheduler(perturbation_interval=15, max_budget=40).budgets() == [15, 30, 40]
