"""Every payload a sweep sends stays under 512 KB at 100,000 trials (DESIGN promise 7).

A synthetic sweep state at the largest size the inputs allow (100,000 trials, ``MAX_CONCURRENCY``
running at once (``MAX_SCHEDULED_CONCURRENCY`` with a scheduler),
a part of finished rows not yet written, every other row in the results table, a full queue) is
serialised with the library's data converter exactly as the workflow would send it: the input and the
continue-as-new input, every query and update answer, the table-part activity input, a child's input
and the result.

The same with a scheduler (ASHA): the rows carry their rungs and the scheduler's audit lines, the
state a summary of the rungs and the latest decisions, and the sweep sends the ``PLAN`` activity
the rows it holds and gets back at most ``MAX_ACTIONS`` actions and ``MAX_DELETIONS`` deletions,
each with the row of a trial it had written."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from temporal_ml.activities.plan import (
    MAX_ACTIONS,
    MAX_DELETIONS,
    Deletion,
    PlanAction,
    PlanRequest,
    PlanResult,
    PlanRow,
)
from temporal_ml.activities.sweep import SuggestResult, SweepPartRequest
from temporal_ml.converter import data_converter
from temporal_ml.search import AshaScheduler, Categorical, Float, Int, SearchSpace, TPESearcher
from temporal_ml.sweeps import (
    LEADERBOARD_ROWS,
    MAX_CONCURRENCY,
    MAX_HELD_FAILED,
    MAX_SCHEDULED_CONCURRENCY,
    PAGE_ROWS,
    PART_ROWS,
    RECENT_DECISIONS,
    TOP_ROWS,
    RungCount,
    ScheduledSummary,
    SuggestionAudit,
    SweepInput,
    SweepState,
    TableSummary,
    TrialRow,
    trial_name,
)
from temporal_ml.types import SnapshotRef, TrainConfig
from temporal_ml.workflows._controls import MAX_QUEUED, MAX_QUEUED_BYTES
from temporal_ml.workflows.sweep import SUGGEST_AHEAD, SweepWorkflow
from temporal_ml.workflows.training import TrainingInput

LIMIT = 512 * 1024
N = 100_000
RUNNING = MAX_CONCURRENCY
SCHEDULED_RUNNING = MAX_SCHEDULED_CONCURRENCY
RUN_ID = "a-sweep-with-a-long-descriptive-name-2026-12-06-lr-and-warmup"


def _size(value: object) -> int:
    [payload] = data_converter.payload_converter.to_payloads([value])
    return payload.ByteSize()


def _row(k: int, rng: random.Random, state: str) -> TrialRow:
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    done = state != "training"
    return TrialRow(
        index=k, state=state,  # type: ignore[arg-type]
        params={"hparams.lr": rng.random() * 0.01, "hparams.warmup": rng.randint(0, 500),
                "hparams.dropout": rng.random() * 0.5, "hparams.hidden": rng.choice([64, 128, 256]),
                "hparams.weight_decay": rng.random() * 0.1},
        value=rng.random() if state == "done" else None,
        metrics={"accuracy": rng.random(), "loss": rng.random(), "macro_f1": rng.random(),
                 "examples": 872.0} if done else {},
        step=rng.randint(0, 5000), max_steps=5000, loss=rng.random(),
        error="diverged: loss nan at step 123" if state == "failed" else None,
        result_seq=k if done else None,
        checkpoint_uri=f"s3://ml-bucket/team/checkpoints/{RUN_ID}--t{k:04d}--train/step-00005000" if done else None,
        model_sha256="ab" * 32 if done else None, resumes=1, started=now, trained=now if done else None,
        finished=now if done else None,
        audit=SuggestionAudit(searcher="tpe", results_seen=k, complete=k // 2, failed=k // 10, pending=999),
    )


@pytest.fixture(scope="module")
def sweep() -> SweepWorkflow:
    rng = random.Random(7)
    space = SearchSpace({"hparams.lr": Float(1e-5, 1e-2, log=True), "hparams.warmup": Int(0, 500),
                         "hparams.dropout": Float(0.0, 0.5), "hparams.hidden": Categorical([64, 128, 256]),
                         "hparams.weight_decay": Float(0.0, 0.1)})
    base = TrainConfig(trainable="bert", max_steps=5000, hparams={"lr": 1e-3, "warmup": 0, "dropout": 0.1,
                                                                  "hidden": 128, "weight_decay": 0.0})
    snapshot = SnapshotRef(id="c" * 64, root="s3://ml-bucket/team/snapshots", splits={"train": 67349, "dev": 872})
    inp = SweepInput(base=base, space=space, searcher=TPESearcher(), n_trials=N, max_concurrency=RUNNING,
                     snapshot=snapshot, run_id=RUN_ID, table_root="s3://ml-bucket/team/tables")
    first_running = N - RUNNING
    unwritten = [_row(k, rng, "done") for k in range(first_running - PART_ROWS + 1, first_running)]
    written = first_running - len(unwritten)
    top = sorted((_row(k, rng, "done") for k in range(TOP_ROWS)), key=lambda r: -float(r.value or 0))
    state = SweepState(
        rows=[*unwritten, *(_row(k, rng, "training") for k in range(first_running, N))],
        n_started=N, n_trials=N, max_concurrency=RUNNING, results_seen=first_running,
        queue=[{"hparams.lr": 0.001 * i, "hparams.warmup": i, "hparams.dropout": 0.1,
                "hparams.hidden": 128, "hparams.weight_decay": 0.01, "note": "x" * 500} for i in range(MAX_QUEUED)],
        table=TableSummary(uri=f"s3://ml-bucket/team/tables/{RUN_ID}", parts=["f" * 64] * (written // PART_ROWS),
                           rows=written, n_done=written - 2000, n_failed=1500, n_stopped=500, top=top),
        held=_row(N, rng, "training"),
        held_more=[_row(N + k, rng, "training") for k in range(1, SUGGEST_AHEAD)],  # points asked ahead
    )
    wf = SweepWorkflow()
    wf._inp, wf._s, wf._run_id = inp, state, RUN_ID  # noqa: SLF001 - the workflow's own state, synthetic
    wf._live = {r.index: r for r in state.rows}  # noqa: SLF001
    wf._running = RUNNING  # noqa: SLF001
    return wf


def test_the_state_is_what_a_sweep_of_100000_trials_holds(sweep: SweepWorkflow) -> None:
    s = sweep._s  # noqa: SLF001
    assert s.n_started == N and s.table.rows + len(s.rows) == N
    assert len(s.rows) == RUNNING + PART_ROWS - 1 and len(s.table.top) == TOP_ROWS
    assert len(s.queue) == MAX_QUEUED and len(s.table.parts) == s.table.rows // PART_ROWS


def test_the_queue_is_bounded_in_count_and_bytes(sweep: SweepWorkflow) -> None:
    from temporalio.exceptions import ApplicationError

    with pytest.raises(ApplicationError, match="configs .* wait already"):
        sweep._validate_enqueue({"hparams.lr": 0.001, "hparams.warmup": 1, "hparams.dropout": 0.1,  # noqa: SLF001
                                 "hparams.hidden": 64, "hparams.weight_decay": 0.0})  # the update's validator
    assert MAX_QUEUED_BYTES <= 64 * 1024


def test_every_payload_a_sweep_of_100000_trials_sends_is_under_512_kb(sweep: SweepWorkflow) -> None:
    inp, s = sweep._inp, sweep._s  # noqa: SLF001
    assert inp is not None
    running = next(r for r in s.rows if r.state == "training")
    payloads = {
        "input": inp,
        # no drain (NO_DRAIN_PATCH): the running trials' rows go on with the finished rows not yet
        # written, the queue, the held suggestions and the table's summary
        "continue-as-new input": inp.model_copy(update={"carried": s}),
        "sweep_status": sweep.sweep_status(),
        "trials (a page)": sweep.trials(),
        "leaderboard": sweep.leaderboard(),
        "pause/resume/stop answer": sweep.sweep_status(),
        "stop_trial answer": running.model_copy(),
        "table part": SweepPartRequest(run_id=sweep._run_id, table_root=inp.table_root, index=len(s.table.parts),  # noqa: SLF001
                                       rows=[r.model_dump(mode="json") for r in s.rows[:PART_ROWS]]),
        "suggestion (recorded)": SuggestResult(params=dict(running.params)),
        "training input": TrainingInput(config=inp.space.apply(inp.base, running.params),
                                        snapshot=inp.snapshot, run_id=f"{RUN_ID}--t99999--train"),
        "result": sweep._result(inp, inp.snapshot, s.table.uri),  # type: ignore[arg-type]  # noqa: SLF001
    }
    sizes = {name: _size(value) for name, value in payloads.items()}
    print("\n" + "\n".join(f"{name}: {size / 1024:.1f} KB" for name, size in sizes.items()))
    assert max(sizes.values()) < LIMIT, sizes
    assert len(sweep.leaderboard()) <= LEADERBOARD_ROWS and len(sweep.trials()) <= 200


# -- with a scheduler ------------------------------------------------------------------------------

#: Rungs 10, 30, 90, 270, 810, 5000 (brackets from the first three).
SCHEDULER = AshaScheduler(min_budget=10, max_budget=5000, eta=3, brackets=3)


def _decisions(index: int, bracket: int, rung: int) -> list[str]:
    """The audit lines of a trial started in ``bracket`` and promoted up to ``rung``, as the
    scheduler writes them (five-digit trial numbers and rung sizes)."""
    budgets = SCHEDULER.budgets()[bracket:]
    lines = [f"no trial is in the top 1/3 of its rung unpromoted: start a new trial in bracket {bracket} "
             f"at budget {budgets[0]}"]
    lines += [f"trial {trial_name(index)} ranks 12345 of 33333 at rung {k} (budget {budgets[k]}); the top "
              f"1/3 (11111) go on: continue it to budget {budgets[k + 1]}" for k in range(rung)]
    return lines


def _notes(bracket: int, rung: int) -> list[str]:
    """The short lines a trial's row keeps of the decisions that started and promoted it up to ``rung``."""
    budgets = SCHEDULER.budgets()[bracket:]
    return [f"started in bracket {bracket}: {budgets[0]} steps"] + [
        f"rung {k}: ranked 12345 of 33333, the top 11111 go on: to {budgets[k + 1]} steps" for k in range(rung)]


def _scheduled_row(k: int, rng: random.Random, state: str, rung: int) -> TrialRow:
    """A scheduled trial toward (``training``: training toward; else reached) ``rung`` of its bracket.
    A promoted trial that trains keeps what it had at its last rung (value, metrics, checkpoint)."""
    bracket = k % SCHEDULER.brackets
    budgets = SCHEDULER.budgets()[bracket:]
    reached = rung if state == "training" else rung + 1  # rungs with a result
    row = _row(k, rng, "training" if reached == 0 else "failed" if state == "failed" else "done")
    if state == "training":  # a promoted trial keeps its last rung's checkpoint, not its metrics and times
        row = row.model_copy(update={"metrics": {}, "trained": None, "finished": None})
    values = [rng.random() for _ in range(reached)]
    return row.model_copy(update={
        "state": state, "bracket": bracket, "rung": rung, "rung_values": values,
        "rung_seqs": [10 * k + j for j in range(reached)], "decisions": _notes(bracket, rung),
        "max_steps": budgets[rung], "step": budgets[reached - 1] if reached else 0,
        "value": values[-1] if values and state == "done" else None,
        "checkpoint_bytes": rng.randint(10**8, 10**9) if reached else 0})


def _top_rung(k: int) -> int:
    return len(SCHEDULER.budgets()) - 1 - k % SCHEDULER.brackets


def _some_rung(k: int) -> int:
    """Trials spread evenly over their bracket's rungs (each rung of ASHA takes about the same compute)."""
    return (k // SCHEDULER.brackets) % (_top_rung(k) + 1)


@pytest.fixture(scope="module")
def scheduled(sweep: SweepWorkflow) -> SweepWorkflow:
    """The 100,000-trial sweep with a scheduler: 1,000 trials training (toward every rung: each rung
    of ASHA takes about the same compute), a part of finished rows not yet written, the latest
    failed rows it keeps for ``retry_failed``, a full queue, a full summary of the rungs."""
    rng = random.Random(11)
    base, s0 = sweep._inp, sweep._s  # noqa: SLF001
    assert base is not None
    inp = base.model_copy(update={"scheduler": SCHEDULER, "checkpoint_budget_bytes": 10**12,
                                  "max_concurrency": SCHEDULED_RUNNING})
    first_running = N - SCHEDULED_RUNNING
    running = [_scheduled_row(k, rng, "training", _some_rung(k)) for k in range(first_running, N)]
    unwritten = [_scheduled_row(k, rng, "done", _some_rung(k))
                 for k in range(first_running - PART_ROWS + 1, first_running)]
    failed = [_scheduled_row(k, rng, "failed", _some_rung(k))
              for k in range(first_running - PART_ROWS - MAX_HELD_FAILED + 1, first_running - PART_ROWS + 1)]
    rows = sorted([*failed, *unwritten, *running], key=lambda r: r.index)
    written = N - len(rows)
    top = [_scheduled_row(k, rng, "done", _top_rung(k)) for k in range(TOP_ROWS)]
    lines = [line for k in range(RECENT_DECISIONS) for line in _decisions(N - 1 - k, 0, _top_rung(0))][-RECENT_DECISIONS:]
    summary = ScheduledSummary(
        rungs=[RungCount(bracket=b, rung=r, budget=budget, results=33333 // 3**r, promoted=11111 // 3**r,
                         running=RUNNING // len(SCHEDULER.budgets())) for b in range(SCHEDULER.brackets)
               for r, budget in enumerate(SCHEDULER.budgets()[b:])],
        decisions=lines, deleted=90_000, freed_bytes=9 * 10**13, checkpoint_bytes=10**12,
        peak_checkpoint_bytes=10**12, budget_exceeded=True)
    state = s0.model_copy(update={
        "rows": rows, "held": None, "held_more": [], "results_seen": 5 * N,
        "table": TableSummary(uri=s0.table.uri, parts=["f" * 64] * (written // PART_ROWS), rows=written,
                              n_done=written - 2000, n_failed=1500, n_stopped=500, top=top),
        "scheduled": summary})
    wf = SweepWorkflow()
    wf._inp, wf._s, wf._run_id = inp, state, RUN_ID  # noqa: SLF001 - the workflow's own state, synthetic
    wf._live = {r.index: r for r in state.rows}  # noqa: SLF001
    wf._running = SCHEDULED_RUNNING  # noqa: SLF001
    return wf


def test_the_scheduled_state_is_what_a_sweep_of_100000_trials_holds(scheduled: SweepWorkflow) -> None:
    s = scheduled._s  # noqa: SLF001
    assert s.n_started == N and s.table.rows + len(s.rows) == N
    assert sum(r.state == "training" for r in s.rows) == SCHEDULED_RUNNING
    assert len(s.rows) == SCHEDULED_RUNNING + PART_ROWS - 1 + MAX_HELD_FAILED
    assert {r.rung for r in s.rows if r.state == "training"} == set(range(len(SCHEDULER.budgets())))
    assert s.scheduled is not None and len(s.scheduled.decisions) == RECENT_DECISIONS
    assert SCHEDULER.budgets() == [10, 30, 90, 270, 810, 5000] and len(s.scheduled.rungs) == 6 + 5 + 4


@pytest.fixture(scope="module")
def scheduled_sizes(scheduled: SweepWorkflow) -> dict[str, int]:
    """The bytes of every payload a scheduled sweep sends, at the largest state (printed)."""
    inp, s = scheduled._inp, scheduled._s  # noqa: SLF001
    assert inp is not None and inp.scheduler is not None and s.scheduled is not None
    written = [_scheduled_row(k, random.Random(k), "done", _top_rung(k) - 1) for k in range(MAX_ACTIONS + MAX_DELETIONS)]
    # what ScheduledSweep._plan sends: every row held, the table's parts, the queue, the trials to re-run
    request = PlanRequest(
        scheduler=inp.scheduler, searcher=inp.searcher, space=inp.space, seed=inp.seed, direction=inp.direction,
        rows=[PlanRow.of(r) for r in s.rows], table_uri=s.table.uri, table_parts=list(s.table.parts),
        next_index=s.n_started, max_trials=s.n_trials, slots=MAX_ACTIONS, may_start=True, queued=list(s.queue),
        results_seen=s.results_seen, protected=[r.index for r in s.rows if r.state == "failed"],
        delete_unpromotable=inp.delete_unpromotable, checkpoint_budget_bytes=inp.checkpoint_budget_bytes,
        checkpoint_bytes=s.scheduled.checkpoint_bytes)
    # the largest answer: every action a promotion of a written trial (its row comes back), every
    # deletion one of a written trial, the rung counts
    result = PlanResult(
        actions=[PlanAction(action="promote", index=r.index, bracket=r.bracket, rung=r.rung + 1,  # type: ignore[operator]
                            budget=5000, reason=_decisions(r.index, r.bracket, _top_rung(r.index))[-1],
                            params=r.params, row=r) for r in written[:MAX_ACTIONS]],
        delete=[Deletion(index=r.index, row=r, reason=f"{r.name} can no longer be promoted from rung {r.rung}: "
                         "its checkpoints go") for r in written[MAX_ACTIONS:]],
        more_deletions=True, rungs=s.scheduled.rungs, budget_exceeded=True)
    assert len(result.actions) == MAX_ACTIONS and all(a.row is not None for a in result.actions)
    assert len(result.delete) == MAX_DELETIONS and all(d.row is not None for d in result.delete)
    swept = scheduled._result(inp, inp.snapshot, s.table.uri)  # type: ignore[arg-type]  # noqa: SLF001
    assert swept.scheduled == s.scheduled and len(scheduled.trials()) == PAGE_ROWS
    payloads = {
        "input": inp,
        # no drain (NO_DRAIN_PATCH): the running trials' rows go on with the state
        "continue-as-new input": inp.model_copy(update={"carried": s}),
        "sweep_status": scheduled.sweep_status(),
        "trials (a page)": scheduled.trials(),
        "table part": SweepPartRequest(run_id=RUN_ID, table_root=inp.table_root, index=len(s.table.parts),
                                       rows=[r.model_dump(mode="json") for r in s.rows[:PART_ROWS]]),
        "plan request": request,
        "plan result (the largest)": result,
        "result": swept,
    }
    sizes = {name: _size(value) for name, value in payloads.items()}
    print("\nwith a scheduler:\n" + "\n".join(f"{name}: {size / 1024:.1f} KB" for name, size in sizes.items()))
    return sizes


@pytest.mark.parametrize("name", ["input", "continue-as-new input", "sweep_status", "trials (a page)",
                                  "table part", "plan request", "plan result (the largest)", "result"])
def test_each_payload_a_scheduled_sweep_of_100000_trials_sends_is_under_512_kb(
        scheduled_sizes: dict[str, int], name: str) -> None:
    assert scheduled_sizes[name] < LIMIT, f"{name}: {scheduled_sizes[name] / 1024:.1f} KB"


def test_a_sweep_started_with_more_at_once_than_the_caps_stays_under_temporals_limit(
        sweep: SweepWorkflow, scheduled: SweepWorkflow) -> None:
    """Sweeps started before the caps (``max_concurrency`` up to 1,000) go on: their continue-as-new
    input with 1,000 running rows stays under Temporal's 2 MB payload limit."""
    rng = random.Random(3)
    for wf, row in ((sweep, lambda k: _row(k, rng, "training")),
                    (scheduled, lambda k: _scheduled_row(k, rng, "training", _some_rung(k)))):
        inp, s = wf._inp, wf._s  # noqa: SLF001
        assert inp is not None
        running = [row(k) for k in range(N - 1000, N)]
        carried = s.model_copy(update={"rows": [*(r for r in s.rows if r.state != "training"), *running],
                                       "max_concurrency": 1000})
        size = _size(inp.model_copy(update={"carried": carried, "max_concurrency": 1000}))
        print(f"\ncontinue-as-new input with 1,000 running rows: {size / 1024:.1f} KB")
        assert size < 2 * 1024 * 1024


def test_a_new_sweep_beyond_the_caps_is_refused(sweep: SweepWorkflow) -> None:
    inp = sweep._inp  # noqa: SLF001
    assert inp is not None
    fields = inp.model_dump(exclude={"carried"})
    with pytest.raises(ValueError, match=f"runs at most {MAX_CONCURRENCY} trials at once"):
        SweepInput.model_validate({**fields, "max_concurrency": MAX_CONCURRENCY + 1})
    with pytest.raises(ValueError, match=f"with a scheduler runs at most {MAX_SCHEDULED_CONCURRENCY}"):
        SweepInput.model_validate({**fields, "max_concurrency": MAX_SCHEDULED_CONCURRENCY + 1,
                                   "scheduler": SCHEDULER.model_dump()})


# -- with several objectives -----------------------------------------------------------------------

OBJECTIVES = ["accuracy", "loss", "latency_ms"]


def _multi_row(k: int, rng: random.Random, state: str, values: list[float] | None = None) -> TrialRow:
    """A row of a 3-objective sweep: ``values`` instead of ``value`` when done."""
    row = _row(k, rng, state)
    if state != "done":
        return row
    return row.model_copy(update={"value": None, "values": values or [rng.random() for _ in OBJECTIVES],
                                  "metrics": {**row.metrics, "latency_ms": rng.random() * 100}})


@pytest.fixture(scope="module")
def multi(sweep: SweepWorkflow) -> SweepWorkflow:
    """The 100,000-trial sweep with three objectives (NSGA-II): the rows carry their values, and the
    table's summary keeps a full Pareto front (``FRONT_ROWS`` rows, more left out)."""
    from temporal_ml.search import NSGAIISearcher
    from temporal_ml.sweeps import FRONT_ROWS

    rng = random.Random(13)
    base, s0 = sweep._inp, sweep._s  # noqa: SLF001
    assert base is not None
    inp = SweepInput.model_validate({**base.model_dump(exclude={"carried"}), "searcher": NSGAIISearcher().model_dump(),
                                     "objectives": OBJECTIVES, "directions": ["maximize", "minimize", "minimize"]})
    rows = [_multi_row(r.index, rng, r.state) for r in s0.rows]
    # a front: more accuracy costs loss (the held rows' accuracy, below 1, dominates none of it)
    front = [_multi_row(k, rng, "done", [1 + k / FRONT_ROWS, k / FRONT_ROWS, 1 - k / FRONT_ROWS])
             for k in range(FRONT_ROWS)]
    state = s0.model_copy(update={
        "rows": rows, "table": s0.table.model_copy(update={"top": front, "front_dropped": 5000})})
    wf = SweepWorkflow()
    wf._inp, wf._s, wf._run_id = inp, state, RUN_ID  # noqa: SLF001 - the workflow's own state, synthetic
    wf._live = {r.index: r for r in state.rows}  # noqa: SLF001
    wf._running = RUNNING  # noqa: SLF001
    return wf


def test_every_payload_of_a_multi_objective_sweep_of_100000_trials_is_under_512_kb(multi: SweepWorkflow) -> None:
    from temporal_ml.activities.sweep import SuggestRequest
    from temporal_ml.sweeps import FRONT_ROWS

    inp, s = multi._inp, multi._s  # noqa: SLF001
    assert inp is not None and inp.directions is not None
    result = multi._result(inp, inp.snapshot, s.table.uri)  # type: ignore[arg-type]  # noqa: SLF001
    assert result.best is None and result.objectives == OBJECTIVES
    assert len(result.front) == FRONT_ROWS and result.front_dropped >= 5000
    status = multi.sweep_status()
    assert status.best is None and status.front >= FRONT_ROWS + 5000 and "Pareto front" in status.summary()
    payloads = {
        "input": inp,
        "continue-as-new input": inp.model_copy(update={"carried": s}),
        "sweep_status": status,
        "trials (a page)": multi.trials(),
        "leaderboard": multi.leaderboard(),
        "table part": SweepPartRequest(run_id=RUN_ID, table_root=inp.table_root, index=len(s.table.parts),
                                       rows=[r.model_dump(mode="json") for r in s.rows[:PART_ROWS]]),
        "suggest request": SuggestRequest(searcher=inp.searcher, space=inp.space,
                                          history=[r.record() for r in s.rows], seed=inp.seed, index=s.n_started,
                                          direction=inp.search_direction, table_uri=s.table.uri,
                                          table_parts=list(s.table.parts), count=SUGGEST_AHEAD),
        "result": result,
    }
    sizes = {name: _size(value) for name, value in payloads.items()}
    print("\nwith 3 objectives:\n" + "\n".join(f"{name}: {size / 1024:.1f} KB" for name, size in sizes.items()))
    assert max(sizes.values()) < LIMIT, sizes


def test_a_single_objective_sweep_sends_nothing_new(sweep: SweepWorkflow) -> None:
    """The multi-objective fields are left out of every payload of a sweep with one objective, so
    its inputs, state, answers and result are byte for byte what they were before them."""
    import json

    from temporal_ml.activities.sweep import SuggestRequest

    inp, s = sweep._inp, sweep._s  # noqa: SLF001
    assert inp is not None
    new = {"objectives", "directions", "front", "front_dropped", "values"}

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            return set(value) | {k for v in value.values() for k in keys(v)}
        if isinstance(value, list):
            return {k for v in value for k in keys(v)}
        return set()

    for payload in (inp.model_copy(update={"carried": s}), sweep.sweep_status(), sweep.trials(),
                    sweep._result(inp, inp.snapshot, s.table.uri),  # type: ignore[arg-type]  # noqa: SLF001
                    SuggestRequest(searcher=inp.searcher, space=inp.space, history=[r.record() for r in s.rows],
                                   seed=inp.seed, index=s.n_started, direction=inp.search_direction)):
        [raw] = data_converter.payload_converter.to_payloads([payload])
        assert not keys(json.loads(raw.data)) & new, type(payload)
