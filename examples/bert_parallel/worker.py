"""Workers of the bert_parallel example, one role per process and task queue::

    python -m examples.bert_parallel.worker --role orchestration   # workflows + snapshot activity
    python -m examples.bert_parallel.worker --role train --max-concurrent-trainings 2
    python -m examples.bert_parallel.worker --role eval

Each role polls its own queue (``--queue``, ``--train-queue``, ``--eval-queue``); start as many
train or eval workers as you have machines for. ``--role all`` runs the three in one process. Finds
the server through ``TEMPORAL_ADDRESS``; stores snapshots and checkpoints under ``$TEMPORAL_ML_STORE``
(default ``~/.temporal-ml/examples/bert_parallel``), which every role must share.
"""

from __future__ import annotations

from .._shared import ROLE_NAMES, RoleWorkers
from .workflows import EVAL_QUEUE, TASK_QUEUE, TRAIN_QUEUE, WORKFLOWS

EXAMPLE = "bert_parallel"
ROLES = ROLE_NAMES

_roles = RoleWorkers(EXAMPLE, WORKFLOWS, task_queue=TASK_QUEUE, train_queue=TRAIN_QUEUE,
                     eval_queue=EVAL_QUEUE)
add_queue_options = _roles.add_queue_options
workers = _roles.workers
parser = _roles.parser(__doc__.splitlines()[0])


def main() -> None:
    _roles.main(parser)


if __name__ == "__main__":
    main()
