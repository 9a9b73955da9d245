"""A worker process for the crash tests::

    python -m tests.integration.training_worker TASK_QUEUE STORE_ROOT [ROLE]

ROLE is ``all`` (default: every workflow and activity on one queue), ``orchestration`` (workflows +
snapshot activity), ``train`` (training activities, up to 4 concurrent trainings) or ``eval``.
Prints ``worker ready`` once polling; runs until killed.

``TML_TEST_SLOW_SAVE=SECONDS``: background (async) checkpoint saves pause that long after writing
their files and before committing them, with ``STORE_ROOT/saving-<pid>`` (this worker's process id)
naming the step directory meanwhile, so a test can SIGKILL this very worker in the middle of a
background save it started (a marker left by an earlier, killed worker names another pid)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.worker import create_worker
from tests.integration._training_workflows import MLPCoordinator, MLPEval, MLPInference, MLPTraining
from tests.trainables import MLPTrainable, NoisyScaledTrainable, blobs

WORKFLOWS = [MLPTraining, MLPInference, MLPEval, MLPCoordinator]


def _parts(role: str, root: str) -> tuple[list[type], list[Callable[..., Any]]]:
    store = SnapshotStore(root)
    trainables = {"mlp": MLPTrainable(), "noisy": NoisyScaledTrainable()}
    train = TrainingActivities(trainables=trainables, snapshot_store=store, max_concurrent_trainings=4,
                               checkpoint_root=f"{root}/checkpoints", metrics_dir=f"{root}/metrics")
    snapshot = SnapshotActivities(store, generators={"blobs": blobs}).activities()
    evaluate = EvalActivities(trainables=trainables, snapshot_store=store).activities()
    return {
        "all": (WORKFLOWS, [*train.activities(), *snapshot, *evaluate]),
        "orchestration": (WORKFLOWS, snapshot),
        "train": ([], train.activities()),
        "eval": ([], evaluate),
    }[role]


def _slow_background_saves(seconds: float, root: str) -> None:
    from temporal_ml.storage import _ckpt_save

    real = _ckpt_save.replace
    marker = Path(root) / f"saving-{os.getpid()}"

    def replace(fs, directory, files, suffix, manifest):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.startswith("temporal-ml-ckpt"):  # the background writer
            marker.write_text(directory)
            time.sleep(seconds)  # files written, not yet committed
            real(fs, directory, files, suffix, manifest)
            marker.unlink()
        else:
            real(fs, directory, files, suffix, manifest)

    _ckpt_save.replace = replace  # type: ignore[assignment]


async def main(task_queue: str, root: str, role: str) -> None:
    if os.environ.get("TML_TEST_SLOW_SAVE"):
        _slow_background_saves(float(os.environ["TML_TEST_SLOW_SAVE"]), root)
    workflows, activities = _parts(role, root)
    client = await connect()
    worker = create_worker(client, task_queue=task_queue, workflows=workflows, activities=activities,
                           max_concurrent_activities=8)
    async with worker:
        print("worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "all"))
