"""One run over two "nodes" against a real dev server (issue 10, several machines): two worker
processes on localhost, each polling its own node queue, run one training activity each; the ranks
rendezvous through torch's c10d rendezvous and train bitwise like one node with two ranks. When one
node's worker is SIGKILLed, the other node's activity is brought down too and the whole gang restarts
from the last committed checkpoint (all or nothing), ending with the same weights; no rank process
outlives its worker."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.types import TrainConfig, TrainResult
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import free_port
from tests.integration._procs import start_worker_process
from tests.integration._training_workflows import MLPTraining
from tests.integration.test_ddp import CONFIG as DDP_CONFIG
from tests.integration.test_ddp import _alive
from tests.integration.test_durable_training import (
    DATASET,
    _assert_bitwise_equal,
    _wait_for_step,
)

pytestmark = pytest.mark.integration

ONE_NODE = DDP_CONFIG  # world_size 2: one node, two ranks
PER_NODE = DDP_CONFIG.model_copy(update={"world_size": 1})  # two nodes, one rank each


class Nodes:
    """Worker processes on localhost: node 0 (also the workflows' worker) and node 1, each polling
    its own queue, sharing one store root (the checkpoint store every node must reach)."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        tag = uuid.uuid4().hex[:8]
        self.queues = [f"node0-{tag}", f"node1-{tag}"]
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, node: int) -> subprocess.Popen[bytes]:
        proc = start_worker_process(
            "tests.integration.training_worker",
            [self.queues[node], str(self.root), "all" if node == 0 else "train"],
            self.root / f"worker-{len(self.procs)}-node{node}.log", self.env)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def rank_pids(self, run_id: str) -> list[int]:
        pids = []
        for path in (self.root / "gangs").glob(f"tml-gang-{run_id}-*/rank-*.pid"):
            try:
                pids.append(int(path.read_text()))
            except ValueError:  # being written
                pass
        return pids


@pytest.fixture
def nodes(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Nodes]:
    gangs = tmp_path / "gangs"  # the workers' temp dir: where the gangs keep their pid files
    gangs.mkdir()
    # TEMPORAL_ML_NODE_ADDRESS: where node 0 says it hosts the rendezvous (rendezvous="auto")
    n = Nodes(tmp_path, {**subprocess_env, "TMPDIR": str(gangs),
                         "TEMPORAL_ML_NODE_ADDRESS": "127.0.0.1"})
    yield n
    n.stop_all()


async def _run(nodes: Nodes, run_id: str, config: TrainConfig, two_nodes: bool,  # type: ignore[no-untyped-def]
               rendezvous: str | None = None):
    extra = {"nodes": 2, "node_task_queues": nodes.queues,
             "rendezvous": rendezvous or f"127.0.0.1:{free_port()}"} if two_nodes else {}
    inp = TrainingInput(config=config, dataset=DATASET, run_id=run_id, task_queue=nodes.queues[0],
                        heartbeat_timeout_seconds=3, progress_every_seconds=0.2, **extra)
    client = await connect()
    return await client.start_workflow(MLPTraining.run, inp, id=run_id, task_queue=nodes.queues[0])


async def test_two_nodes_train_like_one_and_restart_together(nodes: Nodes) -> None:
    nodes.start(0)
    node1 = nodes.start(1)
    one = await _run(nodes, f"mn-one-{uuid.uuid4().hex[:6]}", ONE_NODE, two_nodes=False)
    two = await _run(nodes, f"mn-two-{uuid.uuid4().hex[:6]}", PER_NODE, two_nodes=True)
    reference: TrainResult = await one.result()
    assert reference.steps == ONE_NODE.max_steps and reference.resumes == 0
    result: TrainResult = await two.result()
    _assert_bitwise_equal(result, reference)
    assert result.resumes == 0 and not result.stopped_early

    # SIGKILL node 1's worker mid-run: its rank dies with it, node 0's activity is brought down, and
    # (once a replacement node 1 polls) both nodes restart from the last committed checkpoint. This
    # run lets node 0 publish its endpoint for each gang (rendezvous="auto").
    run_id = f"mn-kill-{uuid.uuid4().hex[:6]}"
    handle = await _run(nodes, run_id, PER_NODE, two_nodes=True, rendezvous="auto")
    await _wait_for_step(handle, 30)
    ranks = nodes.rank_pids(run_id)
    assert len(ranks) == 2 and all(_alive(p) for p in ranks)
    node1.kill()
    node1.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in ranks) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # node 1's rank dies with its worker, node 0's in the broken gang
    assert not [p for p in ranks if _alive(p)], "rank processes outlived the broken gang"
    nodes.start(1)
    seen = set(ranks)  # every rank process of the run, the restarted gang's included

    async def watch() -> None:
        while True:
            seen.update(nodes.rank_pids(run_id))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    try:
        result = await handle.result()
    finally:
        watcher.cancel()
    _assert_bitwise_equal(result, reference)
    assert result.resumes == 1 and result.steps == PER_NODE.max_steps
    assert len(seen) >= 4  # two gangs of two ranks
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in seen) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not [p for p in seen if _alive(p)], "rank processes left running after the run"
