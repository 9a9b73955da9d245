"""Record the multi-node training history replayed by ``tests/replay/test_replay.py``::

    python -m tests.replay.record_multinode [OUT_DIR]      # default: tests/replay/histories

Two ``TrainingWorkflow`` runs over two nodes (``nodes=2``, a queue per node) with scripted node
activities (those of ``tests/integration/test_multinode_control.py``): the first gang fails on node 1
and is restarted as a whole, the second is paused and resumed, the third completes. Written as
``training_multinode.json`` (a fixed rendezvous endpoint) and ``training_multinode_auto.json``
(``rendezvous="auto"``: node 0 publishes it for each gang). Re-record only on purpose (see ``record_histories``).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.worker import create_worker
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import free_port
from tests.integration._training_workflows import MLPTraining
from tests.integration.test_multinode_control import CONFIG, SNAPSHOT, Nodes
from tests.replay.record_histories import HERE, _save


def _script(req: object) -> str:
    gang = getattr(req, "gang_id", "") or ""
    if gang.endswith("-gang-1"):
        return "fail" if getattr(req, "node_rank", 0) == 1 else "wait"
    return "wait" if gang.endswith("-gang-2") else "ok"


async def record(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    await _record(out, "training_multinode", "127.0.0.1:29400")
    await _record(out, "training_multinode_auto", "auto")


async def _record(out: Path, name: str, rendezvous: str) -> None:
    nodes = Nodes(_script)  # type: ignore[arg-type]
    queues = [f"replay-node0-{name}", f"replay-node1-{name}"]
    with tempfile.TemporaryDirectory() as tmp:
        server = DevServer(port=free_port(), headless=True, data_dir=Path(tmp) / "server")
        server.start(timeout=120)
        try:
            client = await connect(server.address)
            snapshots = SnapshotActivities(SnapshotStore(f"{tmp}/store")).activities()
            async with create_worker(client, task_queue=queues[0], workflows=[MLPTraining],
                                     activities=[nodes.train, *snapshots]), \
                    create_worker(client, task_queue=queues[1], activities=[nodes.train]):
                inp = TrainingInput(config=CONFIG, snapshot=SNAPSHOT, run_id=f"replay-{name}",
                                    nodes=2, node_task_queues=queues, rendezvous=rendezvous,
                                    heartbeat_timeout_seconds=5, progress_every_seconds=0.2)
                handle = await client.start_workflow(MLPTraining.run, inp, id=inp.run_id,
                                                     task_queue=queues[0])
                while not any(g and g.endswith("-gang-1") for g, _, _ in nodes.starts):
                    await asyncio.sleep(0.05)  # the first gang came down
                while nodes.running < 2:
                    await asyncio.sleep(0.05)  # the second gang trains
                await handle.execute_update(MLPTraining.pause)
                await handle.execute_update(MLPTraining.resume)
                result = await handle.result()
                assert result.steps == 10, result
                await _save(handle, out, name)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(record(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "histories"))
