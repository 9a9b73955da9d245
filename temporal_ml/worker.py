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
        activity_threads: size of the thread pool for sync activities.
        **kwargs: passed to ``Worker``.
    """
    executor = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(activity_threads, max_concurrent_activities or 0), thread_name_prefix="tml-activity"
    )
    kwargs.setdefault("max_heartbeat_throttle_interval", timedelta(seconds=2))
    kwargs.setdefault("default_heartbeat_throttle_interval", timedelta(seconds=2))
    kwargs.setdefault("sticky_queue_schedule_to_start_timeout", timedelta(seconds=3))
    if max_concurrent_activities is not None:
        kwargs["max_concurrent_activities"] = max_concurrent_activities
    return Worker(client, task_queue=task_queue, workflows=list(workflows), activities=list(activities),
                  activity_executor=executor, **kwargs)
