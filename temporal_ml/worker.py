"""Workers with the settings durable training needs, and a worker process's main.

:func:`create_worker` builds one; :func:`serve` runs some until SIGINT/SIGTERM; :func:`run_workers`
is a whole worker process (connect, serve, one-line errors), the ``main()`` of a ``worker.py``.

Example (a ``worker.py`` of your own)::

    from temporal_ml.roles import Role, WorkerSpec, build_worker, default_store
    from temporal_ml.worker import run_workers

    spec = WorkerSpec(roles=list(Role), store=default_store("my-project"),
                      workflows=[MyTraining], trainables={"mine": MyTrainable()})
    raise SystemExit(run_workers(lambda client: [build_worker(client, spec, task_queue="mine")],
                                 prog="my worker", store=spec.store))
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, NoReturn

from temporalio.client import Client
from temporalio.worker import Worker

__all__ = ["create_worker", "serve", "run_workers", "exit_process", "limit_malloc_arenas"]

#: ``mallopt``'s ``M_ARENA_MAX`` and ``M_MMAP_THRESHOLD`` (glibc's malloc.h).
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3


def limit_malloc_arenas(arenas: int = 2, mmap_threshold: int | None = 128 * 1024) -> bool:
    """Let glibc's allocator keep at most ``arenas`` arenas in this process (``M_ARENA_MAX``), as the
    ``MALLOC_ARENA_MAX`` environment variable does, and map every block of ``mmap_threshold``
    bytes or more on its own (``M_MMAP_THRESHOLD``, as ``MALLOC_MMAP_THRESHOLD_`` does; ``None``
    leaves it), each unless its variable is set; returns whether it changed either.

    An orchestration worker runs many activity threads (sweeps' plans, suggestions, table writes)
    and little computation. By default glibc gives threads up to eight arenas a core, and raises
    its mmap threshold to the largest mapped block freed, so that large transient blocks (a plan's
    copies of the rung index, before the index was kept as columns) come from the arenas and
    fragment them; both grow the resident memory of a long sweep. Measured
    with ``benchmarks/bench_sweep_scale.py --scheduler asha`` (docs/scaling.md): at 10,000 trials
    +20 and +24 MB from 1,000 trials to the end with both settings, +40 MB with glibc's defaults
    (about 8 MB of it is the rung index's own rows); at 3,000 trials, two arenas alone left +9.9 MB
    per 1,000 trials over the second half, both +2.3 MB, as fast. Call it before the process starts
    its threads. Not on a training worker: its data loading may want the arenas.

    Example (at the start of an orchestration worker process):
        >>> limit_malloc_arenas(2)  # doctest: +SKIP
        True
    """
    import ctypes
    import os

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        changed = False
        if not os.environ.get("MALLOC_ARENA_MAX"):
            changed |= libc.mallopt(_M_ARENA_MAX, int(arenas)) == 1
        if mmap_threshold is not None and not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
            changed |= libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        return bool(changed)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def create_worker(
    client: Client,
    *,
    task_queue: str,
    workflows: Sequence[type] = (),
    activities: Sequence[Callable[..., Any]] = (),
    max_concurrent_activities: int | None = None,
    activity_threads: int = 8,
    **kwargs: Any,
) -> Worker:
    """A :class:`temporalio.worker.Worker` for temporal-ml workflows and activities.

    Differences from a plain ``Worker``: a thread pool for the library's sync activities; a short
    heartbeat throttle (2 s) so pause/stop requests reach a training activity within seconds; and a
    short sticky-queue timeout (3 s) so the workflows of a crashed worker move on quickly.

    Args:
        client: a client from :func:`temporal_ml.client.connect` (it carries the data converter).
        task_queue: the queue to poll.
        workflows: workflow classes to run.
        activities: activity callables to run.
        max_concurrent_activities: e.g. the number of GPUs on a training worker.
        activity_threads: threads for sync activities (at least; a worker with workflows, which gets
            2000 activity slots unless ``max_concurrent_activities`` says otherwise and also registers
            the ``registered_search_attributes`` check and the ``await_child`` activity, may start
            one per busy slot).
        **kwargs: passed to ``Worker``.
    """
    kwargs.setdefault("max_heartbeat_throttle_interval", timedelta(seconds=2))
    kwargs.setdefault("default_heartbeat_throttle_interval", timedelta(seconds=2))
    kwargs.setdefault("sticky_queue_schedule_to_start_timeout", timedelta(seconds=3))
    activities = list(activities)
    if workflows:
        # The workflows ask it which search attributes exist, on their own task queue (a regular
        # activity, see temporal_ml.workflows._tags); a worker without it would make them wait.
        from temporal_ml.activities.search_attributes import registered_search_attributes

        if not any(_activity_name(a) == _activity_name(registered_search_attributes) for a in activities):
            activities.append(registered_search_attributes)
        # Sweeps and coordinators that continue as new wait for their running trials' children in
        # the next run with this activity (it needs no store); a worker without it would wait forever.
        from temporal_ml.activities.sweep import AWAIT_CHILD, SweepActivities

        if not any(_activity_name(a) == AWAIT_CHILD for a in activities):
            activities.append(SweepActivities().await_child)
        # Sweeps keep an activity waiting for each trial across a rollover (await_child) and ask
        # their searcher in another: a slot each, beyond the SDK's default 100.
        if max_concurrent_activities is None:
            max_concurrent_activities = WORKFLOW_WORKER_ACTIVITY_SLOTS
    if max_concurrent_activities is not None:
        kwargs["max_concurrent_activities"] = max_concurrent_activities
    executor = concurrent.futures.ThreadPoolExecutor(  # threads start only as they are needed
        max_workers=max(activity_threads, max_concurrent_activities or 0), thread_name_prefix="tml-activity"
    )
    return Worker(client, task_queue=task_queue, workflows=list(workflows), activities=activities,
                  activity_executor=executor, **kwargs)


#: Activity slots of a worker that runs workflows (unless given): their activities are short or
#: waiting (async), so more than the SDK's default 100.
WORKFLOW_WORKER_ACTIVITY_SLOTS = 2000


def _activity_name(fn: Callable[..., Any]) -> str | None:
    defn = getattr(fn, "__temporal_activity_definition", None)
    return getattr(defn, "name", None)


async def serve(workers: Sequence[Worker], *, on_ready: Callable[[], None] | None = None,
                prog: str = "temporal-ml") -> int:
    """Run ``workers`` until SIGINT or SIGTERM (or until one fails), then shut them all down.

    A training cancelled by the shutdown checkpoints at its next step, and its retry on another
    worker resumes from there.

    Args:
        workers: built, not yet running workers (e.g. from :func:`temporal_ml.roles.build_workers`).
        on_ready: called once every worker has been accepted by the server and is polling.
        prog: names the program in error lines.

    Returns:
        The exit code: 0, or 1 after a worker failed (each failure is printed on stderr).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        runs = [asyncio.create_task(worker.run()) for worker in workers]
        while not all(w.is_running or r.done() for w, r in zip(workers, runs, strict=True)):
            await asyncio.sleep(0.02)  # each worker has been validated by the server and is polling
        if not any(r.done() for r in runs):
            if on_ready is not None:
                on_ready()
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait([stopped, *runs], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        print("shutting down workers ...", flush=True)
        await asyncio.gather(*(worker.shutdown() for worker in workers))
        await asyncio.gather(*runs, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    errors = [r.exception() for r in runs if not r.cancelled() and r.exception()]
    for error in errors:
        print(f"{prog}: error: worker failed: {error}", file=sys.stderr, flush=True)
    print("stopped" if not errors else "stopped after a worker failure", flush=True)
    return 1 if errors else 0


def exit_process(code: int) -> NoReturn:
    """End this process with ``code`` without interpreter finalization, its output flushed: a
    process that ran a Temporal client or worker can crash there (the SDK's Rust runtime threads
    outlive the interpreter, temporalio/sdk-python#300; about 1 exit in 30 turned a clean stop into
    ``Fatal Python error`` and a signal)."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_workers(make_workers: Callable[[Client], Sequence[Worker]], *, prog: str, store: str | None = None,
                verbose: bool = False) -> NoReturn:
    """A worker process: connect (``TEMPORAL_ADDRESS`` etc., see :func:`temporal_ml.client.connect`),
    build the workers, say ``worker polling '<queue>', ... at <address>; storage in <store>`` on
    stdout and :func:`serve` them until SIGINT/SIGTERM.

    Errors a user can cause (no server at the address, bad TLS settings, bad worker settings) are
    one line on stderr, ``<prog>: error: ...``.

    Example:
        >>> run_workers(                                                      # doctest: +SKIP
        ...     lambda client: [build_worker(client, spec, task_queue="mine")], prog="my worker")

    Args:
        make_workers: builds the workers from the connected client.
        prog: names the program in error lines.
        store: the workers' store, said on start.
        verbose: a traceback before an error line.

    It ends the process (:func:`exit_process`) with the exit code: 0 after SIGINT/SIGTERM, 1 or 2
    after an error.
    """
    from temporal_ml.failures import connect_or_explain, report

    async def main() -> int:
        client = await connect_or_explain()
        workers = make_workers(client)

        def ready() -> None:
            queues = ", ".join(repr(w.task_queue) for w in workers)
            where = f"; storage in {store}" if store else ""
            print(f"worker polling {queues} at {client.service_client.config.target_host}{where}", flush=True)

        return await serve(workers, on_ready=ready, prog=prog)

    try:
        code = asyncio.run(main())
    except KeyboardInterrupt:  # before the workers ran (they stop on SIGINT themselves)
        code = 0
    except Exception as exc:  # noqa: BLE001 - no server at the address, bad settings: one line
        code = report(exc, prog=prog, verbose=verbose)
    exit_process(code)
