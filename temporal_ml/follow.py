"""Follow a run to its result: its live progress on stderr, through Temporal server restarts.

Each ``follow_*`` function waits for a workflow's result (:func:`temporal_ml.client.wait_result`: a
lost server is said and waited for) while polling the run's progress into a
:class:`~temporal_ml.progress.ProgressView` (a bar per run on a terminal, a line per change
otherwise), and returns the result. Stdout stays free for the result.

Example:
    >>> handle = await start_or_attach(client, MyTraining.run, inp, id="r1",     # doctest: +SKIP
    ...                                task_queue="mine")
    >>> result = await follow_training(handle, MyTraining.progress)              # doctest: +SKIP

:func:`follow` is the loop under them all, for a workflow of your own: give it a ``poll`` coroutine
that answers ``{name: RunProgress}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle

from temporal_ml.client import wait_result
from temporal_ml.progress import ProgressView, RunProgress

__all__ = ["follow", "follow_training", "follow_experiments", "follow_trials", "follow_sweep", "stderr_line"]

Poll = Callable[[], Awaitable[Mapping[str, RunProgress]]]


def stderr_line(message: str) -> None:
    """Print ``message`` on stderr (the default ``say`` of the followers)."""
    print(message, file=sys.stderr, flush=True)


async def follow(handle: WorkflowHandle[Any, Any], poll: Poll, *, say: Callable[[str], None] = stderr_line,
                 every: float = 2.0, view: ProgressView | None = None) -> Any:
    """Wait for ``handle``'s result, showing what ``poll()`` answers every ``every`` seconds (and once
    more at the end) in a :class:`ProgressView`; a ``poll`` that raises is skipped (no worker right
    now, the server restarting).

    Args:
        handle: the run (a handle that pins no run id follows it across continue-as-new).
        poll: answers the progress of each part of the run, by name.
        say: where to say that the server was lost and found again.
        every: seconds between polls.
        view: the view to draw in (default: a new one on stderr).
    """
    result_task = asyncio.ensure_future(wait_result(handle, on_disconnect=say))
    try:
        with view or ProgressView() as shown:
            while not result_task.done():
                await asyncio.wait([result_task], timeout=every)
                if result_task.done():
                    break
                with contextlib.suppress(Exception):
                    for name, progress in (await poll()).items():
                        shown.update(name, progress)
            with contextlib.suppress(Exception):  # the final states (done, stopped early, failed)
                for name, progress in (await poll()).items():
                    shown.update(name, progress)
    finally:
        if not result_task.done():
            result_task.cancel()
    return result_task.result()


async def follow_training(handle: WorkflowHandle[Any, Any], progress_query: Any, *,
                          say: Callable[[str], None] = stderr_line, every: float = 2.0) -> Any:
    """Wait for a training's result, showing its progress (``progress_query``, e.g.
    ``MyTraining.progress``, answering a ``TrainProgress``) and a note while its worker is lost:
    ``worker lost (...); resuming from step N when another worker picks it up``."""
    last = RunProgress()

    async def poll() -> dict[str, RunProgress]:
        nonlocal last
        lost = await _worker_lost(handle)
        try:
            progress = await handle.query(progress_query)
        except Exception:  # noqa: BLE001 - no workflow worker right now: the last progress, noted
            last = replace(last, note=lost)
            return {handle.id: last}
        checkpoint = progress.latest_checkpoint
        where = f"step {checkpoint.step}" if checkpoint is not None else "the start"
        last = RunProgress.of(progress, note=f"worker lost ({lost}); resuming from {where} when another "
                                             "worker picks it up" if lost else None)
        return {handle.id: last}

    return await follow(handle, poll, say=say, every=every)


async def _worker_lost(handle: WorkflowHandle[Any, Any]) -> str | None:
    """Why the run's training waits for another worker (see :func:`temporal_ml.runs.worker_lost`)."""
    from temporal_ml.runs import worker_lost

    try:
        return worker_lost(await handle.describe())
    except Exception:  # noqa: BLE001 - the server is unreachable for a moment: no news
        return None


async def follow_experiments(client: Client, handle: WorkflowHandle[Any, Any], status_query: Any, *,
                             say: Callable[[str], None] = stderr_line, every: float = 2.0) -> Any:
    """Wait for a coordinator's result, showing each experiment's progress (``status_query``, e.g.
    ``MyExperiments.status``, answering ``ExperimentStatus`` rows): training, evaluating (with the
    rows evaluated so far), done or failed."""
    from temporal_ml.results import eval_progress
    from temporal_ml.workflows.coordinator import child_id

    async def poll() -> dict[str, RunProgress]:
        shown = {}
        for status in await handle.query(status_query):
            progress = RunProgress.of(status)
            if status.state == "evaluating":  # rows done of the evaluation, from its heartbeats
                rows = await eval_progress(client, child_id(handle.id, status.name, "eval"))
                progress = replace(progress, eval_rows=rows)
            shown[status.name] = progress
        return shown

    return await follow(handle, poll, say=say, every=every)


async def follow_trials(client: Client, handle: WorkflowHandle[Any, Any], *, objective: str = "value",
                        say: Callable[[str], None] = stderr_line, every: float = 2.0) -> Any:
    """Wait for a sweep's result, showing each trial (its ``trials`` query): state, step, the
    ``objective``'s value once evaluated, the rows of a running evaluation, its parameters."""
    from temporal_ml.sweep_results import trials_evaluating
    from temporal_ml.sweeps import TrialRow

    async def poll() -> dict[str, RunProgress]:
        rows = await handle.query("trials", result_type=list[TrialRow])
        evaluating = await trials_evaluating(client, handle.id, "sweep", rows)
        return {row.name: _trial_progress(row, objective, evaluating.get(row.index)) for row in rows}

    return await follow(handle, poll, say=say, every=every)


def _trial_progress(row: Any, objective: str, eval_rows: Any) -> RunProgress:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.params.items())
    value = f"{objective} {row.value:.4g}  " if row.value is not None else ""
    if getattr(row, "values", None):  # a multi-objective sweep: every objective, in order
        value = "values " + ", ".join(f"{v:.4g}" for v in row.values) + "  "
    return RunProgress(state=row.state, step=row.step, max_steps=row.max_steps, loss=row.loss,
                       resumes=row.resumes, note=row.error, eval_rows=eval_rows, extra=value + params)


async def follow_sweep(handle: WorkflowHandle[Any, Any], *, say: Callable[[str], None] = stderr_line,
                       every: float = 2.0) -> Any:
    """Wait for a sweep's result, saying its status line (``SweepStatus.summary``) whenever the
    counts, phase or best change (and at least every minute), and once more at the end, through
    server restarts."""
    from temporal_ml.sweeps import SweepStatus

    started = time.monotonic()
    result_task = asyncio.ensure_future(wait_result(handle, on_disconnect=say))
    shown, shown_at = "", 0.0

    async def show(final: bool) -> None:
        nonlocal shown, shown_at
        try:
            status: SweepStatus = await handle.query("sweep_status", args=[0, 0], result_type=SweepStatus,
                                                     rpc_timeout=timedelta(seconds=5))
        except Exception:  # noqa: BLE001 - no workflow worker right now (or between runs): later
            return
        key = status.summary()
        now = time.monotonic()
        if key != shown or (now - shown_at >= 60 and not final):
            say(status.summary(now - started))
            shown, shown_at = key, now

    try:
        while not result_task.done():
            await asyncio.wait([result_task], timeout=every)
            if result_task.done():
                break
            await show(final=False)
        if result_task.exception() is None:  # the final counts and best (a short sweep ends between polls)
            await show(final=True)
    finally:
        if not result_task.done():
            result_task.cancel()
    return result_task.result()
