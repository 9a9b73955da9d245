"""ASHA and successive halving against hand-worked rung examples; rung tables round-trip as JSON."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from temporal_ml.search import (
    AshaScheduler,
    LadderDecision,
    RungTable,
    SuccessiveHalvingScheduler,
    ladder_budgets,
)


def test_budgets() -> None:
    assert ladder_budgets(10, 90, 3) == [10, 30, 90]
    assert ladder_budgets(10, 100, 3) == [10, 30, 100]  # the last rung trains to the full budget
    assert ladder_budgets(1, 100, 3) == [1, 3, 9, 27, 100]
    assert ladder_budgets(10, 20, 3) == [10, 20]
    assert ladder_budgets(1, 16, 2) == [1, 2, 4, 8, 16]
    with pytest.raises(ValidationError, match=r"min_budget \(90\) must be less than max_budget"):
        AshaScheduler(min_budget=90, max_budget=10)
    with pytest.raises(ValidationError, match="brackets"):
        AshaScheduler(min_budget=10, max_budget=90, brackets=3)


def _apply(table: RungTable, d: LadderDecision, value: float | None = None) -> str:
    """Apply a decision the way a sweep does; report ``value`` at the new rung if given."""
    if d.action == "start":
        tid = f"t{table.n_trials}"
        table.start(tid, d.bracket)
        if value is not None:
            table.report(tid, 0, value)
        return tid
    assert d.action == "promote" and d.trial_id is not None
    table.promote(d.trial_id, d.rung - 1)
    if value is not None:
        table.report(d.trial_id, d.rung, value)
    return d.trial_id


def test_asha_hand_worked_example() -> None:
    """Rungs 1, 3, 9 with eta 3 (minimize).

    t0=5, t1=3 (rung 0 of two: top 1/3 is 0 places, so start more); t2=4 makes three results and
    t1 (best of 3) goes on at once; t3=1 makes four (1 place: t3 now ranks first, promoted) ...
    """
    sched = AshaScheduler(min_budget=1, max_budget=9, eta=3)
    table = sched.new_table()
    steps = []
    for value in (5.0, 3.0, 4.0):
        d = sched.next(table)
        assert d.action == "start" and d.budget == 1
        _apply(table, d, value)
    d = sched.next(table)
    assert (d.action, d.trial_id, d.rung, d.budget) == ("promote", "t1", 1, 3)
    assert d.reason == (
        "trial t1 ranks 1 of 3 at rung 0 (budget 1); the top 1/3 (1) go on: continue it to budget 3"
    )
    _apply(table, d)  # t1 trains from step 1 to step 3; nothing reported yet
    assert sched.next(table, may_start=False).action == "wait"
    d = sched.next(table)
    assert d.action == "start"
    _apply(table, d, 1.0)  # t3 = 1.0: rung 0 is {t0 5, t1 3, t2 4, t3 1}, quota 1, t3 first
    d = sched.next(table)
    assert (d.action, d.trial_id, d.rung) == ("promote", "t3", 1)
    assert "ranks 1 of 4" in d.reason
    _apply(table, d)
    table.report("t1", 1, 2.5)
    table.report("t3", 1, 0.5)
    # rung 1 = {t1 2.5, t3 0.5}: quota 0; rung 0 quota 1 (t3, promoted): start t4
    d = sched.next(table)
    assert d.action == "start"
    for value in (6.0, 7.0):  # t4, t5: rung 0 has 6 results, quota 2: t1 is second -> promoted already
        _apply(table, sched.next(table), value)
    d = sched.next(table)
    assert d.action == "start"  # t1 and t3 are the top 2 of rung 0, both already promoted
    _apply(table, d, 0.2)  # t6 = 0.2: rung 0 top 2 = t6, t3 -> t6 goes on
    d = sched.next(table)
    assert (d.action, d.trial_id, d.rung) == ("promote", "t6", 1)
    _apply(table, d, 0.1)
    # rung 1 = {t1 2.5, t3 0.5, t6 0.1}: quota 1 -> t6 goes to the top rung (budget 9)
    d = sched.next(table)
    assert (d.action, d.trial_id, d.rung, d.budget) == ("promote", "t6", 2, 9)
    assert "ranks 1 of 3 at rung 1 (budget 3)" in d.reason
    _apply(table, d, 0.05)
    assert table.best() == ("t6", 9, 0.05)
    steps.append(d)
    # with at most 9 trials, rung 0 promotes at most 3 and rung 1 at most 1
    # (rung 0 ranks t6 t3 t1 | t2 t0 t4 t5; rung 1 ranks t6 | t3 t1)
    dead = sched.unpromotable(table, max_trials=9)
    assert dead == [("t2", 0), ("t0", 0), ("t4", 0), ("t5", 0), ("t3", 1), ("t1", 1)]
    assert sched.unpromotable(table, max_trials=12) == [
        ("t0", 0), ("t4", 0), ("t5", 0), ("t3", 1), ("t1", 1)
    ]
    assert sched.unpromotable(table) == []  # open-ended: any rank may still go on
    table.closed = True
    d = sched.next(table)
    assert d.action == "done"
    # the table is plain data: it survives JSON (a workflow's continue-as-new) unchanged
    assert RungTable.model_validate_json(table.model_dump_json()) == table


def test_asha_maximize_and_nan() -> None:
    sched = AshaScheduler(min_budget=1, max_budget=3, eta=2)
    table = sched.new_table("maximize")
    for i, value in enumerate((0.1, float("nan"), 0.9, 0.5)):
        table.start(f"t{i}")
        table.report(f"t{i}", 0, value)
    assert table.ranking(0, 0) == ["t2", "t3", "t0", "t1"]  # NaN always last
    d = sched.next(table)
    assert (d.action, d.trial_id) == ("promote", "t2")
    # NaN survives JSON (a workflow's payloads and continue-as-new) as the string "NaN"
    again = RungTable.model_validate_json(table.model_dump_json())
    assert again.ranking(0, 0) == table.ranking(0, 0)
    assert '"NaN"' in table.model_dump_json()


def test_hyperband_brackets_round_robin() -> None:
    sched = AshaScheduler(min_budget=1, max_budget=27, eta=3, brackets=3)
    table = sched.new_table()
    starts = [sched.next(table) for _ in range(1)]
    assert [r.budget for r in table.brackets[2].rungs] == [9, 27]
    budgets = []
    for i in range(6):
        d = sched.next(table)
        assert d.action == "start"
        budgets.append(d.budget)
        _apply(table, d, float(i))
    assert budgets == [1, 3, 9, 1, 3, 9]
    assert starts[0].bracket == 0


def test_successive_halving_waits_for_the_whole_rung() -> None:
    sched = SuccessiveHalvingScheduler(min_budget=1, max_budget=9, eta=3, n_trials=9)
    assert sched.capacities() == [9, 3, 1]
    table = sched.new_table()
    values = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 5.0, 4.0]
    ids = [_apply(table, sched.next(table)) for _ in values]
    assert sched.next(table).action == "wait"  # nine started, none reported
    for tid, v in zip(ids[:-1], values[:-1], strict=True):
        table.report(tid, 0, v)
        assert sched.next(table).action == "wait"  # one still missing: no promotion yet
    table.report(ids[-1], 0, values[-1])
    promoted = []
    for _ in range(3):
        d = sched.next(table)
        assert d.action == "promote" and d.rung == 1
        promoted.append(_apply(table, d))
    assert promoted == ["t1", "t3", "t5"]  # values 1, 2, 3
    assert sched.next(table).action == "wait"
    for tid, v in zip(promoted, (0.9, 0.3, 0.5), strict=True):
        table.report(tid, 1, v)
    d = sched.next(table)
    assert (d.action, d.trial_id, d.budget) == ("promote", "t3", 9)
    assert "ranks 1 of 3 at rung 1" in d.reason
    _apply(table, d, 0.1)
    assert sched.next(table).action == "done"
    assert sorted(sched.unpromotable(table)) == sorted(
        [(t, 0) for t in ("t0", "t2", "t4", "t6", "t7", "t8")] + [("t1", 1), ("t5", 1)]
    )


def test_a_dropped_trial_does_not_stall_a_rung() -> None:
    sched = SuccessiveHalvingScheduler(min_budget=1, max_budget=3, eta=3, n_trials=3)
    table = sched.new_table()
    ids = [_apply(table, sched.next(table)) for _ in range(3)]
    table.report(ids[0], 0, 1.0)
    table.report(ids[1], 0, 2.0)
    table.drop(ids[2])  # the trial failed
    d = sched.next(table)
    assert (d.action, d.trial_id) == ("promote", "t0")
