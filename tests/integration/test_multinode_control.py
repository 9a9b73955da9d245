"""The workflow side of a gang over several nodes, against a real dev server with scripted node
activities (no torch; seconds): a node failure brings the other nodes down and restarts them all
together as a new gang; ``max_attempts`` gang failures, or one failure no retry can fix, fail the run;
pause and stop reach every node."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from temporalio import activity
from temporalio.client import WorkflowFailureError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError

from temporal_ml.activities.messages import TRAIN, TrainOutcome, TrainRequest
from temporal_ml.activities.training import _publish_rendezvous
from temporal_ml.client import connect
from temporal_ml.types import CheckpointRef, SnapshotRef, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.training import TrainingInput
from tests.integration._training_workflows import MLPTraining

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(trainable="mlp", max_steps=10, batch_size=4)
SNAPSHOT = SnapshotRef(id="b" * 64, root="memory://snaps", splits={"train": 8})


def _ckpt(run_id: str, step: int) -> CheckpointRef:
    return CheckpointRef(run_id=run_id, step=step, uri=f"memory://{run_id}/{step}",
                         model_sha256="0" * 64)


@dataclass
class Nodes:
    """Scripted node activities: ``behave(request)`` returns ``"ok"``, ``"fail"``, ``"config"`` or
    ``"wait"`` (train until cancelled); every start and how it ended is recorded."""

    behave: Callable[[TrainRequest], str]
    starts: list[tuple[str | None, int, str]] = field(default_factory=list)  # gang, node, ending
    running: int = 0
    endpoints: list[tuple[str | None, int, str | None]] = field(default_factory=list)
    stops: list[tuple[str | None, int, bool]] = field(default_factory=list)  # stop_at_start
    gate: asyncio.Event | None = None  # node 0 publishes its endpoint once it is set

    @activity.defn(name=TRAIN)
    async def train(self, req: TrainRequest) -> TrainOutcome:
        self.stops.append((req.gang_id, req.node_rank, req.stop_at_start))
        if req.rendezvous == "auto":  # node 0 publishes its endpoint, as the real activity does
            if self.gate is not None:
                self.running += 1
                await self.gate.wait()
                self.running -= 1
            handle = activity.client().get_workflow_handle(activity.info().workflow_id)
            req = await _publish_rendezvous(req, handle)
        self.endpoints.append((req.gang_id, req.node_rank, req.rendezvous))
        what = self.behave(req)
        self.running += 1
        try:
            if what == "fail":
                await asyncio.sleep(0.2)
                raise RuntimeError(f"node {req.node_rank} died")
            if what == "config":
                raise ApplicationError("bad setting", type="ConfigError", non_retryable=True)
            try:
                while what == "wait":
                    activity.heartbeat()
                    await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                self.starts.append((req.gang_id, req.node_rank, "cancelled"))
                raise
            self.starts.append((req.gang_id, req.node_rank, "ok"))
            metrics = {"eval_accuracy": 0.9} if req.node_rank == 0 else {}
            return TrainOutcome(step=10, checkpoint=_ckpt(req.run_id, 10), metrics=metrics,
                                resumes=req.resumes + (req.resume_from is not None))
        finally:
            self.running -= 1


async def _run(nodes: Nodes, *, max_attempts: int = 20, rendezvous: str = "127.0.0.1:1",
               control: Callable[..., object] | None = None):  # type: ignore[no-untyped-def]
    client = await connect()
    tag = uuid.uuid4().hex[:8]
    queues = [f"mnc-n0-{tag}", f"mnc-n1-{tag}"]
    inp = TrainingInput(config=CONFIG, snapshot=SNAPSHOT, run_id=f"mnc-{tag}", nodes=2,
                        node_task_queues=queues, rendezvous=rendezvous, max_attempts=max_attempts,
                        heartbeat_timeout_seconds=5, progress_every_seconds=0.2)
    workers = [create_worker(client, task_queue=queues[0], workflows=[MLPTraining],
                             activities=[nodes.train]),
               create_worker(client, task_queue=queues[1], activities=[nodes.train])]
    async with workers[0], workers[1]:
        handle = await client.start_workflow(MLPTraining.run, inp, id=inp.run_id, task_queue=queues[0])
        if control is not None:
            await control(handle)  # type: ignore[misc]
        return await handle.result()


def _starts_of(nodes: Nodes, gang: int) -> set[tuple[int, str]]:
    return {(n, how) for g, n, how in nodes.starts if g is not None and g.endswith(f"-gang-{gang}")}


async def test_a_node_failure_restarts_the_whole_gang(temporal_address: str) -> None:
    nodes = Nodes(lambda r: ("fail" if r.node_rank == 1 else "wait")
                  if r.gang_id and r.gang_id.endswith("-gang-1") else "ok")
    result = await _run(nodes)
    assert result.steps == 10 and result.metrics == {"eval_accuracy": 0.9}  # node 0's outcome
    assert _starts_of(nodes, 1) == {(0, "cancelled")}  # node 1 failed: node 0 was brought down
    assert _starts_of(nodes, 2) == {(0, "ok"), (1, "ok")}
    assert nodes.running == 0


async def test_gang_failures_count_against_max_attempts(temporal_address: str) -> None:
    nodes = Nodes(lambda r: "fail" if r.node_rank == 1 else "wait")
    with pytest.raises(WorkflowFailureError) as info:
        await _run(nodes, max_attempts=2)
    assert "node 1 died" in str(info.value.cause.cause)  # type: ignore[union-attr]
    assert len(nodes.starts) == 2  # two gangs, then the run failed
    assert _starts_of(nodes, 1) == {(0, "cancelled")} and _starts_of(nodes, 2) == {(0, "cancelled")}


async def test_a_config_error_fails_the_run_at_once(temporal_address: str) -> None:
    nodes = Nodes(lambda r: "config" if r.node_rank == 0 else "wait")
    with pytest.raises(WorkflowFailureError) as info:
        await _run(nodes)
    assert "bad setting" in str(info.value.cause.cause)  # type: ignore[union-attr]
    assert nodes.starts == [(nodes.starts[0][0], 1, "cancelled")]


async def test_pause_resume_and_stop_reach_every_node(temporal_address: str) -> None:
    nodes = Nodes(lambda r: "wait")

    async def control(handle) -> None:  # type: ignore[no-untyped-def]
        while nodes.running < 2:
            await asyncio.sleep(0.05)
        paused = await handle.execute_update(MLPTraining.pause)
        assert paused.state == "paused" and nodes.running == 0
        assert _starts_of(nodes, 1) == {(0, "cancelled"), (1, "cancelled")}
        await handle.execute_update(MLPTraining.resume)
        while nodes.running < 2:
            await asyncio.sleep(0.05)
        nodes.behave = lambda r: "ok"  # a stop before any checkpoint: every node stops at once
        await handle.execute_update(MLPTraining.stop_early)

    result = await _run(nodes, control=control)
    assert _starts_of(nodes, 2) == {(0, "cancelled"), (1, "cancelled")}
    assert _starts_of(nodes, 3) == {(0, "ok"), (1, "ok")}  # started in stop mode
    assert result.steps == 10 and nodes.running == 0


async def test_node_0_publishes_the_endpoint_of_each_gang(
        temporal_address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``rendezvous="auto"``: node 0 starts first and signals where it hosts the rendezvous; the
    other nodes start with that endpoint, a new one for each gang."""
    monkeypatch.setenv("TEMPORAL_ML_NODE_ADDRESS", "10.1.2.3")
    nodes = Nodes(lambda r: ("fail" if r.node_rank == 1 else "wait")
                  if r.gang_id and r.gang_id.endswith("-gang-1") else "ok")
    result = await _run(nodes, rendezvous="auto")
    assert result.steps == 10
    by_gang: dict[str | None, dict[int, str | None]] = {}
    for gang, node, endpoint in nodes.endpoints:
        by_gang.setdefault(gang, {})[node] = endpoint
    assert len(by_gang) == 2
    for endpoints in by_gang.values():
        assert endpoints[0] == endpoints[1] and endpoints[0] is not None
        assert endpoints[0].startswith("10.1.2.3:")


async def test_a_pause_while_node_0_publishes_still_forms_and_stops_the_gang(
        temporal_address: str) -> None:
    """Node 0 gathers the gang once it has published its endpoint: a pause that came meanwhile
    still starts the other nodes, in stop mode, so node 0 is not left waiting in the rendezvous."""
    nodes = Nodes(lambda r: "ok" if r.node_rank == 1 else "wait", gate=asyncio.Event())

    async def control(handle) -> None:  # type: ignore[no-untyped-def]
        while nodes.running < 1:
            await asyncio.sleep(0.05)  # node 0 runs, not yet published
        pause = await handle.start_update(MLPTraining.pause,
                                          wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        assert nodes.gate is not None
        nodes.gate.set()
        paused = await pause.result()
        assert paused.state == "paused"
        gang_1 = [(n, stop) for g, n, stop in nodes.stops if g and g.endswith("-gang-1")]
        assert sorted(gang_1) == [(0, False), (1, True)]  # node 1 came, in stop mode
        nodes.gate, nodes.behave = None, lambda r: "ok"
        await handle.execute_update(MLPTraining.resume)

    result = await _run(nodes, rendezvous="auto", control=control)
    assert result.steps == 10 and _starts_of(nodes, 2) == {(0, "ok"), (1, "ok")}
