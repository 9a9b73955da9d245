"""The worker's rung index (:mod:`temporal_ml.activities._rung_index`) kept as columns.

The plan's decisions over the index are checked against the old in-state rung table in
``test_plan.py``; these tests check the index itself: rows put over it and taken out again leave
every column, rank and count as they were; the table it hands the plan reads as the dicts a table
kept in state holds; the rows come back as they were put; and it costs a bounded number of bytes a
row (tracemalloc: a count, not a timing).

Randomised tests print their seed (``seed N``); ``TML_TEST_SEED=N`` reproduces a failure.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import random
import tracemalloc
from typing import Any

import pytest

from temporal_ml.activities._rung_index import RungIndex, WrittenRow
from temporal_ml.activities.plan import PlanRow
from temporal_ml.search import AshaScheduler, Direction, RungTable
from temporal_ml.sweeps import TrialRow

ASHA2 = AshaScheduler(min_budget=1, max_budget=27, eta=3, brackets=2)  # rungs 1/3/9/27 and 3/9/27
STATES = ["training", "evaluating", "done", "failed", "stopped"]


def random_row(rng: random.Random, index: int, seq: list[int]) -> TrialRow:
    """A row of a scheduled sweep in any state: NaN and infinite results, a PBT member's missing
    result (seq -1), params of several types, checkpoints measured, deleted or not."""
    bracket = rng.randrange(2)
    n = rng.randrange(0, 4 - bracket + 1)
    values = [rng.choice([rng.random(), rng.random(), math.nan, math.inf, -math.inf, 0.5]) for _ in range(n)]
    seqs = []
    for _ in range(n):
        seq[0] += 1
        seqs.append(-1 if rng.random() < 0.05 else seq[0])
    state = rng.choice(STATES)
    rung = min(n if state in ("training", "evaluating") else max(n - 1, 0), 3 - bracket)
    params: dict[str, Any] = {"hparams.lr": rng.random(), "hparams.layers": rng.randint(1, 4)}
    if rng.random() < 0.2:
        params["hparams.act"] = rng.choice(["relu", "gelu"])
    checkpointed = rng.random() < 0.8
    return TrialRow(index=index, params=params, state=state, bracket=bracket, rung=rung,  # type: ignore[arg-type]
                    rung_values=values, rung_seqs=seqs, step=rng.choice([0, 1, 3, 9, 27]),
                    checkpoint_uri="file:///ckpt" if checkpointed else None,
                    model_sha256="ab" * 32 if checkpointed else None,
                    checkpoint_bytes=rng.randrange(0, 10**6), deleted=rng.random() < 0.3)


def nan_safe(x: Any) -> Any:
    """``x`` with each NaN as the string ``"nan"`` (NaN is not equal to itself)."""
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, dict):
        return {k: nan_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [nan_safe(v) for v in x]
    return x


def snapshot(index: RungIndex) -> Any:
    """Everything the plan reads of an index (NaN-safe)."""
    table = index.table(in_report_order=True)
    return nan_safe({
        "rows": {i: (r.model_dump() if isinstance(r, PlanRow) else dataclasses.asdict(r))
                 for i, r in index.rows.items()},
        "results": [[list(r.results.items()) for r in b.rungs] for b in table.brackets],
        "ranked": [[table.ranking(b, k) for k in range(len(br.rungs))] for b, br in enumerate(table.brackets)],
        "promoted": [[sorted(r.promoted) for r in b.rungs] for b in table.brackets],
        "running": [[sorted(r.running) for r in b.rungs] for b in table.brackets],
        "brackets": dict(table.trial_bracket), "running_rows": sorted(index.running_rows),
        "counts": (index.complete, index.failed, index.pending), "best_done": index.best_done(),
    })


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_rows_put_over_the_index_and_taken_out_leave_it_as_it_was(random_seed: int, direction: Direction) -> None:
    """Written rows, then held rows put over them (replacing some, adding others) and taken out
    again: the index reads exactly as before, and as an index built from the rows in one go (bulk
    and one by one agree). With the held rows on, it reads as an index of the rows they make."""
    rng = random.Random(random_seed)
    seq = [0]
    written = [WrittenRow.of(random_row(rng, i, seq), part=i // 10) for i in range(rng.randrange(50, 300))]
    index = RungIndex(ASHA2, direction)
    for k in range(0, len(written), 10):
        index.put_all(written[k:k + 10])
    one_go = RungIndex(ASHA2, direction)
    one_go.put_all(written)
    before = snapshot(index)
    assert before == snapshot(one_go)
    for _ in range(5):
        held = [PlanRow.of(random_row(rng, i, seq))
                for i in rng.sample(range(len(written) + 20), rng.randrange(1, 80))]
        restore = index.overlay(held)
        with_held = {r.index: r for r in written} | {r.index: r for r in held}
        expected = RungIndex(ASHA2, direction)
        for row in with_held.values():
            expected.put(row)
        assert snapshot(index) == snapshot(expected)
        restore()
        assert snapshot(index) == before


def test_the_plans_table_reads_as_the_dicts_of_a_table_in_state(random_seed: int) -> None:
    """The plan's table reads results and brackets from the columns: the same keys, values and
    membership as the table's dicts (rank order rather than report order); a trial the plan starts
    joins its brackets, not the index's."""
    rng = random.Random(random_seed)
    seq = [0]
    index = RungIndex(ASHA2, "minimize")
    index.put_all([WrittenRow.of(random_row(rng, i, seq), part=0) for i in range(120)])
    live, kept = index.table(), index.table(in_report_order=True)
    for b, (x, y) in enumerate(zip(live.brackets, kept.brackets, strict=True)):
        for k, (p, q) in enumerate(zip(x.rungs, y.rungs, strict=True)):
            assert nan_safe(dict(p.results)) == nan_safe(dict(q.results)) and len(p.results) == len(q.results)
            assert list(p.results) == live.ranking(b, k)
            assert all(name in p.results for name in q.results)
            assert "t9999" not in p.results and 7 not in p.results  # type: ignore[comparison-overlap]
    assert dict(live.trial_bracket.items()) == kept.trial_bracket and len(live.trial_bracket) == 120
    assert sorted(live.trial_bracket.values()) == sorted(kept.trial_bracket.values())
    live.start("t0120", 1)
    assert live.trial_bracket["t0120"] == 1 and live.n_trials == 121 and "t0120" in live.trial_bracket
    with pytest.raises(ValueError, match="already in the table"):
        live.start("t0003", 0)
    assert index.table().n_trials == 120  # (the index is left as it was)
    assert isinstance(kept, RungTable) and isinstance(kept.trial_bracket, dict)


def test_written_rows_come_back_as_they_were_put() -> None:
    """A written row comes back equal, its names shared; params of any JSON type keep their type
    (an int stays an int in a column of floats); an index put again replaces the row."""
    rows = [TrialRow(index=0, params={"a": 0.5, "b": 2}, state="done", rung_values=[0.1], rung_seqs=[0]),
            TrialRow(index=1, params={"a": 1, "b": 2.5, "c": [1, "x"]}, state="failed"),
            TrialRow(index=2, params={"a": -0.0, "b": True}, state="training", rung=1, rung_values=[math.inf],
                     rung_seqs=[1], checkpoint_uri="file:///c", model_sha256="ab" * 32, checkpoint_bytes=7)]
    index = RungIndex(ASHA2, "maximize")
    kept = [WrittenRow.of(r, part=3) for r in rows]
    index.put_all(kept)
    assert [index.rows[i] for i in range(3)] == kept
    assert [index.rows[i].params for i in range(3)] == [r.params for r in rows]
    assert type(index.rows[1].params["a"]) is int and type(index.rows[0].params["a"]) is float
    assert math.copysign(1, index.rows[2].params["a"]) == -1 and index.rows[2].params["b"] is True
    again = WrittenRow.of(rows[0].model_copy(update={"rung_values": [0.1, 0.3], "rung_seqs": [0, 5], "rung": 1}), 4)
    index.put(again)
    assert index.rows[0] == again and len(index.rows) == 3 and 3 not in index.rows
    assert index.table().brackets[0].rungs[1].results == {"t0000": 0.3}


def test_the_index_costs_under_400_bytes_a_written_row() -> None:
    """10,000 written rows (two params, one to three rung results each): what the index keeps, as
    tracemalloc counts it, is under 400 bytes a row (0.26 KB measured; a Python object per row and
    per rank key cost 0.84 KB)."""
    rng = random.Random(0)
    rows = []
    for i in range(10_000):
        n = rng.choice([1, 1, 1, 2, 3])
        rows.append(WrittenRow.of(TrialRow(
            index=i, params={"hparams.x": rng.random(), "hparams.lr": rng.random()}, state="done", rung=n - 1,
            rung_values=[rng.random() for _ in range(n)], rung_seqs=[rng.randrange(10**6) for _ in range(n)],
            step=[1, 3, 9][n - 1], checkpoint_uri="file:///x", model_sha256="a" * 64), part=i // 500))
    parts = [rows[k:k + 500] for k in range(0, len(rows), 500)]
    del rows
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot()
        index = RungIndex(AshaScheduler(min_budget=1, max_budget=9, eta=3), "minimize")
        for part in parts:
            index.put_all(part)
        parts.clear()  # (the rows put are the caller's: only what the index keeps counts)
        gc.collect()
        kept = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(start, "filename"))
    finally:
        tracemalloc.stop()
    assert len(index.rows) == 10_000
    print(f"\nthe rung index keeps {kept / 10_000:.0f} B a written row")
    assert kept / 10_000 < 400
