"""Worker of the bert_eval example: ``python -m examples.bert_eval.worker``.

One worker for everything: the three workflows and the snapshot, training and evaluation
activities. Finds the server through ``TEMPORAL_ADDRESS`` (default localhost:7233); stores snapshots
and checkpoints under ``$TEMPORAL_ML_STORE`` (default ``~/.temporal-ml/examples/bert_eval``)."""

from __future__ import annotations

from .._shared import one_worker, worker_main
from .workflows import TASK_QUEUE, WORKFLOWS

EXAMPLE = "bert_eval"
#: the example's worker (also run in-process by ``starter.py --embedded``)
workers = one_worker(EXAMPLE, TASK_QUEUE, WORKFLOWS)


def main() -> None:
    worker_main(EXAMPLE, workers)


if __name__ == "__main__":
    main()
