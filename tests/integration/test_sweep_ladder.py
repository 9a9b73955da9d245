"""LadderSweepWorkflow (ASHA) on a real dev server: promotions continue the same run from its rung
checkpoint, so a trial promoted through every rung ends with weights bitwise equal to the same config
trained straight to the maximum budget; checkpoints of unpromotable trials are deleted."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.search import AshaScheduler, Float, Int, SearchSpace, TPESearcher
from temporal_ml.sweep_types import LadderInput, recompute_ladder_suggestions
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.workflows.training import TrainingInput
from tests.integration._sweep_workflows import MLPLadder
from tests.integration._training_workflows import MLPTraining
from tests.integration.test_sweep import start_worker

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=1, batch_size=16, checkpoint_every_steps=4,
                   log_every_steps=5, async_checkpoints=False)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [None, 60_000], ids=["no-budget", "byte-budget"])
async def test_ladder_promotions_continue_the_same_trajectory(tmp_path: Path, subprocess_env: dict[str, str],
                                                              budget: int | None) -> None:
    tag = uuid.uuid4().hex[:6]
    queue = f"ladder-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    dataset = DatasetSource(generator="blobs", params={"seed": 4})
    inp = LadderInput(
        base=BASE, space=SearchSpace({"hparams.lr": Float(1e-3, 5e-2, log=True), "hparams.hidden": Int(4, 32)}),
        searcher=TPESearcher(n_startup=3), scheduler=AshaScheduler(min_budget=6, max_budget=54, eta=3),
        n_trials=9, max_concurrency=2, seed=1, dataset=dataset, run_id=f"ladder-{tag}",
        heartbeat_timeout_seconds=5, progress_every_seconds=5, checkpoint_budget_bytes=budget,
    )
    try:
        client = await connect()
        result = await client.execute_workflow(MLPLadder.run, inp, id=inp.run_id, task_queue=queue)
        assert result.best is not None and result.best_budget == 54
        top = result.best.row
        assert top.step == 54 and (top.resumes >= 1 or budget)  # continued from its rung checkpoints
        config = inp.space.apply(BASE, top.params).model_copy(update={"max_steps": 54})
        straight = await client.execute_workflow(
            MLPTraining.run, TrainingInput(config=config, snapshot=result.snapshot, run_id=f"straight-{tag}"),
            id=f"straight-{tag}", task_queue=queue)
    finally:
        worker.kill()
    # Bitwise: promoted 6 -> 18 -> 54 steps equals 54 steps straight (LR schedule over 54 both ways).
    assert straight.steps == 54 and straight.resumes == 0 and config.schedule_steps is None
    assert top.model_sha256 == straight.checkpoint.model_sha256
    rungs = result.table.brackets[0].rungs
    assert [r.budget for r in rungs] == [6, 18, 54]
    assert len(rungs[0].results) == 9 and len(rungs[1].results) >= 3 and len(rungs[2].results) >= 1
    assert len(result.decisions) == 9 + len(rungs[0].promoted) + len(rungs[1].promoted)
    assert all(t.row.state == "done" for t in result.trials)
    # Every suggestion (TPE after 3 trials) recomputed from what it saw: the report log and audit.
    recomputed = recompute_ladder_suggestions(inp, result)
    assert len(recomputed) == 9 and all(recorded == again for _, recorded, again in recomputed)
    assert len(result.reports) == sum(len(r.results) for r in rungs)
    # Every trial that can no longer go on lost its checkpoints; the others keep theirs.
    assert result.deleted and result.freed_bytes > 0
    for t in result.trials:
        directory = tmp_path / "checkpoints" / f"{inp.run_id}--{t.name}"
        assert directory.exists() == (t.name not in result.deleted), t.name
    assert top.name not in result.deleted
    if budget is None:
        assert result.checkpoint_bytes == result.peak_checkpoint_bytes == 0  # nothing measured
    else:  # enforced after every rung: over it only while nothing deletable is left
        on_disk = sum(f.stat().st_size for run in (tmp_path / "checkpoints").iterdir()
                      if run.name.startswith(inp.run_id) for f in run.rglob("*") if f.is_file())
        assert on_disk == result.checkpoint_bytes > 0  # the ladder's account matches the store
        kept = [t for t in result.trials if (tmp_path / "checkpoints" / f"{inp.run_id}--{t.name}").exists()]
        assert [t.name for t in kept] == [top.name]  # finished and over budget: only the best is kept
        assert result.checkpoint_bytes <= budget  # (the peak may pass it while trials run)
        print(f"\ncheckpoint budget {budget} B: {result.checkpoint_bytes} B kept, "
              f"{result.freed_bytes} B freed, deleted {result.deleted}")


@pytest.mark.parametrize("n_trials", [2, 4, 6, 8])
async def test_a_ladder_that_ends_below_its_top_rung_keeps_its_best_checkpoint(
    tmp_path: Path, subprocess_env: dict[str, str], n_trials: int
) -> None:
    """Few trials over rungs 2/6/18/54 (eta 3), one at a time (so the order of results, and with it
    every promotion, is the same on every run): none reaches the top rung, so the final clean-up
    finds every trial unpromotable; it must still spare the best, whose checkpoint the result points
    to. (Asynchronous promotion can take more than 1/eta of a rung as its ranking changes, so with
    two trials at once a ladder of 6 or 8 may reach budget 18 of a 3-rung ladder.)"""
    from temporal_ml.storage.checkpoints import CheckpointManager

    tag = uuid.uuid4().hex[:6]
    queue = f"short-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = LadderInput(
        base=BASE, space=SearchSpace({"hparams.lr": Float(1e-3, 5e-2, log=True), "hparams.hidden": Int(4, 32)}),
        searcher=TPESearcher(n_startup=3), scheduler=AshaScheduler(min_budget=2, max_budget=54, eta=3),
        n_trials=n_trials, max_concurrency=1, seed=3, dataset=DatasetSource(generator="blobs"),
        run_id=f"short-{tag}", progress_every_seconds=5,
    )
    try:
        client = await connect()
        result = await client.execute_workflow(MLPLadder.run, inp, id=inp.run_id, task_queue=queue)
    finally:
        worker.kill()
    assert result.best is not None and result.best_budget is not None and result.best_budget < 54
    best = result.best.row
    assert best.name not in result.deleted
    kept = CheckpointManager(str(tmp_path / "checkpoints"), f"{inp.run_id}--{best.name}").latest()
    assert kept is not None and kept.model_sha256 == best.model_sha256 and kept.uri == best.checkpoint_uri
    # every other trial was unpromotable at the end and lost its checkpoints
    assert sorted(result.deleted) == sorted(t.name for t in result.trials if t.name != best.name)


async def test_a_ladder_takes_every_sweep_control(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """The ladder takes the sweep's vocabulary: pause (nothing starts or is promoted), set_max_concurrency,
    enqueue (a user config trains through the rungs), resume, stop_trial (that trial leaves the rung
    table as ``stopped``) and stop (running rungs finish, then it returns)."""

    from temporal_ml.sweep_types import LadderResult
    from tests.integration.test_cli import cli

    tag = uuid.uuid4().hex[:6]
    queue = f"lctl-{tag}"
    worker = start_worker("all", queue, tmp_path, subprocess_env, 0)
    inp = LadderInput(
        base=BASE.model_copy(update={"hparams": {"step_delay": 0.05}}),
        space=SearchSpace({"hparams.lr": Float(1e-3, 5e-2, log=True), "hparams.hidden": Int(4, 32)}),
        searcher=TPESearcher(n_startup=3), scheduler=AshaScheduler(min_budget=6, max_budget=54, eta=3),
        n_trials=12, max_concurrency=2, seed=2, dataset=DatasetSource(generator="blobs"),
        run_id=f"lctl-{tag}", progress_every_seconds=5,
    )
    user = {"hparams.lr": 0.01, "hparams.hidden": 8}
    try:
        client = await connect()
        handle = await client.start_workflow(MLPLadder.run, inp, id=inp.run_id, task_queue=queue)
        code, out, err = await cli("pause", inp.run_id, env=subprocess_env)  # the CLI's one vocabulary
        assert code == 0 and "sweep paused" in out, (out, err)
        assert (await handle.execute_update(MLPLadder.set_max_concurrency, 1)) == 1
        user_index = await handle.execute_update(MLPLadder.enqueue, user)  # the trial it will run as
        while (await handle.query(MLPLadder.sweep_status)).running:  # running rungs finish
            await asyncio.sleep(0.1)
        paused = await handle.query(MLPLadder.sweep_status)
        await asyncio.sleep(1.5)  # paused: nothing starts, nothing is promoted
        still = await handle.query(MLPLadder.sweep_status)
        assert still.phase == "paused" and still.running == 0 and still.queued == 1
        assert [(r.index, r.state, r.step) for r in still.trials] == [(r.index, r.state, r.step) for r in paused.trials]
        status = await handle.execute_update(MLPLadder.resume)
        assert status.phase == "running" and status.max_concurrency == 1
        while True:  # stop the next training trial that has started
            rows = await handle.query(MLPLadder.trials)
            training = [r.index for r in rows if r.state == "training"]
            if training:
                try:
                    stopped = await handle.execute_update(MLPLadder.stop_trial, training[0])
                    break
                except Exception:  # noqa: BLE001 - still starting: try again
                    pass
            await asyncio.sleep(0.05)
        assert stopped.state in ("evaluating", "stopped"), stopped  # its training has ended
        deadline = time.monotonic() + 60  # the user's config has started (under load it waits its turn)
        while not any(r.source == "user" for r in await handle.query(MLPLadder.trials)):
            assert time.monotonic() < deadline, "the enqueued config never started"
            await asyncio.sleep(0.05)
        assert (await handle.execute_update(MLPLadder.stop)).phase == "stopping"
        result = await client.get_workflow_handle(inp.run_id, result_type=LadderResult).result()
    finally:
        worker.kill()
    rows = {t.row.index: t.row for t in result.trials}
    assert [(r.index, r.params) for r in rows.values() if r.source == "user"] == [(user_index, user)]
    assert rows[stopped.index].state == "stopped"
    in_table = {name for br in result.table.brackets for r in br.rungs
                for name in (*r.results, *r.running, *r.promoted)}
    assert trial_name_of(stopped.index) not in in_table  # never promoted after its stop
    assert len(rows) < 12 and all(r.state in ("done", "stopped", "failed") for r in rows.values())


def trial_name_of(index: int) -> str:
    from temporal_ml.sweep_types import trial_name

    return trial_name(index)
