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
from temporal_ml.sweeps import SweepInput, SweepResult
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
async def test_a_scheduled_sweep_continues_as_new_and_runs_every_rung_once(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    """A sweep with a scheduler (ASHA) rolls over like any sweep, without a drain: trials (their
    rung children) go on across a rollover; ``add_trials`` works live; every rung of every trial
    trained exactly once, and the rows and rung counts of the result agree."""
    from temporal_ml.search import AshaScheduler, RandomSearcher

    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server",
                       dynamic_config={"limit.historyCount.suggestContinueAsNew": 60})
    server.start(timeout=120)
    tag = uuid.uuid4().hex[:6]
    worker = start_worker("all", f"lroll-{tag}", tmp_path, {**subprocess_env, "TEMPORAL_ADDRESS": server.address}, 0)
    inp = SweepInput(
        base=BASE.model_copy(update={"hparams": {}}), space=SearchSpace({"hparams.lr": Float(1e-3, 3e-2, log=True)}),
        searcher=RandomSearcher(), scheduler=AshaScheduler(min_budget=5, max_budget=15, eta=3), n_trials=6,
        max_concurrency=2, seed=2, dataset=DatasetSource(generator="blobs"), run_id=f"lroll-{tag}",
        progress_every_seconds=30,
    )
    try:
        client = await connect(server.address)
        handle = await client.start_workflow(MLPSweep.run, inp, id=inp.run_id, task_queue=f"lroll-{tag}")
        assert await handle.execute_update(MLPSweep.add_trials, 2) == 8  # live: two more trials
        result: SweepResult = await handle.result()
        expected = sorted(f"{inp.run_id}--{t.name}--r{k}--train" for t in result.trials
                          for k in range((t.row.rung or 0) + 1))
        runs = await train_runs(client, inp.run_id)
        for _ in range(50):  # visibility is eventually consistent
            if sorted(runs) == expected:
                break
            await asyncio.sleep(0.2)
            runs = await train_runs(client, inp.run_id)
        sweep_runs = [wf async for wf in client.list_workflows(f'WorkflowId = "{inp.run_id}"')]
        children = [wf async for wf in client.list_workflows(f'TmlExperiment = "{inp.run_id}"')
                    if wf.id != inp.run_id]
    finally:
        worker.kill()
        server.stop()
    assert len(sweep_runs) >= 2, "the scheduled sweep never continued as new"
    assert result.runs == len(sweep_runs)
    # every rung of every trial trained once: one training workflow (one run) per trial and rung
    assert sorted(runs) == expected and set(runs.values()) == {1}, runs
    # no drain: some trial's child ran across a rollover (started before a run continued as new,
    # ended after)
    rollovers = [wf.close_time for wf in sweep_runs if wf.close_time is not None and wf.status is not None
                 and wf.status.name == "CONTINUED_AS_NEW"]
    spanning = [c.id for c in children for at in rollovers
                if c.start_time < at and c.close_time is not None and c.close_time > at]
    assert rollovers and spanning, (rollovers, [(c.id, c.start_time, c.close_time) for c in children])
    # the rung counts (what the ladder's rung table said) and the rows agree
    assert result.scheduled is not None
    rungs = result.scheduled.rungs
    assert [r.budget for r in rungs] == [5, 15]
    assert rungs[0].results == 8 and rungs[1].results == rungs[0].promoted >= 2, rungs
    rows = [t.row for t in result.trials]
    assert [r.index for r in rows] == list(range(8)) and result.n_trials == result.n_done == 8, result
    assert sum(r.rung == 1 for r in rows) == rungs[0].promoted
    assert sum(len(r.decisions) for r in rows) == 8 + rungs[0].promoted
    budgets = [5, 15]
    for r in rows:
        assert r.state == "done" and r.rung is not None, r
        assert len(r.rung_values) == len(r.rung_seqs) == r.rung + 1 == len(r.decisions), r
        assert r.step == budgets[r.rung] and r.value == r.rung_values[-1] and r.result_seq == r.rung_seqs[-1], r
    seqs = sorted(seq for r in rows for seq in r.rung_seqs)
    assert seqs == list(range(len(seqs))), seqs  # each rung result recorded once, in one order
    assert result.best is not None and result.best_budget == 15 and result.best.row.step == 15
    assert result.best.train_workflow_id == f"{inp.run_id}--{result.best.name}--r1--train"
