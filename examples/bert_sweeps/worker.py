"""Workers of the bert_sweeps example, one role per process and task queue::

    python -m examples.bert_sweeps.worker --role orchestration   # workflows + snapshot and sweep activities
    python -m examples.bert_sweeps.worker --role train --max-concurrent-trainings 2
    python -m examples.bert_sweeps.worker --role eval

Each role polls its own queue (``--queue``, ``--train-queue``, ``--eval-queue``); start as many
train or eval workers as you have machines for. ``--role all`` runs the three in one process. Finds
the server through ``TEMPORAL_ADDRESS``; stores snapshots and checkpoints under ``$TEMPORAL_ML_STORE``
(default ``~/.temporal-ml/examples/bert_sweeps``), which every role must share.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from temporal_ml.errors import ConfigError
from temporal_ml.roles import Role, WorkerSpec, build_workers

from .._shared import SYNTHETIC, TRAINABLE, run_workers, store_dir
from .workflows import EVAL_QUEUE, TASK_QUEUE, TRAIN_QUEUE, WORKFLOWS

EXAMPLE = "bert_sweeps"
ROLES = tuple(role.value for role in Role)


def add_queue_options(parser: argparse.ArgumentParser) -> None:
    """The task-queue options shared by the worker and the starter."""
    parser.add_argument("--queue", default=TASK_QUEUE,
                        help=f"orchestration queue: workflows + snapshot activity (default {TASK_QUEUE})")
    parser.add_argument("--train-queue", default=TRAIN_QUEUE,
                        help=f"training activities (default {TRAIN_QUEUE})")
    parser.add_argument("--eval-queue", default=EVAL_QUEUE,
                        help=f"evaluation activities (default {EVAL_QUEUE})")


def workers(client: Client, roles: Sequence[str], *, queue: str = TASK_QUEUE,
            train_queue: str = TRAIN_QUEUE, eval_queue: str = EVAL_QUEUE,
            max_concurrent_trainings: int = 1) -> list[Worker]:
    """One worker per role, each on its own task queue (:func:`temporal_ml.roles.build_workers`).

    Torch is imported only for the train and eval roles.
    """
    from temporal_ml.hf import sentiment_dataset

    queues = {"orchestration": queue, "train": train_queue, "eval": eval_queue}
    orchestration = "orchestration" in roles
    trainables: dict[str, Any] = {}
    if "train" in roles or "eval" in roles:
        from temporal_ml.hf import TextClassificationTrainable

        trainables = {TRAINABLE: TextClassificationTrainable()}
    try:
        spec = WorkerSpec(
            roles=[Role.parse(r) for r in roles], store=str(store_dir(EXAMPLE)),
            task_queues={Role.parse(r): queues[r] for r in roles},
            workflows=WORKFLOWS if orchestration else (),
            generators={SYNTHETIC: sentiment_dataset} if orchestration else {},
            trainables=trainables, max_concurrent_trainings=max_concurrent_trainings,
        )
    except ConfigError as err:
        raise SystemExit(f"bert_sweeps worker: {err}") from None
    return build_workers(client, spec)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--role", required=True, choices=[*ROLES, "all"], help="what this process runs")
add_queue_options(parser)
parser.add_argument("--max-concurrent-trainings", type=int, default=1,
                    help="training loops at once on a train worker (the GPUs of the machine; default 1)")


def main() -> None:
    args = parser.parse_args()
    roles = list(ROLES) if args.role == "all" else [args.role]
    run_workers(lambda client: workers(client, roles, queue=args.queue, train_queue=args.train_queue,
                                       eval_queue=args.eval_queue,
                                       max_concurrent_trainings=args.max_concurrent_trainings),
                EXAMPLE)


if __name__ == "__main__":
    main()
