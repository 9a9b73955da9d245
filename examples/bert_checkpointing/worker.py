"""Worker of the bert_checkpointing example: ``python -m examples.bert_checkpointing.worker``.

Finds the server through ``TEMPORAL_ADDRESS`` (default localhost:7233); stores snapshots and
checkpoints under ``$TEMPORAL_ML_STORE`` (default ``~/.temporal-ml/examples/bert_checkpointing``)."""

from __future__ import annotations

from .._shared import run_worker
from .workflows import TASK_QUEUE, BertCheckpointingWorkflow


def main() -> None:
    run_worker("bert_checkpointing", TASK_QUEUE, [BertCheckpointingWorkflow])


if __name__ == "__main__":
    main()
