"""Run control as a state machine (issue 7, item 1), tested systematically against a real dev server.

Hypothesis draws sequences of pause / resume / stop-early requests with random gaps (0 s hits the
snapshotting and starting phases, longer gaps training, pausing and paused ones) and sends each to
a real training run of a small MLP, on a server that suggests continue-as-new every few dozen
events, so runs also roll over to new runs between, during and after the requests. For every
request the update validator must admit exactly what the state machine allows at that moment (a
model of the run kept by the test) or refuse it with a clear message; and whatever the sequence,
the run must end normally: bitwise equal to an undisturbed run when it was not stopped, a verified
checkpoint of the step it stopped at when it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.storage.checkpoints import load_checkpoint
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import DatasetSource, TrainConfig, TrainResult
from temporal_ml.worker import create_worker
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import free_port
from tests.integration._training_workflows import MLPTraining
from tests.trainables import MLPTrainable, blobs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = TrainConfig(trainable="mlp", max_steps=80, batch_size=16, seed=5, checkpoint_every_steps=10,
                     log_every_steps=5, async_checkpoints=False, device="cpu",
                     hparams={"hidden": 16, "step_delay": 0.02})
DATASET = DatasetSource(generator="blobs", params={"n_train": 256, "n_dev": 64, "seed": 2})


class Env:
    """A dev server that suggests continue-as-new early, and a worker, on a background event loop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = DevServer(port=free_port(), headless=True, data_dir=root / "server",
                                dynamic_config={"limit.historyCount.suggestContinueAsNew": 24})
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.queue = f"control-{uuid.uuid4().hex[:6]}"

    def __call__(self, coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.server.start(timeout=120)
        self.thread.start()
        self(self._start_worker())

    async def _start_worker(self) -> None:
        self.client: Client = await connect(self.server.address)
        store = SnapshotStore(str(self.root / "store"))
        train = TrainingActivities(trainables={"mlp": MLPTrainable()}, snapshot_store=store,
                                   checkpoint_root=str(self.root / "checkpoints"),
                                   heartbeat_every_seconds=0.1)
        snap = SnapshotActivities(store, generators={"blobs": blobs})
        # cancellations (pause, rollover) reach the activity within ~0.2 s, well inside a run
        self.worker = create_worker(self.client, task_queue=self.queue, workflows=[MLPTraining],
                                    activities=[*train.activities(), *snap.activities()],
                                    max_heartbeat_throttle_interval=timedelta(seconds=0.2),
                                    default_heartbeat_throttle_interval=timedelta(seconds=0.2))
        self.worker_task = asyncio.ensure_future(self.worker.run())

    def stop(self) -> None:
        try:
            self(self.worker.shutdown(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.server.stop()

    def run_input(self, run_id: str) -> TrainingInput:
        return TrainingInput(config=CONFIG, dataset=DATASET, run_id=run_id, task_queue=self.queue,
                             heartbeat_timeout_seconds=5, progress_every_seconds=0.05)

    def start_run(self, run_id: str) -> str:
        """Start a run; returns the id of its first workflow run."""
        handle = self(self.client.start_workflow(MLPTraining.run, self.run_input(run_id), id=run_id,
                                                 task_queue=self.queue))
        return str(handle.result_run_id)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, str]]:
    e = Env(tmp_path_factory.mktemp("control"))
    e.start()
    try:
        straight = f"straight-{uuid.uuid4().hex[:6]}"
        first_run = e.start_run(straight)
        result: TrainResult = e(e.client.get_workflow_handle_for(MLPTraining.run, straight).result())
        assert result.steps == CONFIG.max_steps and not result.stopped_early
        # continue-as-new really is in play on this server
        first = e(e.client.get_workflow_handle(straight, run_id=first_run).describe())
        assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW, first.status
        yield e, result.checkpoint.model_sha256
    finally:
        e.stop()


class Model:
    """What the state machine must admit, from the requests admitted so far (in order)."""

    def __init__(self) -> None:
        self.paused = False
        self.stopping = False

    def admits(self, op: str) -> bool:
        if op == "stop_early":
            return True
        if self.stopping:
            return False
        return op == "pause" or self.paused

    def apply(self, op: str) -> None:
        self.stopping |= op == "stop_early"
        self.paused = True if op == "pause" else False if op == "resume" else self.paused


OPS = st.lists(st.tuples(st.sampled_from(["pause", "resume", "stop_early"]),
                         st.sampled_from([0.0, 0.0, 0.05, 0.2, 0.5])), min_size=1, max_size=6)


async def _send(client: Client, run_id: str, op: str, start_with: tuple[TrainingInput, str] | None = None) -> str:
    """Send one request (with ``start_with`` = (input, queue): as update-with-start, so it reaches
    the run's first workflow task); returns "admitted", "refused: <message>" or "finished"."""
    handle = client.get_workflow_handle_for(MLPTraining.run, run_id)
    for _ in range(50):
        try:
            if start_with is not None:  # built here, on the client's event loop (it holds a future)
                start = WithStartWorkflowOperation(MLPTraining.run, start_with[0], id=run_id,
                                                   task_queue=start_with[1],
                                                   id_conflict_policy=WorkflowIDConflictPolicy.FAIL)
                update = await client.start_update_with_start_workflow(
                    op, start_workflow_operation=start, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
            else:
                update = await handle.start_update(op, wait_for_stage=WorkflowUpdateStage.ACCEPTED)
            # A refused update comes back completed (with its failure) instead of accepted...
            if getattr(update, "_known_outcome", None) is not None:
                await update.result()
            # ...or, sent with a run's first workflow task (before it read its input), it is
            # judged by its handler right after and fails
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(update.result()), timeout=0.5)
            return "admitted"
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError) and cause.type == "RunControlRefused", err
            return f"refused: {cause.message}"
        except Exception as err:  # noqa: BLE001 - the run closed (finished, or rolling over)
            if "already completed" not in str(err) and "aborted by closing workflow" not in str(err):
                raise
            desc = await handle.describe()
            if desc.status is not None and desc.status.name == "COMPLETED":
                return "finished"
            await asyncio.sleep(0.05)  # continue-as-new in progress: the next run takes it
    raise AssertionError(f"{op}: the run kept closing")


@settings(max_examples=14, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=OPS, with_start=st.booleans())
@example(ops=[("stop_early", 0.0)], with_start=False)  # the cases: stop while snapshotting,
@example(ops=[("pause", 0.5), ("resume", 0.0)], with_start=False)  # resume while the pause is checkpointing,
@example(ops=[("pause", 0.0), ("stop_early", 0.0)], with_start=False)  # stop a run paused before any checkpoint
@example(ops=[("pause", 0.0), ("resume", 0.0)], with_start=True)  # a pause in the run's first workflow task
def test_any_sequence_of_control_requests(env: tuple[Env, str], ops: list[tuple[str, float]],
                                          with_start: bool) -> None:
    """``with_start``: the first request comes with the start request (update-with-start), so it
    reaches the run in its first workflow task, before the run has read its input."""
    e, straight_sha = env
    run_id = f"ctl-{uuid.uuid4().hex[:8]}"
    start_with = (e.run_input(run_id), e.queue) if with_start else None
    if not with_start:
        e.start_run(run_id)
    model, log = Model(), []
    for op, gap in ops:
        time.sleep(gap)
        outcome = e(_send(e.client, run_id, op, start_with))
        start_with = None
        log.append((op, outcome))
        if outcome == "finished":
            break
        if outcome.startswith("refused") and "has finished" in outcome:
            continue
        assert (outcome == "admitted") == model.admits(op), (log, outcome)
        if outcome == "admitted":
            model.apply(op)
        else:
            why = "it is stopping early" if model.stopping else "it is not paused"
            assert outcome.startswith(f"refused: cannot {op.replace('_', ' ')} run") and why in outcome, log
    if model.paused and not model.stopping:
        assert e(_send(e.client, run_id, "resume")) in ("admitted", "finished"), log
    handle = e.client.get_workflow_handle_for(MLPTraining.run, run_id)
    result: TrainResult = e(handle.result(), timeout=90)
    if model.stopping and result.stopped_early:
        state = load_checkpoint(result.checkpoint)  # committed and verified
        assert state["counters"]["step"] == result.steps <= CONFIG.max_steps, log
    else:
        assert result.steps == CONFIG.max_steps and result.checkpoint.model_sha256 == straight_sha, log

    async def no_failed_tasks() -> None:
        async for event in handle.fetch_history_events():
            assert event.event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED, (log, event)

    e(no_failed_tasks())
