"""Heartbeats for activities whose work is one long call (evaluate, predict, snapshot, a copy, a stop).

Such an activity cannot heartbeat between steps of its own, so a helper thread heartbeats for it while
the work runs. With a heartbeat timeout on the activity, a dead worker (SIGKILL, OOM, a lost machine)
is then noticed within that timeout and the activity retried elsewhere, instead of after its whole
start-to-close timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from temporalio import activity

__all__ = ["heartbeating", "heartbeat_while"]

T = TypeVar("T")

log = logging.getLogger(__name__)


@contextlib.contextmanager
def heartbeating(every_seconds: float = 2.0, details: Callable[[], Any] | None = None) -> Iterator[None]:
    """Heartbeat every ``every_seconds`` from a helper thread while the ``with`` body runs, with
    ``details()`` (e.g. rows done) as the heartbeat's details when it returns something.

    Outside an activity (a plain call, a test) it does nothing. The helper thread runs in a copy of
    the caller's context, so ``activity.heartbeat`` reaches this very activity (thread-safe for
    activities on a thread pool).
    """
    if not activity.in_activity():
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                now = details() if details is not None else None
                if now is None:
                    activity.heartbeat()
                else:
                    activity.heartbeat(now)
            except Exception:  # noqa: BLE001 - a lost heartbeat must not kill the work
                log.debug("heartbeat failed", exc_info=True)
            if stop.wait(every_seconds):
                return

    thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True,
                              name="tml-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def heartbeat_while(work: Awaitable[T], every_seconds: float = 2.0) -> T:
    """Await ``work`` in an async activity, heartbeating every ``every_seconds`` until it is done;
    outside an activity it only awaits it.

    >>> asyncio.run(heartbeat_while(asyncio.sleep(0, result=3)))
    3
    """
    if not activity.in_activity():
        return await work
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait([task], timeout=every_seconds)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()
