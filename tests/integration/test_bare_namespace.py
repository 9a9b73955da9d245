"""Servers without our search attributes (issue 7, item 9): a dev server started without them stands
for a self-hosted cluster or a Temporal Cloud namespace set up without ``temporal-ml setup``. Training,
evaluation, a coordinator, a sweep and a sweep with a scheduler (which start their children with a
search attribute) still finish; they are left untagged, say so in their memo, and a server with the
attributes still gets them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.sweep import SweepActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.search import AshaScheduler, Categorical, GridSearcher, SearchSpace
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.sweeps import SweepInput
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.coordinator import CoordinatorInput
from tests.conftest import free_port
from tests.integration._sweep_workflows import MLPSweep
from tests.integration._training_workflows import MLPCoordinator, MLPEval, MLPTraining
from tests.trainables import MLPTrainable, blobs

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(trainable="mlp", max_steps=30, batch_size=16, checkpoint_every_steps=10,
                     log_every_steps=5, async_checkpoints=False, device="cpu")


async def _coordinate(address: str, root: Path, run_id: str, *,  # noqa: ANN202 - (result, client, ids)
                      sweeps: bool = False):
    """A coordinator of one experiment; with ``sweeps``, then a 2-trial sweep and a 3-trial sweep
    with an ASHA scheduler (``<run_id>-sweep``, ``<run_id>-ladder``) on the same worker. ``ids``: the
    children of the scheduled sweep's best trial at the rung it reached (train and eval)."""
    client = await connect(address)
    queue = f"sa-{uuid.uuid4().hex[:6]}"
    store = SnapshotStore(str(root / "snapshots"))
    trainables = {"mlp": MLPTrainable()}
    activities = [
        *TrainingActivities(trainables=trainables, snapshot_store=store,
                            checkpoint_root=str(root / "checkpoints")).activities(),
        *SnapshotActivities(store, generators={"blobs": blobs}).activities(),
        *EvalActivities(trainables=trainables, snapshot_store=store).activities(),
        *SweepActivities().activities(),
    ]
    inp = CoordinatorInput(experiments=[ExperimentSpec(name="e", config=CONFIG)],
                           dataset=DatasetSource(generator="blobs"), run_id=run_id)
    space = SearchSpace({"hparams.hidden": Categorical([4, 8, 16])})
    async with create_worker(client, task_queue=queue, activities=activities,
                             workflows=[MLPCoordinator, MLPTraining, MLPEval, MLPSweep]):
        handle = await client.start_workflow(MLPCoordinator.run, inp, id=run_id, task_queue=queue)
        result = await asyncio.wait_for(handle.result(), timeout=90)
        ids: list[str] = []
        if sweeps:
            sweep = SweepInput(base=CONFIG, space=space, searcher=GridSearcher(), n_trials=2,
                               max_concurrency=2, dataset=DatasetSource(generator="blobs"),
                               run_id=f"{run_id}-sweep", progress_every_seconds=5)
            ladder = SweepInput(base=CONFIG.model_copy(update={"max_steps": 1}), space=space,
                                searcher=GridSearcher(), n_trials=3, max_concurrency=2,
                                scheduler=AshaScheduler(min_budget=4, max_budget=12, eta=3),
                                dataset=DatasetSource(generator="blobs"), run_id=f"{run_id}-ladder",
                                progress_every_seconds=5)
            swept = await asyncio.wait_for(client.execute_workflow(
                MLPSweep.run, sweep, id=sweep.run_id, task_queue=queue), timeout=90)
            laddered = await asyncio.wait_for(client.execute_workflow(
                MLPSweep.run, ladder, id=ladder.run_id, task_queue=queue), timeout=90)
            assert swept.n_done == 2 and laddered.best is not None, (swept, laddered)
            assert laddered.scheduled is not None and laddered.best_budget == 12, laddered
            ids = [laddered.best.train_workflow_id, laddered.best.eval_workflow_id]
            assert ids == [f"{run_id}-ladder--{laddered.best.name}--r1--train",
                           f"{run_id}-ladder--{laddered.best.name}--r1--eval"], ids
    return result, client, ids


async def test_runs_work_on_a_server_without_our_search_attributes(tmp_path: Path) -> None:
    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server",
                       search_attributes=False)
    server.start(timeout=120)
    try:
        result, client, best_ids = await _coordinate(server.address, tmp_path, "bare", sweeps=True)
        [experiment] = result.experiments
        assert experiment.status == "done" and experiment.eval is not None, experiment
        for wid in ("bare", "bare--e--train", "bare--e--eval", "bare-sweep", "bare-sweep--t0000--train",
                    "bare-sweep--t0000--eval", "bare-ladder", "bare-ladder--t0000--r0--train",
                    "bare-ladder--t0000--r0--eval", *best_ids):
            handle = client.get_workflow_handle(wid)
            desc = await handle.describe()
            assert desc.status is not None and desc.status.name == "COMPLETED"
            assert "TmlKind" in (await desc.memo()).get("untagged", []), wid
            async for event in handle.fetch_history_events():
                assert event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, (wid, event)
    finally:
        server.stop()


async def test_a_server_with_them_still_tags(temporal_address: str, tmp_path: Path) -> None:
    run_id = f"tagged-{uuid.uuid4().hex[:6]}"
    result, client, _ = await _coordinate(temporal_address, tmp_path, run_id)
    assert result.experiments[0].status == "done"
    for _ in range(100):  # visibility is eventually consistent
        found = [w.id async for w in client.list_workflows(f'TmlExperiment = "{run_id}"')]
        if len(found) == 3:
            break
        await asyncio.sleep(0.1)
    assert sorted(found) == sorted([run_id, f"{run_id}--e--train", f"{run_id}--e--eval"])
    desc = await client.get_workflow_handle(f"{run_id}--e--train").describe()
    assert "untagged" not in await desc.memo()
