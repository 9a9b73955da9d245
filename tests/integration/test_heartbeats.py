"""Heartbeats everywhere work can be long (issue 7, item 5), against a real dev server with separate
worker processes: an evaluation worker SIGKILLed mid-evaluation costs the experiment seconds (its
heartbeat timeout), not the evaluation's two-hour start-to-close timeout."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState

from temporal_ml.client import connect
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput
from tests.integration._history import activity_attempts
from tests.integration._training_workflows import MLPCoordinator
from tests.integration.test_coordinator import _start

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=20,
                     log_every_steps=5, async_checkpoints=False, hparams={"eval_delay": 6.0})


async def test_killed_evaluation_worker_is_replaced_within_seconds(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    queues = {role: f"{role}-{tag}" for role in ("orchestration", "train", "eval")}
    procs = {role: _start(role, q, tmp_path, subprocess_env, 0) for role, q in queues.items()}
    inp = CoordinatorInput(
        experiments=[ExperimentSpec(name="slow-eval", config=CONFIG)],
        dataset=DatasetSource(generator="blobs", params={"seed": 4}), run_id=f"hb-{tag}",
        train_task_queue=queues["train"], eval_task_queue=queues["eval"],
        heartbeat_timeout_seconds=3, progress_every_seconds=0.5,
    )
    try:
        client = await connect()
        handle = await client.start_workflow(MLPCoordinator.run, inp, id=inp.run_id,
                                             task_queue=queues["orchestration"])
        evaluation = client.get_workflow_handle(f"{inp.run_id}--slow-eval--eval")
        for _ in range(600):  # until the evaluation activity runs on the eval worker
            try:
                pending = (await evaluation.describe()).raw_description.pending_activities
            except Exception:  # noqa: BLE001 - not started yet
                pending = []
            if pending and pending[0].state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the evaluation never started")
        await asyncio.sleep(1.0)  # well inside the 6 s evaluation
        procs["eval"].send_signal(signal.SIGKILL)
        procs["eval"].wait()
        procs["eval"] = _start("eval", queues["eval"], tmp_path, subprocess_env, 1)
        replaced = time.monotonic()
        result = await asyncio.wait_for(handle.result(), timeout=60)
        took = time.monotonic() - replaced
    finally:
        for proc in procs.values():
            proc.kill()

    [experiment] = result.experiments
    assert experiment.status == "done" and experiment.eval is not None, experiment
    assert took < 60
    scheduled = [e async for e in evaluation.fetch_history_events()
                 if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == "temporal_ml.evaluate"]
    assert scheduled[0].activity_task_scheduled_event_attributes.heartbeat_timeout.seconds == 3
    assert (await activity_attempts(evaluation, "temporal_ml.evaluate"))[-1] >= 2  # the kill hit it
    snapshot = [e async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                and e.activity_task_scheduled_event_attributes.activity_type.name == "temporal_ml.create_snapshot"]
    assert snapshot[0].activity_task_scheduled_event_attributes.heartbeat_timeout.seconds > 0
