"""Worker of the bert_finetune example: ``python -m examples.bert_finetune.worker``."""

from __future__ import annotations

from .._shared import one_worker, worker_main
from .workflows import TASK_QUEUE, BertFineTuneWorkflow, BertInferenceWorkflow

EXAMPLE = "bert_finetune"
#: one worker for the example (also run in-process by ``starter.py --embedded``)
workers = one_worker(EXAMPLE, TASK_QUEUE, [BertFineTuneWorkflow, BertInferenceWorkflow])


def main() -> None:
    worker_main(EXAMPLE, workers)


if __name__ == "__main__":
    main()
