"""Bad input at the workflow boundary (issue 7, items 3 and 10) against a real dev server: a start
request that fails validation (raw JSON, another SDK, ``temporal workflow start``) fails its workflow
at once, non-retryably, with a one-line message; bad signals and updates are refused and leave the
run unharmed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from temporal_ml.activities.messages import REPORT_SIGNAL
from temporal_ml.client import connect
from temporal_ml.types import SnapshotRef, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.training import TrainingInput
from tests.integration._training_workflows import MLPCoordinator, MLPEval, MLPInference, MLPTraining

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(trainable="mlp", max_steps=10)
SNAPSHOT = SnapshotRef(id="0" * 64, root="memory://nowhere", splits={"train": 1})


@pytest.fixture
async def env(temporal_address: str) -> AsyncIterator[tuple[Client, str]]:
    client = await connect()
    queue = f"boundary-{uuid.uuid4().hex[:8]}"
    worker = create_worker(client, task_queue=queue,
                           workflows=[MLPTraining, MLPCoordinator, MLPEval, MLPInference])
    async with worker:
        yield client, queue


async def _fails_fast(client: Client, workflow: str, arg: Any, queue: str, wid: str | None = None) -> ApplicationError:
    """Start ``workflow`` with ``arg``; it must fail (not hang) within seconds. Returns the cause."""
    handle = await client.start_workflow(workflow, arg, id=wid or f"bad-{uuid.uuid4()}", task_queue=queue)
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), timeout=15)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable, cause
    assert "\n" not in cause.message and len(cause.message) < 400, cause.message
    await _no_failed_workflow_tasks(handle)
    return cause


async def _no_failed_workflow_tasks(handle: WorkflowHandle) -> None:
    async for event in handle.fetch_history_events():
        assert event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, event


def _raw(**overrides: Any) -> dict[str, Any]:
    """A training input as raw JSON (what another SDK or the temporal CLI sends)."""
    return {"config": CONFIG.model_dump(mode="json"), "snapshot": SNAPSHOT.model_dump(mode="json"),
            **overrides}


async def test_invalid_start_input_fails_the_workflow_at_once(env: tuple[Client, str]) -> None:
    client, queue = env
    bad_config = _raw(config={**CONFIG.model_dump(mode="json"), "max_steps": 0})
    cause = await _fails_fast(client, "MLPTraining", bad_config, queue)
    assert cause.type == "ValidationError" and "config.max_steps" in cause.message
    cause = await _fails_fast(client, "MLPTraining", _raw(run_id="../../etc"), queue)
    assert "run id" in cause.message
    cause = await _fails_fast(client, "MLPTraining", {"nonsense": True}, queue)
    assert "invalid TrainingInput" in cause.message
    cause = await _fails_fast(client, "MLPEval", {"config": {}}, queue)
    assert "invalid EvalInput" in cause.message
    cause = await _fails_fast(client, "MLPCoordinator", {"experiments": []}, queue)
    assert "invalid CoordinatorInput" in cause.message


async def test_a_workflow_id_that_is_no_valid_run_id_fails_at_once(env: tuple[Client, str]) -> None:
    client, queue = env
    cause = await _fails_fast(client, "MLPTraining", _raw(), queue, wid=f"team/{uuid.uuid4()}")
    assert cause.type == "ConfigError" and "run id" in cause.message
    # the coordinator's children derive their ids from its workflow id: checked before any work
    long_id = "c" * 150 + uuid.uuid4().hex[:8]
    coordinator = {"experiments": [{"name": "e" * 60, "config": CONFIG.model_dump(mode="json")}],
                   "snapshot": SNAPSHOT.model_dump(mode="json")}
    cause = await _fails_fast(client, "MLPCoordinator", coordinator, queue, wid=long_id)
    assert "at most 200" in cause.message


async def test_bad_signals_and_updates_leave_the_run_unharmed(env: tuple[Client, str]) -> None:
    client, queue = env
    # the training activity goes to a queue nobody polls: the run stays in "training"
    inp = TrainingInput(config=CONFIG, snapshot=SNAPSHOT, task_queue=f"nobody-{uuid.uuid4().hex[:6]}")
    handle = await client.start_workflow(MLPTraining.run, inp, id=f"unharmed-{uuid.uuid4()}", task_queue=queue)
    try:
        await handle.signal(REPORT_SIGNAL, {"state": "no-such-state", "step": "many"})
        await handle.signal(REPORT_SIGNAL, args=[{"step": 1}, "extra"])
        for name in ("pause", "resume"):
            for args in (["junk"], [1, {"a": 2}]):
                try:  # the updates take no arguments: extra ones are ignored or refused
                    await asyncio.wait_for(handle.execute_update(name, args=args), timeout=30)
                except WorkflowUpdateFailedError:
                    pass
        progress = await handle.query(MLPTraining.progress)
        assert progress.step == 0 and progress.state in ("training", "paused", "stopping")
        assert (await handle.describe()).status.name == "RUNNING"
        await _no_failed_workflow_tasks(handle)
    finally:
        await handle.terminate()


@pytest.mark.parametrize("request_name", ["pause", "stop_early"])
async def test_control_in_the_first_workflow_task_leaves_the_run_unharmed(
        env: tuple[Client, str], request_name: str) -> None:
    """A pause or stop that arrives with the start (update-with-start, or a client racing the first
    workflow task) interrupts a training activity started in that same workflow task, before it was
    ever scheduled. The run must go on (paused, or stopping at its first step), never fail."""
    client, queue = env
    inp = TrainingInput(config=CONFIG, snapshot=SNAPSHOT, task_queue=f"nobody-{uuid.uuid4().hex[:6]}")
    wid = f"first-task-{request_name}-{uuid.uuid4()}"
    start = WithStartWorkflowOperation(MLPTraining.run, inp, id=wid, task_queue=queue,
                                       id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
    if request_name == "pause":
        await asyncio.wait_for(client.execute_update_with_start_workflow(
            MLPTraining.pause, start_workflow_operation=start), timeout=30)
    else:  # a stop answers when the run ends; here it only has to be accepted
        await asyncio.wait_for(client.start_update_with_start_workflow(
            MLPTraining.stop_early, start_workflow_operation=start,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED), timeout=30)
    handle = await start.workflow_handle()
    try:
        await asyncio.sleep(1)  # let the run take its next workflow tasks
        progress = await handle.query(MLPTraining.progress)
        assert progress.state == ("paused" if request_name == "pause" else "stopping"), progress
        assert (await handle.describe()).status.name == "RUNNING"
        if request_name == "pause":
            await handle.execute_update(MLPTraining.resume)
            assert (await handle.query(MLPTraining.progress)).state == "training"
            assert (await handle.describe()).status.name == "RUNNING"
        await _no_failed_workflow_tasks(handle)
    finally:
        await handle.terminate()
