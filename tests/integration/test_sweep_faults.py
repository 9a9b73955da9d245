"""A sweep tells broken infrastructure from a bad trial (issue: fault semantics).

A full store fails each running trial at its next checkpoint; the sweep pauses with the reason
(``temporal-ml status`` shows it), keeps those trials, and on ``resume`` (space freed) runs them again
from their last checkpoints: every trial ends with the weights of an undisturbed sweep. A trial that
fails for its own reason fails alone; ``sweep retry-failed`` runs it again; ``max_failed_trials``
stops a sweep whose trials keep failing. No worker on a trial's queue pauses the sweep too (busy
workers do not), a finished sweep is reopened to re-run its failed trials, and a sweep with a
scheduler (ASHA) pauses, resumes and is reopened like any sweep, its promotions unchanged."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.search import (
    AshaScheduler,
    Categorical,
    Float,
    GridSearcher,
    RandomSearcher,
    SearchSpace,
)
from temporal_ml.sweeps import SweepInput, SweepResult, SweepStatus, TrialRow
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.test_cli import cli
from tests.integration.test_sweep import BASE, DATASET, kill, start_worker

pytestmark = pytest.mark.integration

SPACE = SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True), "hparams.hidden": Categorical([4, 8])})


async def _paused(handle: object, query: object, until: str, retrying: int | None = None) -> SweepStatus:
    """The ``sweep_status`` once the run has paused with nothing running (and ``retrying`` kept)."""
    deadline = time.monotonic() + 120
    while True:
        status: SweepStatus = await handle.query(query)  # type: ignore[attr-defined]
        if status.phase == "paused" and not status.running and retrying in (None, status.retrying):
            return status
        assert time.monotonic() < deadline, f"{until}: {status}"
        await asyncio.sleep(0.2)


def _sweep(run_id: str, **changes: object) -> SweepInput:
    base = BASE.model_copy(update={"max_steps": 60, "checkpoint_every_steps": 20,
                                   "hparams": {"step_delay": 0.03}})
    settings: dict[str, object] = {
        "base": base, "space": SPACE, "searcher": RandomSearcher(), "n_trials": 3, "max_concurrency": 3,
        "seed": 12, "dataset": DATASET, "run_id": run_id, "evaluate_in_training": True,
        "progress_every_seconds": 0.5, "heartbeat_timeout_seconds": 5}
    return SweepInput.model_validate({**settings, **changes})


async def test_a_full_store_pauses_the_sweep_and_resume_finishes_every_trial(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"full-{uuid.uuid4().hex[:6]}"
    full = tmp_path / "FULL"
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_FULL_MARKER": str(full)}, 0)
    inp = _sweep(f"full-{queue}")
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        deadline = time.monotonic() + 120
        while True:  # every trial has its first checkpoint (step 20): now the store fills up
            assert time.monotonic() < deadline, "the trials never reached their first checkpoints"
            status = await handle.query(MLPSweep.sweep_status)
            if len(status.trials) == 3 and all(t.step >= 21 for t in status.trials):
                break
            await asyncio.sleep(0.05)
        full.write_text("")
        while True:
            assert time.monotonic() < deadline, f"the sweep did not pause: {status}"
            status = await handle.query(MLPSweep.sweep_status)
            if status.phase == "paused" and not status.running:
                break
            await asyncio.sleep(0.1)
        assert "No space left on device" in (status.pause_reason or ""), status
        assert status.retrying == 3 and all(t.state == "failed" for t in status.trials), status
        code, shown, _ = await cli("status", inp.run_id, env=subprocess_env)
        assert code == 0 and "paused: t000" in shown and "No space left on device" in shown, shown
        assert "3 trials will run again" in shown, shown
        full.unlink()  # space freed
        code, out, err = await cli("resume", inp.run_id, env=subprocess_env)
        assert code == 0, (out, err)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        again = _sweep(f"calm-{queue}")  # the same sweep, undisturbed
        calm = await client.execute_workflow(MLPSweep.run, again, id=again.run_id, task_queue=queue)
    finally:
        kill(worker)
    assert result.n_done == 3 and calm.n_done == 3, result
    rows = {t.row.index: t.row for t in result.trials}
    for trial in calm.trials:
        row = rows[trial.row.index]
        assert row.params == trial.row.params and row.model_sha256 == trial.row.model_sha256, row
        assert row.retried_from and row.resumes >= 1, row  # ran again from its step-20 checkpoint


async def test_retry_failed_and_max_failed_trials(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    queue = f"rf-{uuid.uuid4().hex[:6]}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    # every trial fails (hidden 0 is a config error): the sweep stops itself after two
    failing = _sweep(f"mf-{queue}", max_failed_trials=2, max_concurrency=1, n_trials=10,
                     space=SearchSpace({"hparams.hidden": Categorical([0])}))
    inp = _sweep(f"rf-{queue}", n_trials=2, max_concurrency=1, searcher=GridSearcher(),
                 space=SearchSpace({"hparams.hidden": Categorical([4, 8, 0])}))  # the grid's first two
    try:
        client = await connect()
        stopped = await client.execute_workflow(MLPSweep.run, failing, id=failing.run_id, task_queue=queue)
        # the same with a scheduler: its trials fail at rung 0 and the sweep stops itself after two
        scheduled = SweepInput(base=failing.base, space=failing.space, n_trials=10, max_concurrency=1,
                               scheduler=AshaScheduler(min_budget=20, max_budget=60, eta=3), max_failed_trials=2,
                               dataset=DATASET, run_id=f"lmf-{queue}", heartbeat_timeout_seconds=5)
        stopped_scheduled = await client.execute_workflow(MLPSweep.run, scheduled, id=scheduled.run_id,
                                                          task_queue=queue)
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        while not (await handle.query(MLPSweep.sweep_status)).started:  # enqueue is refused while starting
            await asyncio.sleep(0.05)
        user_index = await handle.execute_update(MLPSweep.enqueue, {"hparams.hidden": 0})  # the trial it runs as
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "the enqueued trial never failed"
            status = await handle.query(MLPSweep.sweep_status)
            user = [t for t in status.trials if t.source == "user"]
            if user and user[0].state == "failed":
                assert user[0].index == user_index
                break
            await asyncio.sleep(0.1)
        code, out, err = await cli("sweep", "retry-failed", inp.run_id, "--trial", str(user[0].index),
                                   env=subprocess_env)
        assert code == 0 and "will run again" in out, (out, err)
        code, _, err = await cli("sweep", "retry-failed", inp.run_id, "--trial", "0", env=subprocess_env)
        assert code == 1 and "nothing to retry" in err, err
        result = await handle.result()
    finally:
        kill(worker)
    assert stopped.stopped and stopped.n_trials == stopped.n_failed == 2, stopped
    assert stopped.stop_reason == "2 trials failed (max_failed_trials=2)"
    assert stopped_scheduled.stop_reason == "2 trials failed (max_failed_trials=2)"
    assert [t.row.state for t in stopped_scheduled.trials] == ["failed", "failed"], stopped_scheduled
    assert stopped_scheduled.stopped and stopped_scheduled.n_trials == stopped_scheduled.n_failed == 2
    assert [t.row.rung for t in stopped_scheduled.trials] == [0, 0], stopped_scheduled  # never promoted
    again = next(t.row for t in result.trials if t.row.source == "user")
    assert again.state == "failed" and len(again.retried_from) == 1 and "hidden" in (again.error or "")
    assert result.n_done == 2


async def test_no_worker_on_the_training_queue_pauses_the_sweep(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"nw-{uuid.uuid4().hex[:6]}"
    train_queue = f"{queue}-train"  # no worker polls it until the test starts one
    orchestration = start_worker("orchestration", queue, tmp_path, subprocess_env, 0)
    workers = [orchestration]
    inp = _sweep(f"nw-{queue}", train_task_queue=train_queue, no_worker_timeout_seconds=2,
                 base=BASE.model_copy(update={"max_steps": 60, "checkpoint_every_steps": 20,
                                              "hparams": {"step_delay": 0.05}}))
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        status = await _paused(handle, MLPSweep.sweep_status, "the sweep did not pause", retrying=3)
        assert f"no worker took the training from task queue '{train_queue}' in 2s" in (status.pause_reason or "")
        code, shown, _ = await cli("status", inp.run_id, env=subprocess_env)
        assert code == 0 and "paused: t000" in shown and "no worker took the training" in shown, shown
        # one training slot: two of the three trials wait longer than 2 s in the queue while the
        # first one trains and reports: busy, not gone, so they wait again and the sweep runs on
        workers.append(start_worker("train", train_queue, tmp_path, {**subprocess_env, "TML_TEST_ACTIVITY_SLOTS": "1"}, 1))
        code, out, err = await cli("resume", inp.run_id, env=subprocess_env)
        assert code == 0, (out, err)
        try:
            result = await asyncio.wait_for(handle.result(), 120)
        except TimeoutError:
            raise AssertionError(f"the sweep did not finish: {await handle.query(MLPSweep.sweep_status)}") from None
    finally:
        for worker in workers:
            kill(worker)
    assert result.n_done == 3 and all(len(t.row.retried_from) == 1 for t in result.trials), result
    assert "waits for a busy training worker: queued again" in (tmp_path / "orchestration-0.log").read_text()


async def test_a_finished_sweep_is_reopened_to_rerun_its_failed_trials(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"ro-{uuid.uuid4().hex[:6]}"
    full = tmp_path / "FULL"
    full.write_text("")  # full from the start; the sweep counts it as the trials' own failure
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_FULL_MARKER": str(full)}, 0)
    inp = _sweep(f"ro-{queue}", infrastructure_errors=[])
    try:
        client = await connect()
        failed = await client.execute_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        assert failed.n_failed == 3 and "No space left on device" in (failed.trials[0].row.error or "")
        full.unlink()  # space freed: the same id runs them again
        code, out, err = await cli("retry", inp.run_id, "--trial", "1", env=subprocess_env)
        assert code == 0 and "reopened; 1 failed trials run again" in out, (out, err)
        once = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        code, out, err = await cli("sweep", "retry-failed", inp.run_id, env=subprocess_env)
        assert code == 0 and "2 failed trials run again from their last checkpoints: 0, 2" in out, (out, err)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        code, _, err = await cli("retry", inp.run_id, env=subprocess_env)
    finally:
        kill(worker)
    assert (once.n_done, once.n_failed, once.runs) == (1, 2, 2), once
    assert (result.n_done, result.n_trials, result.runs) == (3, 3, 3), result
    assert [t.row.params for t in result.trials] == [t.row.params for t in failed.trials]
    assert code == 2 and "nothing to retry" in err and "no trial failed" in err, err  # a usage error


def _promotions(row: TrialRow) -> tuple[list[float], list[str]]:
    """What the scheduler made of a trial: its value at each rung, and the lines that started and
    promoted it (not those saying that it ran again after a failure)."""
    return row.rung_values, [d for d in row.decisions if "runs again toward rung" not in d]


async def test_a_full_store_pauses_a_scheduled_sweep_and_a_failed_one_is_reopened_unchanged(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"lf-{uuid.uuid4().hex[:6]}"
    full = tmp_path / "FULL"
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_FULL_MARKER": str(full)}, 0)
    base = BASE.model_copy(update={"checkpoint_every_steps": 20, "hparams": {"step_delay": 0.01}})

    def scheduled(run_id: str, **changes: object) -> SweepInput:
        return SweepInput(base=base, space=SPACE, scheduler=AshaScheduler(min_budget=20, max_budget=60, eta=3),
                          n_trials=3, max_concurrency=3, seed=5, dataset=DATASET, run_id=run_id,
                          heartbeat_timeout_seconds=5, progress_every_seconds=1, **changes)

    inp = scheduled(f"lf-{queue}")
    full.write_text("40")  # rung 0 (20 steps) commits; the promoted trial cannot write step 40
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        status = await _paused(handle, MLPSweep.sweep_status, "the scheduled sweep did not pause")
        assert "No space left on device" in (status.pause_reason or "") and status.retrying == 1, status
        full.unlink()
        code, out, err = await cli("resume", inp.run_id, env=subprocess_env)
        assert code == 0, (out, err)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        again = scheduled(f"lc-{queue}")  # the same sweep, undisturbed
        calm = await client.execute_workflow(MLPSweep.run, again, id=again.run_id, task_queue=queue)
        full.write_text("")  # full from the start, counted as the trials' own failure: the sweep ends
        failing = scheduled(f"lr-{queue}", infrastructure_errors=[])
        failed = await client.execute_workflow(MLPSweep.run, failing, id=failing.run_id, task_queue=queue)
        full.unlink()
        code, out, err = await cli("retry", failing.run_id, env=subprocess_env)  # reopened (reopen_sweep)
        assert code == 0 and "reopened; 3 failed trials run again from their last checkpoints: 0, 1, 2" in out, (
            out, err)
        reopened = await client.get_workflow_handle(failing.run_id, result_type=SweepResult).result()
    finally:
        kill(worker)
    assert [t.row.state for t in failed.trials] == ["failed"] * 3, failed
    assert [t.row.rung for t in failed.trials] == [0] * 3 and not any(t.row.rung_values for t in failed.trials)
    assert [t.row.state for t in reopened.trials] == ["done"] * 3, reopened
    assert [t.row.model_sha256 for t in reopened.trials] == [t.row.model_sha256 for t in calm.trials]
    # the same promotions as the undisturbed sweep: each trial's values at its rungs, and the lines
    # that started and promoted it
    assert reopened.best_budget == 60 and reopened.scheduled is not None and calm.scheduled is not None
    assert [_promotions(t.row) for t in reopened.trials] == [_promotions(t.row) for t in calm.trials], (
        reopened.scheduled.decisions, calm.scheduled.decisions)
    assert [r.promoted for r in reopened.scheduled.rungs] == [r.promoted for r in calm.scheduled.rungs]
    assert all(t.row.rerun_seqs for t in reopened.trials)  # each ran again toward rung 0
    assert result.best is not None and calm.best is not None and result.best_budget == 60
    assert [t.row.model_sha256 for t in result.trials] == [t.row.model_sha256 for t in calm.trials]
    assert result.best.row.model_sha256 == calm.best.row.model_sha256
    assert [_promotions(t.row) for t in result.trials] == [_promotions(t.row) for t in calm.trials]
    decisions = [d for t in result.trials for d in t.row.decisions]
    assert "runs again toward rung 1" in decisions, decisions
    assert result.scheduled is not None and any(
        "runs again toward rung 1 from its last checkpoint" in d for d in result.scheduled.decisions)
    assert [t.row.state for t in result.trials] == ["done"] * 3


async def test_an_unreachable_store_is_retried_then_pauses_the_sweep(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    queue = f"ur-{uuid.uuid4().hex[:6]}"
    down = tmp_path / "DOWN"
    down.write_text("unreachable 40")  # step 20 commits; then the store stops answering
    worker = start_worker("all", queue, tmp_path, {**subprocess_env, "TML_TEST_FULL_MARKER": str(down)}, 0)
    inp = _sweep(f"ur-{queue}", n_trials=1, max_attempts=2)
    try:
        client = await connect()
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=queue)
        status = await _paused(handle, MLPSweep.sweep_status, "the sweep did not pause")
        assert "the store is unreachable: Connection refused" in (status.pause_reason or ""), status
        down.unlink()  # it answers again
        code, out, err = await cli("resume", inp.run_id, env=subprocess_env)
        assert code == 0, (out, err)
        result = await handle.result()
    finally:
        kill(worker)
    row = result.trials[0].row
    assert result.n_done == 1 and row.retried_from and row.resumes >= 1, row  # from its step-20 checkpoint
