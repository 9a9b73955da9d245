"""Every payload a sweep sends stays under 512 KB at 100,000 trials (DESIGN promise 7).

A synthetic sweep state at the largest size the inputs allow (100,000 trials, 1,000 running at once,
a part of finished rows not yet written, every other row in the results table, a full queue) is
serialised with the library's data converter exactly as the workflow would send it: the input and the
continue-as-new input, every query and update answer, the table-part activity input, a child's input
and the result."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from temporal_ml.activities.sweep import SuggestResult, SweepPartRequest
from temporal_ml.converter import data_converter
from temporal_ml.search import Categorical, Float, Int, SearchSpace, TPESearcher
from temporal_ml.sweep_types import (
    LEADERBOARD_ROWS,
    PART_ROWS,
    TOP_ROWS,
    SuggestionAudit,
    SweepInput,
    SweepState,
    TableSummary,
    TrialRow,
)
from temporal_ml.types import SnapshotRef, TrainConfig
from temporal_ml.workflows._controls import MAX_QUEUED, MAX_QUEUED_BYTES
from temporal_ml.workflows.sweep import SUGGEST_AHEAD, SweepWorkflow
from temporal_ml.workflows.training import TrainingInput

LIMIT = 512 * 1024
N = 100_000
RUNNING = 1000
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
        # a sweep continues as new once its running trials have ended: it carries the finished rows
        # not yet written, the queue, the held suggestion and the table's summary
        "continue-as-new input": inp.model_copy(update={"carried": s.model_copy(update={
            "rows": [r for r in s.rows if r.state != "training"]})}),
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
