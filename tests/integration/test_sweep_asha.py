"""A sweep with the ASHA scheduler on a real dev server: promotions continue the same run from its
rung checkpoint, so a trial promoted through every rung ends with weights bitwise equal to the same
config trained straight to the largest budget; checkpoints of unpromotable trials are deleted, never
the best trial's; every sweep control works with a scheduler."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.search import AshaScheduler, Float, Int, SearchSpace, TPESearcher
from temporal_ml.sweeps import SweepInput, SweepResult, recompute_suggestions
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.workflows.training import TrainingInput
from tests.integration._sweep_workflows import MLPSweep
from tests.integration._training_workflows import MLPTraining
from tests.integration.test_sweep import start_worker

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=1, batch_size=16, checkpoint_every_steps=4,
                   log_every_steps=5, async_checkpoints=False)
SPACE = SearchSpace({"hparams.lr": Float(1e-3, 5e-2, log=True), "hparams.hidden": Int(4, 32)})


def on_disk(root: Path, run_id: str, name: str) -> bool:
    return (root / "checkpoints" / f"{run_id}--{name}").exists()


@pytest.mark.slow
@pytest.mark.parametrize("budget", [None, 60_000], ids=["no-budget", "byte-budget"])
async def test_promotions_continue_the_same_trajectory(tmp_path: Path, subprocess_env: dict[str, str],
                                                       budget: int | None) -> None:
    tag = uuid.uuid4().hex[:6]
    queue = f"asha-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE, space=SPACE, searcher=TPESearcher(n_startup=3),
        scheduler=AshaScheduler(min_budget=6, max_budget=54, eta=3), n_trials=9, max_concurrency=2, seed=1,
        dataset=DatasetSource(generator="blobs", params={"seed": 4}), run_id=f"asha-{tag}",
        heartbeat_timeout_seconds=5, progress_every_seconds=5, checkpoint_budget_bytes=budget,
    )
    try:
        client = await connect()
        result = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        assert result.best is not None and result.best_budget == 54
        top = result.best.row
        assert top.step == 54
        config = inp.space.apply(BASE, top.params).model_copy(update={"max_steps": 54})
        straight = await client.execute_workflow(
            MLPTraining.run, TrainingInput(config=config, snapshot=result.snapshot, run_id=f"straight-{tag}"),
            id=f"straight-{tag}", task_queue=queue)
    finally:
        worker.kill()
    # Bitwise: promoted 6 -> 18 -> 54 steps equals 54 steps straight (LR schedule over 54 both ways).
    assert straight.steps == 54 and straight.resumes == 0 and config.schedule_steps is None
    assert top.model_sha256 == straight.checkpoint.model_sha256
    assert result.scheduled is not None
    rungs = result.scheduled.rungs
    assert [r.budget for r in rungs] == [6, 18, 54]
    assert rungs[0].results == 9 and rungs[1].results >= 3 and rungs[2].results >= 1
    rows = [t.row for t in result.trials]
    assert len(rows) == 9 and all(r.state == "done" for r in rows)
    # a promotion continues its run from its rung's checkpoint as planned: nothing crashed, no resume
    assert all(r.resumes == 0 for r in rows), [(r.name, r.resumes) for r in rows]
    # every start and promotion has its audit line in the trial's row
    assert sum(len(r.decisions) for r in rows) == 9 + rungs[0].promoted + rungs[1].promoted
    assert all(len(r.rung_values) == r.rung + 1 == len(r.rung_seqs) for r in rows)
    # Every suggestion (TPE after 3 trials) recomputed from what it saw: the rows' rung results.
    recomputed = recompute_suggestions(inp, rows)
    assert len(recomputed) == 9 and all(recorded == again for _, recorded, again in recomputed)
    # Every trial that can no longer go on lost its checkpoints; the others keep theirs.
    deleted = {r.name for r in rows if r.deleted}
    assert deleted and result.scheduled.freed_bytes > 0
    # (over a byte budget a trial deleted, then promoted, trains again and may be deleted again: the
    # summary counts deletions, the rows the trials deleted now)
    assert result.scheduled.deleted == len(deleted) if budget is None else result.scheduled.deleted >= len(deleted)
    for r in rows:
        assert on_disk(tmp_path, inp.run_id, r.name) == (r.name not in deleted), r.name
    assert top.name not in deleted
    if budget is None:
        assert result.scheduled.checkpoint_bytes == result.scheduled.peak_checkpoint_bytes == 0
    else:  # enforced after every rung: over it only while nothing deletable is left
        stored = sum(f.stat().st_size for run in (tmp_path / "checkpoints").iterdir()
                     if run.name.startswith(inp.run_id) for f in run.rglob("*") if f.is_file())
        assert stored == result.scheduled.checkpoint_bytes > 0  # the sweep's account matches the store
        assert [r.name for r in rows if on_disk(tmp_path, inp.run_id, r.name)] == [top.name]
        assert result.scheduled.checkpoint_bytes <= budget


@pytest.mark.parametrize("n_trials", [2, 4, 6, 8])
async def test_a_sweep_that_ends_below_its_top_rung_keeps_its_best_checkpoint(
    tmp_path: Path, subprocess_env: dict[str, str], n_trials: int
) -> None:
    """Few trials over rungs 2/6/18/54 (eta 3), one at a time (the order of results, and with it
    every promotion, is the same on every run): none reaches the top rung, so the final clean-up
    finds every trial unpromotable; it must still spare the best, whose checkpoint the result
    points to."""
    from temporal_ml.storage.checkpoints import CheckpointManager

    tag = uuid.uuid4().hex[:6]
    queue = f"short-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE, space=SPACE, searcher=TPESearcher(n_startup=3),
        scheduler=AshaScheduler(min_budget=2, max_budget=54, eta=3), n_trials=n_trials, max_concurrency=1,
        seed=3, dataset=DatasetSource(generator="blobs"), run_id=f"short-{tag}", progress_every_seconds=5,
    )
    try:
        client = await connect()
        result = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
    finally:
        worker.kill()
    assert result.best is not None and result.best_budget is not None and result.best_budget < 54
    best = result.best.row
    assert not best.deleted
    kept = CheckpointManager(str(tmp_path / "checkpoints"), f"{inp.run_id}--{best.name}").latest()
    assert kept is not None and kept.model_sha256 == best.model_sha256 and kept.uri == best.checkpoint_uri
    # every other trial was unpromotable at the end and lost its checkpoints
    assert sorted(t.name for t in result.trials if t.row.deleted) == sorted(
        t.name for t in result.trials if t.name != best.name)


async def test_a_scheduled_sweep_takes_every_control(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """Pause (nothing starts or is promoted), set_max_concurrency, enqueue (a user config trains
    through the rungs), resume, stop_trial (that trial is ``stopped`` and never promoted) and stop
    (running rungs finish, then it returns), the CLI's pause among them."""
    from tests.integration.test_cli import cli

    tag = uuid.uuid4().hex[:6]
    queue = f"actl-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"hparams": {"step_delay": 0.05}}), space=SPACE,
        searcher=TPESearcher(n_startup=3), scheduler=AshaScheduler(min_budget=6, max_budget=54, eta=3),
        n_trials=12, max_concurrency=2, seed=2, dataset=DatasetSource(generator="blobs"),
        run_id=f"actl-{tag}", progress_every_seconds=5,
    )
    user = {"hparams.lr": 0.01, "hparams.hidden": 8}
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        code, out, err = await cli("pause", inp.run_id, env=subprocess_env)  # the CLI's one vocabulary
        assert code == 0 and "sweep paused" in out, (out, err)
        assert (await handle.execute_update(MLPSweep.set_max_concurrency, 1)) == 1
        user_index = await handle.execute_update(MLPSweep.enqueue, user)  # the trial it will run as
        while (await handle.query(MLPSweep.sweep_status)).running:  # running rungs finish
            await asyncio.sleep(0.1)
        paused = await handle.query(MLPSweep.sweep_status)
        await asyncio.sleep(1.5)  # paused: nothing starts, nothing is promoted
        still = await handle.query(MLPSweep.sweep_status)
        assert still.phase == "paused" and still.running == 0 and still.queued == 1
        assert [(r.index, r.state, r.step) for r in still.trials] == [(r.index, r.state, r.step) for r in paused.trials]
        status = await handle.execute_update(MLPSweep.resume)
        assert status.phase == "running" and status.max_concurrency == 1
        while True:  # stop the next training trial that has started
            rows = await handle.query(MLPSweep.trials)
            training = [r.index for r in rows if r.state == "training"]
            if training:
                try:
                    stopped = await handle.execute_update(MLPSweep.stop_trial, training[0])
                    break
                except Exception:  # noqa: BLE001 - still starting: try again
                    pass
            await asyncio.sleep(0.05)
        assert stopped.state in ("evaluating", "stopped"), stopped  # its training has ended
        deadline = time.monotonic() + 60  # the user's config has started (under load it waits its turn)
        while not any(r.source == "user" for r in await handle.query(MLPSweep.trials)):
            assert time.monotonic() < deadline, "the enqueued config never started"
            await asyncio.sleep(0.05)
        assert (await handle.execute_update(MLPSweep.stop)).phase == "stopping"
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
    finally:
        worker.kill()
    rows = {t.row.index: t.row for t in result.trials}
    assert [(r.index, r.params) for r in rows.values() if r.source == "user"] == [(user_index, user)]
    final = rows[stopped.index]
    assert final.state == "stopped" and final.rung == stopped.rung  # never promoted after its stop
    assert len(rows) < 12 and all(r.state in ("done", "stopped", "failed") for r in rows.values())


async def test_no_deletion_overlaps_a_training_of_its_run(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A byte budget of 1 byte at concurrency 3 with slow deletions (2 s each, a slow store), so
    deletions overlap promotions and results: in the sweep's history, every deletion of a trial's
    checkpoints starts after the last training of that trial's run closed and ends before the next
    one starts (a promotion waits for it); the best trial keeps its checkpoint. (With deletions
    left to run in the background while the sweep plans on, this fails: a trial is promoted while
    its checkpoints are being deleted.)"""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from temporal_ml.activities.sweep import DELETE_RUN_CHECKPOINTS, DeleteCheckpointsRequest
    from temporal_ml.search import RandomSearcher

    tag = uuid.uuid4().hex[:6]
    queue = f"slowdel-{tag}"
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_SLOW_DELETE": "2"}, 0)
    inp = SweepInput(
        base=BASE, space=SPACE, searcher=RandomSearcher(), scheduler=AshaScheduler(min_budget=2, max_budget=18, eta=3),
        n_trials=9, max_concurrency=3, seed=5, dataset=DatasetSource(generator="blobs"), run_id=f"slowdel-{tag}",
        progress_every_seconds=5, checkpoint_budget_bytes=1,
    )
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        result = await handle.result()
        convert = pydantic_data_converter.payload_converter
        deletions: dict[int, str] = {}  # scheduled event id -> the run it deletes
        trainings: dict[int, str] = {}  # initiated event id -> the run it trains
        windows: list[tuple[str, str, int, int]] = []  # (kind, run, first event, last event)
        async for e in handle.fetch_history_events():
            if e.HasField("activity_task_scheduled_event_attributes"):
                a = e.activity_task_scheduled_event_attributes
                if a.activity_type.name == DELETE_RUN_CHECKPOINTS:
                    [req] = convert.from_payloads(a.input.payloads, [DeleteCheckpointsRequest])
                    if not req.dry_run:
                        deletions[e.event_id] = req.checkpoint.run_id
            elif e.HasField("activity_task_completed_event_attributes"):
                sched = e.activity_task_completed_event_attributes.scheduled_event_id
                if sched in deletions:
                    windows.append(("delete", deletions[sched], sched, e.event_id))
            elif e.HasField("start_child_workflow_execution_initiated_event_attributes"):
                child = e.start_child_workflow_execution_initiated_event_attributes.workflow_id
                if child.endswith("--train"):
                    trainings[e.event_id] = child.rsplit("--r", 1)[0]
            elif e.HasField("child_workflow_execution_completed_event_attributes"):
                init = e.child_workflow_execution_completed_event_attributes.initiated_event_id
                if init in trainings:
                    windows.append(("train", trainings[init], init, e.event_id))
    finally:
        worker.kill()
    assert result.runs == 1 and result.scheduled is not None and result.scheduled.deleted >= 3, result.scheduled
    deletes = [w for w in windows if w[0] == "delete"]
    assert len(deletes) == result.scheduled.deleted
    overlaps = [(d, t) for d in deletes for t in windows
                if t[0] == "train" and t[1] == d[1] and t[2] < d[3] and d[2] < t[3]]
    assert not overlaps, overlaps
    best = result.best
    assert best is not None and not best.row.deleted and on_disk(tmp_path, inp.run_id, best.name)
