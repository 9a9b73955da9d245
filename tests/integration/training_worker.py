"""A training worker process for the crash tests: ``python -m tests.integration.training_worker
TASK_QUEUE STORE_ROOT``. Prints ``worker ready`` once polling; runs until killed."""

from __future__ import annotations

import asyncio
import sys

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.worker import create_worker
from tests.integration._training_workflows import MLPCoordinator, MLPEval, MLPInference, MLPTraining
from tests.trainables import MLPTrainable, blobs


async def main(task_queue: str, root: str) -> None:
    store = SnapshotStore(f"{root}/snapshots")
    training = TrainingActivities(trainables={"mlp": MLPTrainable()}, snapshot_store=store,
                                  checkpoint_root=f"{root}/checkpoints", metrics_dir=f"{root}/metrics")
    snapshots = SnapshotActivities(store, generators={"blobs": blobs})
    evaluation = EvalActivities(trainables={"mlp": MLPTrainable()}, snapshot_store=store)
    client = await connect()
    worker = create_worker(client, task_queue=task_queue,
                           workflows=[MLPTraining, MLPInference, MLPEval, MLPCoordinator],
                           activities=[*training.activities(), *snapshots.activities(),
                                       *evaluation.activities()])
    async with worker:
        print("worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
