"""Progress of long work inside a trainable (evaluation, prediction): rows done of rows in all.

A trainable calls :func:`report_rows` as it goes; the activity running it (``EvalActivities``) puts
the latest count, with its rate, in its heartbeats, so ``temporal-ml status`` and the starters show
``evaluating 3,200/7,600 rows (410 rows/s)`` instead of a bare ``evaluating``. Outside such an
activity the call does nothing.

Example:
    >>> for start in range(0, 100, 32):       # in Trainable.evaluate
    ...     report_rows(min(start + 32, 100), 100)
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator

from temporal_ml.types import RowProgress

__all__ = ["RowProgress", "report_rows", "counting_rows"]


class _Counter:
    def __init__(self, on_update: Callable[[RowProgress], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._latest: RowProgress | None = None
        self._on_update = on_update

    def update(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 and done else None
        latest = RowProgress(rows_done=done, rows_total=total, rows_per_second=rate)
        with self._lock:
            self._latest = latest
        if self._on_update is not None:
            self._on_update(latest)

    def latest(self) -> RowProgress | None:
        with self._lock:
            return self._latest


_counter: contextvars.ContextVar[_Counter | None] = contextvars.ContextVar("tml_row_counter", default=None)


def report_rows(done: int, total: int) -> None:
    """Say that ``done`` of ``total`` rows are processed (cheap; call it once per batch)."""
    counter = _counter.get()
    if counter is not None:
        counter.update(int(done), int(total))


@contextlib.contextmanager
def counting_rows(on_update: Callable[[RowProgress], None] | None = None) -> Iterator[_Counter]:
    """Collect :func:`report_rows` calls made in this context; ``latest()`` is the newest count, and
    ``on_update`` (if given) gets each one."""
    counter = _Counter(on_update)
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)
