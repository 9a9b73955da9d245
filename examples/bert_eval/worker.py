"""Worker of the bert_eval example: ``python -m examples.bert_eval.worker``.

One worker for everything: the three workflows and the snapshot, training and evaluation
activities. Finds the server through ``TEMPORAL_ADDRESS`` (default localhost:7233); stores snapshots
and checkpoints under ``$TEMPORAL_ML_STORE`` (default ``~/.temporal-ml/examples/bert_eval``)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from .._shared import experiment_worker, run_workers
from .workflows import TASK_QUEUE, WORKFLOWS


def workers(client: Client) -> list[Worker]:
    """The example's worker (also run in-process by ``starter.py --embedded``)."""
    return [experiment_worker(client, task_queue=TASK_QUEUE, example="bert_eval", workflows=WORKFLOWS)]


def main() -> None:
    run_workers(workers, "bert_eval")


if __name__ == "__main__":
    main()
