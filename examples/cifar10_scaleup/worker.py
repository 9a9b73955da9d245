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

from temporal_ml.roles import Role, WorkerSpec, build_worker

from .._shared import store_dir, worker_main
from .model import GENERATOR, TRAINABLE, ResNetTrainable, cifar10_npz
from .workflows import TASK_QUEUE, WORKFLOWS

EXAMPLE = "cifar10_scaleup"


def worker(client: Client, task_queue: str = TASK_QUEUE) -> Worker:
    """One worker for the whole example: every training in child processes (one per rank)."""
    spec = WorkerSpec(roles=[Role.ORCHESTRATION, Role.TRAIN], store=str(store_dir(EXAMPLE)), workflows=WORKFLOWS,
                      generators={GENERATOR: cifar10_npz}, trainables={TRAINABLE: ResNetTrainable()},
                      trainings_in_processes=True, max_concurrent_activities=3)
    return build_worker(client, spec, task_queue=task_queue)


def main() -> None:
    worker_main(EXAMPLE, lambda client: [worker(client)])


if __name__ == "__main__":
    main()
