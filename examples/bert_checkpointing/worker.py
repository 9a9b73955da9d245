"""Worker of the bert_checkpointing example: ``python -m examples.bert_checkpointing.worker``.

Finds the server through ``TEMPORAL_ADDRESS`` (default localhost:7233); stores snapshots and
checkpoints under ``$TEMPORAL_ML_STORE`` (default ``~/.temporal-ml/examples/bert_checkpointing``)."""

from __future__ import annotations

from .._shared import one_worker, worker_main
from .workflows import TASK_QUEUE, BertCheckpointingWorkflow

EXAMPLE = "bert_checkpointing"
#: the workflows, snapshot, training and evaluation activities on one queue (also run in-process by
#: ``starter.py --embedded``)
workers = one_worker(EXAMPLE, TASK_QUEUE, [BertCheckpointingWorkflow])


def main() -> None:
    worker_main(EXAMPLE, workers)


if __name__ == "__main__":
    main()
