"""A coordinator whose history grows long continues as new (compact carried state), writes its
results to a table when they would not fit inline, and still runs every experiment exactly once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from temporal_ml import results
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.types import CoordinatorResult, DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput, read_coordinator_table
from tests.conftest import free_port
from tests.integration._training_workflows import MLPCoordinator
from tests.integration.test_sweep import start_worker, train_runs

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=20, batch_size=16, checkpoint_every_steps=20,
                   log_every_steps=10, async_checkpoints=False)


def test_too_many_experiments_for_inline_results_need_a_table() -> None:
    specs = [ExperimentSpec(name=f"e{i}", config=BASE) for i in range(5)]
    with pytest.raises(ValueError, match="set table_root"):
        CoordinatorInput(experiments=specs, dataset=DatasetSource(generator="blobs"), max_inline_results=4)


@pytest.mark.slow
async def test_coordinator_continues_as_new_without_draining_and_writes_its_table(tmp_path: Path,
                                                                 subprocess_env: dict[str, str]) -> None:
    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server",
                       dynamic_config={"limit.historyCount.suggestContinueAsNew": 60})
    server.start(timeout=120)
    tag = uuid.uuid4().hex[:6]
    worker = start_worker("all", f"croll-{tag}", tmp_path, {**subprocess_env, "TEMPORAL_ADDRESS": server.address}, 0)
    names = [f"e{i}" for i in range(8)] + ["bad"]
    experiments = [ExperimentSpec(name=n, config=BASE.model_copy(update={
        "hparams": {"fail": "config"} if n == "bad" else {"lr": 0.01 * (1 + i)}})) for i, n in enumerate(names)]
    inp = CoordinatorInput(experiments=experiments, dataset=DatasetSource(generator="blobs"),
                           run_id=f"croll-{tag}", max_concurrency=2, max_inline_results=4,
                           table_root=str(tmp_path / "tables"), progress_every_seconds=5)
    try:
        client = await connect(server.address)
        handle = await client.start_workflow(MLPCoordinator.run, inp, id=inp.run_id, task_queue=f"croll-{tag}")
        result: CoordinatorResult = await handle.result()
        runs = await train_runs(client, inp.run_id)
        frame = await results(client, inp.run_id)  # the DataFrame reads the table
        events, n_runs, rollovers = 0, 0, []
        async for wf in client.list_workflows(f'WorkflowId = "{inp.run_id}"'):
            n_runs += 1
            history = await client.get_workflow_handle(inp.run_id, run_id=wf.run_id).fetch_history()
            events += len(history.events)
            if wf.status is not None and wf.status.name == "CONTINUED_AS_NEW" and wf.close_time is not None:
                rollovers.append(wf.close_time)
        children = [wf async for wf in client.list_workflows(
            f'TmlExperiment = "{inp.run_id}" AND (TmlKind = "train" OR TmlKind = "eval")')]
    finally:
        worker.kill()
        server.stop()
    assert result.runs >= 2 and n_runs == result.runs, (result.runs, n_runs)
    # no drain: some experiment's child ran across a rollover (started before a run continued as
    # new, ended after); a draining coordinator closes every child before it continues as new
    spanning = [c.id for c in children for at in rollovers
                if c.start_time < at and c.close_time is not None and c.close_time > at]
    assert rollovers and spanning, (rollovers, [(c.id, c.start_time, c.close_time) for c in children])
    assert result.experiments == [] and result.results_omitted == 9 and result.table_uri
    table = read_coordinator_table(result.table_uri)
    assert [r.name for r in table] == names
    for r in table:
        if r.name == "bad":
            assert r.status == "failed" and "deliberately bad config" in (r.error or "")
        else:
            assert r.status == "done" and r.train is not None and r.train.steps == 20 and r.eval is not None
            assert r.lineage.checkpoint_sha256 == r.train.checkpoint.model_sha256
    assert list(frame["name"]) == names and list(frame["status"]) == ["done"] * 8 + ["failed"]
    done = {r.name: r.eval.metrics["accuracy"] for r in table if r.eval is not None}
    assert [e.name for e in result.leaderboard] == sorted(done, key=lambda n: (-done[n], names.index(n)))
    # Exactly once: one training workflow per experiment that trained, across every coordinator run.
    assert sorted(runs) == sorted(f"{inp.run_id}--{n}--train" for n in names) and set(runs.values()) == {1}
    print(f"\ncoordinator: {result.runs} runs, {events} events for 9 experiments ({events / 9:.1f} per experiment)")
