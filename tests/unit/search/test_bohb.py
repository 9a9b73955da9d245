"""BOHB: the budget its density is fitted on (the largest with at least d + 1 results, else a lower
one, else none), its random fraction, its determinism, and the per-rung values sweeps give it.

Randomised tests print their seed; set ``TML_TEST_SEED`` to rerun one with the same points.
"""

from __future__ import annotations

import math
import os
import random
import statistics

import pytest

from temporal_ml.search import (
    AshaScheduler,
    BOHBSearcher,
    Fixed,
    Float,
    SearchSpace,
    TrialRecord,
    bohb,
    searcher_from_json,
)
from temporal_ml.sweeps import TrialRow, rung_record

SPACE = SearchSpace({"x": Float(0, 1), "y": Float(0, 1), "tag": Fixed("a")})  # d = 2: d + 1 = 3


def run_seed() -> int:
    seed = int(os.environ.get("TML_TEST_SEED", random.SystemRandom().randrange(2**32)))
    print(f"TML_TEST_SEED={seed}")
    return seed


def rec(index: int, x: float, levels: dict[int, float], state: str = "complete") -> TrialRecord:
    value = levels[max(levels)] if levels and state == "complete" else None
    return TrialRecord(index=index, params={"x": x, "y": 0.5, "tag": "a"}, state=state,  # type: ignore[arg-type]
                       value=value, rung_values=levels)


def low_and_high(n_top: int) -> list[TrialRecord]:
    """12 trials at levels 0 and 1 where small x is good; ``n_top`` of them, spread over the range,
    reached level 2, where large x is good (a config that learns slowly looks bad early)."""
    history = []
    for i in range(12):
        x = (i + 0.5) / 12
        early = (x - 0.1) ** 2
        levels = {0: early, 1: early}
        if n_top and i % (12 // n_top) == 0:
            levels[2] = (x - 0.9) ** 2
        history.append(rec(i, x, levels))
    return history


def test_the_model_is_fitted_on_the_largest_budget_with_d_plus_1_results() -> None:
    searcher = BOHBSearcher()
    assert searcher.n_min(SPACE) == 3  # two parameters (the fixed one is no dimension), plus one
    assert searcher.model_level(SPACE, low_and_high(3)) == 2
    assert searcher.model_level(SPACE, low_and_high(2)) == 1  # two results at level 2: too few
    assert searcher.model_level(SPACE, low_and_high(0)[:2]) is None  # no level has three
    assert BOHBSearcher(min_points_in_model=2).model_level(SPACE, low_and_high(2)) == 2


def test_non_finite_results_do_not_count_toward_the_minimum() -> None:
    history = low_and_high(3)
    assert 2 in history[8].rung_values  # one of the three that reached level 2: it diverges there
    history[8] = rec(8, 8.5 / 12, {0: 0.1, 1: 0.1, 2: math.nan}, state="failed")
    assert BOHBSearcher().model_level(SPACE, history) == 1


def test_the_suggestion_follows_the_chosen_budget() -> None:
    """Level 2 says large x is good, levels 0-1 say small x: the point moves with the budget."""
    searcher = BOHBSearcher(random_fraction=0.0)

    def median_x(history: list[TrialRecord]) -> float:
        return statistics.median(
            float(searcher.suggest(SPACE, history, seed=7, index=100 + i)["x"])  # type: ignore[arg-type]
            for i in range(15))

    assert median_x(low_and_high(6)) > 0.6
    assert median_x(low_and_high(2)) < 0.4  # level 2 has too few results: level 1's density


def test_trials_without_rung_values_count_at_the_full_budget() -> None:
    history = low_and_high(0)  # levels 0 and 1 only
    history += [TrialRecord(index=20 + i, params={"x": x, "y": 0.5, "tag": "a"}, value=(x - 0.9) ** 2)
                for i, x in enumerate((0.2, 0.6, 0.9))]
    assert BOHBSearcher().model_level(SPACE, history) == math.inf


def test_pending_and_other_space_trials_are_ignored() -> None:
    history = low_and_high(2)
    history.append(rec(30, 0.5, {}, state="pending"))
    history.append(TrialRecord(index=31, params={"z": 1.0}, value=0.0, rung_values={2: 0.0}))
    assert BOHBSearcher().model_level(SPACE, history) == 1


def test_random_fraction() -> None:
    """A uniform draw with probability ``random_fraction``; else the model's point."""
    seed = run_seed()
    history = low_and_high(6)
    uniform = BOHBSearcher(random_fraction=1.0)
    n = 300
    for fraction, low, high in ((0.0, 0, 0), (1 / 3, n / 3 - 4 * 8.2, n / 3 + 4 * 8.2), (1.0, n, n)):
        searcher = BOHBSearcher(random_fraction=fraction)
        same = sum(
            searcher.suggest(SPACE, history, seed=seed, index=i)
            == uniform.suggest(SPACE, history, seed=seed, index=i)
            for i in range(n))
        print(f"random_fraction {fraction:.3f}: {same} of {n} uniform")
        assert low <= same <= high  # 1/3: within four standard deviations of 100


def test_no_model_means_a_uniform_draw() -> None:
    seed = run_seed()
    history = low_and_high(0)[:2]
    for i in range(5):
        assert BOHBSearcher(random_fraction=0.0).suggest(SPACE, history, seed=seed, index=i) == \
            BOHBSearcher(random_fraction=1.0).suggest(SPACE, history, seed=seed, index=i)


def test_deterministic_and_json() -> None:
    seed = run_seed()
    history = low_and_high(4)
    searcher = searcher_from_json({"kind": "bohb", "top_fraction": 0.2})
    assert isinstance(searcher, BOHBSearcher) and searcher.top_fraction == 0.2
    again = searcher_from_json(searcher.model_dump(mode="json"))
    for i in range(20):
        a = searcher.suggest(SPACE, history, seed=seed, index=i)
        assert a == again.suggest(SPACE, history, seed=seed, index=i)
        assert 0 <= a["x"] <= 1 and a["tag"] == "a"  # type: ignore[operator]
    maximize = [searcher.suggest(SPACE, history, seed=seed, index=i, direction="maximize")
                for i in range(20)]
    assert maximize != [searcher.suggest(SPACE, history, seed=seed, index=i) for i in range(20)]


def test_bohb_pair_uses_every_hyperband_bracket() -> None:
    searcher, scheduler = bohb(1, 81, eta=3, random_fraction=0.25)
    assert searcher.random_fraction == 0.25
    assert scheduler.budgets() == [1, 3, 9, 27, 81] and scheduler.brackets == 4
    table = scheduler.new_table()
    assert [[r.budget for r in b.rungs] for b in table.brackets][1:3] == [[3, 9, 27, 81], [9, 27, 81]]


def test_rung_records_key_values_by_level() -> None:
    """Rung ``k`` of bracket ``b`` is level ``b + k``; unscheduled records serialize as before."""
    r = rung_record(3, {"x": 0.5}, [0.4, 0.2], running=True, bracket=2)
    assert (r.state, r.value, r.rung_values) == ("complete", 0.2, {2: 0.4, 3: 0.2})
    assert rung_record(3, {"x": 0.5}, [], running=False).rung_values == {}
    row = TrialRow(index=1, params={"x": 0.5}, bracket=1, rung=1, rung_values=[0.3, 0.1],
                   rung_seqs=[0, 4], state="training")
    assert row.record().rung_values == {1: 0.3, 2: 0.1}
    plain = TrialRow(index=1, params={"x": 0.5}, state="done", value=0.25).record()
    assert plain.model_dump_json() == '{"index":1,"params":{"x":0.5},"state":"complete","value":0.25}'
    back = TrialRecord.model_validate_json(r.model_dump_json())
    assert back == r


def _ladder(searcher: BOHBSearcher, seed: int, n_trials: int) -> list[tuple[float | None, int | None]]:
    """An ASHA ladder on a 2-D problem; at each new trial, the level BOHB fitted on and the one
    counted from the rung table itself (the largest budget with at least three results)."""
    sched = AshaScheduler(min_budget=1, max_budget=27, eta=3, brackets=3)
    table = sched.new_table()
    params: dict[str, dict] = {}
    levels: list[tuple[float | None, int | None]] = []

    def value(p: dict, budget: int) -> float:
        return (p["x"] - 0.3) ** 2 + (p["y"] - 0.6) ** 2 + 0.5 * p["x"] * (math.sqrt(27 / budget) - 1)

    def history() -> list[TrialRecord]:
        out = []
        for tid, p in params.items():
            b = table.trial_bracket[tid]
            vals = [r.results[tid] for r in table.brackets[b].rungs if tid in r.results]
            out.append(rung_record(int(tid[1:]), p, vals, running=False, bracket=b))
        return out

    while table.n_trials < n_trials:
        d = sched.next(table)
        if d.action == "start":
            tid = f"t{table.n_trials}"
            h = history()
            counts = {budget: 0 for budget in sched.budgets()}
            for bracket in table.brackets:
                for rung in bracket.rungs:
                    counts[rung.budget] += len(rung.results)
            enough = [k for k, budget in enumerate(sched.budgets()) if counts[budget] >= 3]
            levels.append((searcher.model_level(SPACE, h), max(enough) if enough else None))
            params[tid] = dict(searcher.suggest(SPACE, h, seed=seed, index=table.n_trials))
            table.start(tid, d.bracket)
            table.report(tid, 0, value(params[tid], d.budget))
        else:
            assert d.action == "promote" and d.trial_id is not None
            table.promote(d.trial_id, d.rung - 1)
            table.report(d.trial_id, d.rung, value(params[d.trial_id], d.budget))
    return levels


@pytest.mark.parametrize("n_trials", [80])
def test_models_move_to_larger_budgets_as_results_come_in(n_trials: int) -> None:
    """In a Hyperband ladder the level is the largest budget with d + 1 results in the rung table
    (records built by ``rung_record``, as a sweep builds them); larger budgets take over."""
    seed = run_seed()
    levels = _ladder(BOHBSearcher(), seed, n_trials)
    assert [got for got, _ in levels] == [want for _, want in levels]
    fitted = [lv for lv, _ in levels if lv is not None]
    print("levels", fitted[:5], "...", fitted[-5:])
    assert levels[0][0] is None and fitted == sorted(fitted)  # results accumulate: it never falls
    assert fitted[0] < 3 and fitted[-1] == 3  # the full budget (27) takes over


def test_a_scheduled_sweeps_plan_gives_bohb_the_rung_values() -> None:
    """``plan_next`` (the PLAN activity) tells BOHB each row's values by level, brackets included."""
    from temporal_ml.activities.plan import PlanRequest, PlanRow, plan_next

    space = SearchSpace({"hparams.x": Float(0, 1), "hparams.y": Float(0, 1)})
    rows = []
    for i in range(12):
        x, bracket = (i + 0.5) / 12, i % 2
        values = [(x - 0.2) ** 2 + 0.1 * k for k in range(2 if i < 8 else 1)]
        rows.append(PlanRow(index=i, params={"hparams.x": x, "hparams.y": 0.5}, state="done",
                            bracket=bracket, rung=len(values) - 1, rung_values=values,
                            rung_seqs=list(range(2 * i, 2 * i + len(values)))))
    searcher = BOHBSearcher(random_fraction=0.0)
    req = PlanRequest(scheduler=AshaScheduler(min_budget=1, max_budget=27, eta=3, brackets=3),
                      searcher=searcher, space=space, seed=3, direction="minimize", rows=rows,
                      next_index=12, max_trials=100, slots=8, results_seen=24)
    start = next(a for a in plan_next(req).actions if a.action == "start")
    history = [r.record() for r in rows]
    assert history[1].rung_values == {1: rows[1].rung_values[0], 2: rows[1].rung_values[1]}
    assert searcher.model_level(space, history) == 2  # bracket 1's second rung: level 2
    assert start.params == searcher.suggest(space, history, seed=3, index=12)
    assert searcher.model_level(space, [h.model_copy(update={"rung_values": {}}) for h in history]) \
        == math.inf  # without the levels it would rank the mixed budgets as one
