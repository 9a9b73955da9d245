"""A sweep on a server that suggests continue-as-new after a few dozen events rolls over to new runs
carrying its compact state without waiting for its running trials (they go on, and the next run
waits for them), survives the dev server itself being SIGKILLed and restarted on the same
data directory, and still runs every trial exactly once with every suggestion recomputable."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.search import Float, Int, SearchSpace, TPESearcher
from temporal_ml.sweep_types import SweepInput, SweepResult
from temporal_ml.types import DatasetSource, TrainConfig
from tests.conftest import free_port
from tests.integration._sweep_workflows import MLPSweep
from tests.integration.test_sweep import check_result, kill_server, start_worker, train_runs

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=20,
                   log_every_steps=10, async_checkpoints=False, hparams={"step_delay": 0.02})


@pytest.mark.slow
async def test_sweep_continues_as_new_and_survives_a_server_kill(tmp_path: Path,
                                                                 subprocess_env: dict[str, str]) -> None:
    port = free_port()
    server = DevServer(port=port, headless=True, data_dir=tmp_path / "server",
                       dynamic_config={"limit.historyCount.suggestContinueAsNew": 30})
    server.start(timeout=120)
    tag = uuid.uuid4().hex[:6]
    env = {**subprocess_env, "TEMPORAL_ADDRESS": server.address}
    worker = start_worker("all", f"roll-{tag}", tmp_path, env, 0)
    inp = SweepInput(
        base=BASE, space=SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True), "hparams.hidden": Int(4, 32)}),
        searcher=TPESearcher(n_startup=3), n_trials=7, max_concurrency=2, seed=5,
        dataset=DatasetSource(generator="blobs"), run_id=f"roll-{tag}", heartbeat_timeout_seconds=5,
        progress_every_seconds=5, evaluate_in_training=True,  # one child per trial
    )
    try:
        client = await connect(server.address)
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=f"roll-{tag}")
        while True:
            status = await handle.query(MLPSweep.sweep_status)
            if sum(t.state == "done" for t in status.trials) >= 2:
                break
            await asyncio.sleep(0.2)
        kill_server(server)
        await asyncio.sleep(1)
        server.start(timeout=120)
        client = await connect(server.address)
        result = await client.get_workflow_handle(inp.run_id, result_type=SweepResult).result()
        runs = await train_runs(client, inp.run_id)
        for _ in range(50):  # visibility is eventually consistent
            if len(runs) == result.n_trials:
                break
            await asyncio.sleep(0.2)
            runs = await train_runs(client, inp.run_id)
        sweep_runs = [wf async for wf in client.list_workflows(f'WorkflowId = "{inp.run_id}"')]
        trainings = [wf async for wf in client.list_workflows(f'TmlExperiment = "{inp.run_id}" AND TmlKind = "train"')]
        evals = [wf async for wf in client.list_workflows(f'TmlExperiment = "{inp.run_id}" AND TmlKind = "eval"')]
        events = 0
        for wf in sweep_runs:
            history = await client.get_workflow_handle(inp.run_id, run_id=wf.run_id).fetch_history()
            events += len(history.events)
    finally:
        worker.kill()
        server.stop()
    assert result.n_trials == 7 and result.n_done == 7 and result.runs >= 2, result.runs
    assert len(sweep_runs) == result.runs
    check_result(result, inp)
    assert sorted(runs) == [f"{inp.run_id}--t{i:04d}--train" for i in range(7)] and set(runs.values()) == {1}
    assert not evals  # evaluated inside the training activities
    # no drain: some training ran across a rollover (started before a run continued as new, ended after)
    rollovers = [wf.close_time for wf in sweep_runs if wf.close_time is not None and wf.status is not None
                 and wf.status.name == "CONTINUED_AS_NEW"]
    spanning = [t.id for t in trainings for at in rollovers
                if t.start_time < at and t.close_time is not None and t.close_time > at]
    assert rollovers and spanning, (rollovers, [(t.id, t.start_time, t.close_time) for t in trainings])
    print(f"\nsweep: {result.runs} runs, {events} events for 7 trials ({events / 7:.1f} per trial)")


@pytest.mark.slow
async def test_ladder_continues_as_new_with_its_rung_table(tmp_path: Path,
                                                           subprocess_env: dict[str, str]) -> None:
    from temporal_ml.search import AshaScheduler, RandomSearcher
    from temporal_ml.sweep_types import LadderInput, LadderResult
    from tests.integration._sweep_workflows import MLPLadder

    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server",
                       dynamic_config={"limit.historyCount.suggestContinueAsNew": 60})
    server.start(timeout=120)
    tag = uuid.uuid4().hex[:6]
    worker = start_worker("all", f"lroll-{tag}", tmp_path, {**subprocess_env, "TEMPORAL_ADDRESS": server.address}, 0)
    inp = LadderInput(
        base=BASE.model_copy(update={"hparams": {}}), space=SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True)}),
        searcher=RandomSearcher(), scheduler=AshaScheduler(min_budget=5, max_budget=15, eta=3), n_trials=6,
        max_concurrency=2, seed=2, dataset=DatasetSource(generator="blobs"), run_id=f"lroll-{tag}",
        progress_every_seconds=30,
    )
    try:
        client = await connect(server.address)
        handle = await client.start_workflow(MLPLadder.run, inp, id=inp.run_id, task_queue=f"lroll-{tag}")
        assert await handle.execute_update(MLPLadder.add_trials, 2) == 8  # live: two more trials
        result: LadderResult = await handle.result()
        runs = [wf async for wf in client.list_workflows(f'WorkflowId = "{inp.run_id}"')]
    finally:
        worker.kill()
        server.stop()
    assert len(runs) >= 2, "the ladder never continued as new"
    rungs = result.table.brackets[0].rungs
    assert len(rungs[0].results) == 8 and len(rungs[1].results) == len(rungs[0].promoted) >= 2
    assert len(result.decisions) == 8 + len(rungs[0].promoted) and len(result.trials) == 8
    assert result.best is not None and result.best_budget == 15 and result.best.row.step == 15
