"""Worker of the cifar10_scaleup example: the workflows, the snapshot activity (CIFAR-10 from
``.npz`` files) and the training activities on one task queue::

    python -m examples.cifar10_scaleup.worker

Every training runs in child processes started by the gang supervisor (one per rank; a world size of
1 too, so every scale runs with the same threads per rank). Finds the server through
``TEMPORAL_ADDRESS``; keeps snapshots and checkpoints under ``$TEMPORAL_ML_STORE`` (default
``~/.temporal-ml/examples/cifar10_scaleup``).
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from .._shared import run_workers, store_dir
from .model import GENERATOR, TRAINABLE, ResNetTrainable, cifar10_npz
from .workflows import TASK_QUEUE, WORKFLOWS

EXAMPLE = "cifar10_scaleup"


def worker(client: Client, task_queue: str = TASK_QUEUE) -> Worker:
    """One worker for the whole example."""
    from temporal_ml.activities.snapshot import SnapshotActivities
    from temporal_ml.activities.training import TrainingActivities
    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.worker import create_worker

    root = store_dir(EXAMPLE)
    store = SnapshotStore(str(root))
    training = TrainingActivities(
        trainables={TRAINABLE: ResNetTrainable()}, snapshot_store=store,
        checkpoint_root=str(root / "checkpoints"), metrics_dir=root / "metrics",
        trainings_in_processes=True,
    )
    activities = [*training.activities(),
                  *SnapshotActivities(store, generators={GENERATOR: cifar10_npz}).activities()]
    return create_worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=activities,
                         max_concurrent_activities=3)


def main() -> None:
    run_workers(lambda client: [worker(client)], EXAMPLE)


if __name__ == "__main__":
    main()
