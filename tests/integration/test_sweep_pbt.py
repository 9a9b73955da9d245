"""Population-based training on a real dev server: a sweep with :class:`PbtScheduler` trains its
population in rounds; after each, the worst member goes on from a verified copy of a better one's
checkpoint with explored params, and says so in an audit line with both trials' steps and digests.
The rounds are synchronous and their decisions depend on the values and the seed only, so a second
sweep with the same seed, whose worker is killed mid-sweep, ends with the same weights."""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState, TimeoutType
from temporalio.client import WorkflowHandle

from temporal_ml.activities.sweep import DELETE_RUN_CHECKPOINTS
from temporal_ml.client import connect
from temporal_ml.search import Float, PbtScheduler, RandomSearcher, SearchSpace
from temporal_ml.storage.checkpoints import CheckpointManager
from temporal_ml.sweeps import SweepInput, SweepResult, recompute_suggestions
from temporal_ml.types import DatasetSource, TrainConfig
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.test_sweep import start_worker

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=1, batch_size=16, checkpoint_every_steps=4,
                   log_every_steps=5, async_checkpoints=False, hparams={"step_delay": 0.05})
SPACE = SearchSpace({"hparams.lr": Float(1e-3, 1e-1, log=True), "hparams.dropout": Float(0.0, 0.3)})
PBT = PbtScheduler(perturbation_interval=6, max_budget=18, quantile=0.25)  # rounds of 6, 12 and 18 steps


def _input(run_id: str) -> SweepInput:
    return SweepInput(base=BASE, space=SPACE, searcher=RandomSearcher(), scheduler=PBT, n_trials=4,
                      max_concurrency=1, seed=5, dataset=DatasetSource(generator="blobs", params={"seed": 4}),
                      run_id=run_id, heartbeat_timeout_seconds=5, progress_every_seconds=2)


async def _result(handle: WorkflowHandle[Any, SweepResult], tmp_path: Path) -> SweepResult:
    """The sweep's result; a sweep still running after 300 s fails with its status and the workers' logs."""
    try:
        return await asyncio.wait_for(handle.result(), timeout=300)
    except TimeoutError:
        described = await handle.describe()
        pending = [(a.activity_type.name, a.state, a.attempt) for a in described.raw_description.pending_activities]
        logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.log")}
        raise AssertionError(f"sweep {handle.id} still runs after 300 s; pending activities {pending}; "
                             f"logs {logs}") from None


async def _replace_worker_when(ready: Callable[[], Awaitable[bool]], what: str, worker: subprocess.Popen[bytes],
                               queue: str, tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """SIGKILL ``worker`` once ``ready()`` holds (asked every 0.1 s, for at most 2 minutes, else
    ``AssertionError(what)``), then start another on ``queue`` with ``env``; returns it."""
    for _ in range(1200):
        if await ready():
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(what)
    worker.kill()
    worker.wait()
    return start_worker("all", queue, tmp_path, env, 1)


async def _run(tmp_path: Path, env: dict[str, str], run_id: str, *, kill: bool) -> SweepResult:
    queue = f"q-{run_id}"
    worker = start_worker("all", queue, tmp_path, env, 0)
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, _input(run_id), id=run_id, task_queue=queue)
        if kill:  # once a member trains in round 1 (after the first exploit), kill the worker mid-training
            async def in_round_1() -> bool:
                status = await handle.query(MLPSweep.sweep_status)
                return any(t.rung == 1 and t.state == "training" for t in status.trials)

            worker = await _replace_worker_when(in_round_1, "no member reached round 1", worker, queue, tmp_path, env)
        return await _result(handle, tmp_path)
    finally:
        worker.kill()


@pytest.mark.slow
async def test_pbt_exploits_with_audited_copies_and_ends_with_the_same_weights_twice(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    first = await _run(tmp_path, subprocess_env, f"pbt-{tag}-a", kill=False)
    second = await _run(tmp_path, subprocess_env, f"pbt-{tag}-b", kill=True)

    rows = {t.row.index: t.row for t in first.trials}
    again = {t.row.index: t.row for t in second.trials}
    assert len(rows) == 4 and all(r.state == "done" and r.step == 18 for r in rows.values()), rows
    # each round goes on from the last one's checkpoint (or a copy) as planned: no resume without a crash
    assert all(r.resumes == 0 for r in rows.values()), [(r.name, r.resumes) for r in rows.values()]
    # the same decisions, params and weights, with a worker killed in the second
    for index, row in rows.items():
        other = again[index]
        assert (row.params, row.rung_values, row.branch, row.model_sha256) == (
            other.params, other.rung_values, other.branch, other.model_sha256), index
    assert first.best is not None and second.best is not None and first.best.name == second.best.name

    # one exploit a round (a quarter of 4) after rounds 0 and 1, each audited with both digests
    assert first.scheduled is not None
    exploits = [line for line in first.scheduled.decisions if " exploits " in line]
    assert len(exploits) == 2, first.scheduled.decisions
    checkpoints = tmp_path / "checkpoints"
    for line in exploits:
        found = re.search(r"round (\d) \(\d+ steps\): (t\d+) ranks 4 of 4 .* exploits (t\d+) .*copied (t\d+) step (\d+) "
                          r"\(model ([0-9a-f]{12})\) over its own \(model ([0-9a-f]{12})\) into run (\S+) "
                          r"\(model ([0-9a-f]{12}), verified\)", line)
        assert found, line
        round_, loser, donor, copied, step, donor_sha, own_sha, run, copy_sha = found.groups()
        assert donor == copied and donor != loser and int(step) == PBT.budgets()[int(round_)]
        assert copy_sha == donor_sha != own_sha  # a content-addressed copy of the donor's weights
        assert run == f"{first.run_id}--{loser}--b{int(round_) + 1}"
        # the loser went on in that run: its checkpoints live there now, the last its row's
        latest = CheckpointManager(str(checkpoints), run).latest()
        assert latest is not None and latest.step == 18 and latest.model_sha256 == rows[int(loser[1:])].model_sha256 \
            or rows[int(loser[1:])].branch != int(round_) + 1  # (exploited again after round 1)
    # the runs members left when they exploited are deleted: each keeps only the run it ended in
    for row in rows.values():
        runs = sorted(p.name for p in checkpoints.glob(f"{first.run_id}--{row.name}*"))
        current = f"{first.run_id}--{row.name}" + (f"--b{row.branch}" if row.branch is not None else "")
        assert runs == [current], (runs, current)
    assert first.scheduled.freed_bytes > 0
    # every member's row says what it did after each round
    exploited = [r for r in rows.values() if r.branch is not None]
    assert exploited and all(any(" exploits " in d for d in r.decisions) for r in exploited)
    assert all(len(r.decisions) == 3 for r in rows.values())  # started, then a decision after rounds 0 and 1
    # the audit recomputes every member's suggestion (an exploited one keeps its suggested point)
    assert all(r.suggested is not None for r in exploited)
    recomputed = recompute_suggestions(_input(first.run_id), list(rows.values()))
    assert len(recomputed) == 4 and all(recorded == again for _, recorded, again in recomputed), recomputed


@pytest.mark.slow
async def test_a_worker_killed_while_it_deletes_a_left_run_costs_the_sweep_one_heartbeat_timeout(
        tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The sweep's own short activities (here the deletion of the run an exploiting member left)
    heartbeat: a worker killed in one is noticed within the sweep's heartbeat_timeout_seconds and the activity is
    retried elsewhere, instead of the sweep waiting out its start-to-close timeout (CI once saw a
    sweep wait 10 minutes on a deletion whose worker the PBT test had killed)."""
    run_id = f"pbtdel-{uuid.uuid4().hex[:6]}"
    queue = f"q-{run_id}"
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_SLOW_DELETE": "600"}, 0)
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, _input(run_id), id=run_id, task_queue=queue)

        async def deleting() -> bool:  # the first deletion is in flight on the worker (it would take 10 minutes)
            described = await handle.describe()
            return any(a.activity_type.name == DELETE_RUN_CHECKPOINTS
                       and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                       for a in described.raw_description.pending_activities)

        worker = await _replace_worker_when(deleting, "no deletion started", worker, queue, tmp_path, subprocess_env)
        result = await _result(handle, tmp_path)
    finally:
        worker.kill()
    assert [t.row.state for t in result.trials] == ["done"] * 4
    types: dict[int, str] = {}  # scheduled event id -> activity type
    retried: list[tuple[str, int]] = []  # (activity type, why its first attempt ended) of each retry
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            types[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.attempt > 1:
                retried.append((types[started.scheduled_event_id],
                                started.last_failure.timeout_failure_info.timeout_type))
    assert (DELETE_RUN_CHECKPOINTS, TimeoutType.TIMEOUT_TYPE_HEARTBEAT) in retried, retried
    assert all(why == TimeoutType.TIMEOUT_TYPE_HEARTBEAT for _, why in retried), retried
