"""A worker process for the sweep tests::

    python -m tests.integration.sweep_worker TASK_QUEUE STORE_ROOT [ROLE]

Like ``tests.integration.training_worker``, plus the sweep workflows and the sweep activities on the
orchestration side. Prints ``worker ready`` once polling; runs until killed."""

from __future__ import annotations

import asyncio
import sys

from temporal_ml.activities.sweep import SweepActivities
from temporal_ml.client import connect
from temporal_ml.worker import create_worker
from tests.integration import _sweep_workflows
from tests.integration.training_worker import WORKFLOWS, _parts

SWEEPS = [getattr(_sweep_workflows, name) for name in ("MLPSweep", "MLPLadder") if hasattr(_sweep_workflows, name)]


async def main(task_queue: str, root: str, role: str) -> None:
    workflows, activities = _parts(role, root)
    if role in ("all", "orchestration"):
        workflows = [*WORKFLOWS, *SWEEPS]
        activities = [*activities, *SweepActivities().activities()]
    client = await connect()
    worker = create_worker(client, task_queue=task_queue, workflows=workflows, activities=activities,
                           max_concurrent_activities=8)
    async with worker:
        print("worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "all"))
