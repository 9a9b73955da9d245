"""Creating workers with the settings durable training needs."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

__all__ = ["create_worker"]


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
