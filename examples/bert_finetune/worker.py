"""Worker of the bert_finetune example: ``python -m examples.bert_finetune.worker``."""

from __future__ import annotations

from .._shared import run_worker
from .workflows import TASK_QUEUE, BertFineTuneWorkflow, BertInferenceWorkflow


def main() -> None:
    run_worker("bert_finetune", TASK_QUEUE, [BertFineTuneWorkflow, BertInferenceWorkflow])


if __name__ == "__main__":
    main()
