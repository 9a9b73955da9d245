"""A worker process for the sweep tests::

    python -m tests.integration.sweep_worker TASK_QUEUE STORE_ROOT [ROLE]

Like ``tests.integration.training_worker``, plus the sweep workflows and the sweep activities on the
orchestration side. Prints ``worker ready`` once polling; runs until killed."""

from __future__ import annotations

import asyncio
import os
import sys

from temporal_ml.activities.sweep import SweepActivities
from temporal_ml.client import connect
from temporal_ml.worker import create_worker
from tests.integration import _sweep_workflows
from tests.integration.training_worker import WORKFLOWS, _parts

SWEEPS = [getattr(_sweep_workflows, name) for name in ("MLPSweep", "MLPLadder") if hasattr(_sweep_workflows, name)]


def shift_random_searcher_seed() -> None:
    """Deploy a changed searcher call (``TML_TEST_SHIFT_SEARCHER_SEED=1``): the random searcher
    suggests as if the sweep's seed were one more, as a one-line change in the searcher would."""
    from temporal_ml.search import RandomSearcher

    original = RandomSearcher.suggest

    def shifted(self, space, history, *, seed, index, direction="minimize"):  # type: ignore[no-untyped-def]
        return original(self, space, history, seed=seed + 1, index=index, direction=direction)

    RandomSearcher.suggest = shifted  # type: ignore[method-assign]


def fill_the_store_while(marker: str) -> None:
    """Every checkpoint file write fails with ENOSPC while the file ``marker`` exists (a full store);
    when the file holds a step number, only writes of checkpoints at that step or later fail; when it
    starts with ``unreachable``, they fail with ECONNREFUSED (a store that does not answer)."""
    import errno
    import re

    from temporal_ml.storage import _ckpt_io

    real = _ckpt_io._write_chunks  # noqa: SLF001 - the one place checkpoint bytes are written

    def write(fs, path, chunks):  # type: ignore[no-untyped-def]
        try:
            text = open(marker).read().strip()  # noqa: SIM115 - read once, closed by refcount
        except FileNotFoundError:
            text = None
        if text is not None:
            unreachable = text.startswith("unreachable")
            text = text.removeprefix("unreachable").strip()
            step = re.search(r"step-(\d{12})", str(path))
            if not text or (step is not None and int(step.group(1)) >= int(text)):
                if unreachable:
                    raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused", path)
                raise OSError(errno.ENOSPC, "No space left on device", path)
        real(fs, path, chunks)

    _ckpt_io._write_chunks = write  # type: ignore[assignment]  # noqa: SLF001


def slow_deletes(seconds: float) -> None:
    """Every checkpoint deletion (not a measurement) takes ``seconds`` more
    (``TML_TEST_SLOW_DELETE``): a slow object store, so deletions overlap whatever else happens."""
    import time

    from temporal_ml.activities._heartbeat import heartbeating

    real = SweepActivities.delete_run_checkpoints

    def delete(self, req):  # type: ignore[no-untyped-def]
        if not req.dry_run:
            with heartbeating():  # a slow store, not a dead worker: the activity heartbeats meanwhile
                time.sleep(seconds)
        return real(self, req)

    delete.__temporal_activity_definition = real.__temporal_activity_definition  # type: ignore[attr-defined]
    SweepActivities.delete_run_checkpoints = delete  # type: ignore[method-assign]


async def main(task_queue: str, root: str, role: str) -> None:
    if os.environ.get("TML_TEST_SHIFT_SEARCHER_SEED") == "1":
        shift_random_searcher_seed()
    if os.environ.get("TML_TEST_SLOW_DELETE"):
        slow_deletes(float(os.environ["TML_TEST_SLOW_DELETE"]))
    if os.environ.get("TML_TEST_FULL_MARKER"):
        fill_the_store_while(os.environ["TML_TEST_FULL_MARKER"])
    workflows, activities = _parts(role, root)
    if role in ("all", "orchestration"):
        workflows = [*WORKFLOWS, *SWEEPS]
        activities = [*activities, *SweepActivities().activities()]
    client = await connect()
    worker = create_worker(client, task_queue=task_queue, workflows=workflows, activities=activities,
                           max_concurrent_activities=int(os.environ.get("TML_TEST_ACTIVITY_SLOTS", "8")))
    async with worker:
        print("worker ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "all"))
