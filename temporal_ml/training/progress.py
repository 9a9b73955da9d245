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
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["RowProgress", "report_rows", "counting_rows"]


class RowProgress(BaseModel):
    """Rows done of ``total`` and the rate since the work started (what an evaluation heartbeats)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    rows_done: int
    rows_total: int
    rows_per_second: float | None = None

    def line(self) -> str:
        """``3,200/7,600 rows (410 rows/s)``."""
        rate = f" ({self.rows_per_second:,.0f} rows/s)" if self.rows_per_second else ""
        return f"{self.rows_done:,}/{self.rows_total:,} rows{rate}"

    @classmethod
    def of_details(cls, details: Any) -> RowProgress | None:
        """The progress in an activity's heartbeat details, if any."""
        for item in details or ():
            if isinstance(item, dict) and "rows_done" in item and "rows_total" in item:
                try:
                    return cls.model_validate(item)
                except ValueError:
                    return None
        return None


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._latest: RowProgress | None = None

    def update(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._start
        rate = done / elapsed if elapsed > 0 and done else None
        with self._lock:
            self._latest = RowProgress(rows_done=done, rows_total=total, rows_per_second=rate)

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
def counting_rows() -> Iterator[_Counter]:
    """Collect :func:`report_rows` calls made in this context; ``latest()`` is the newest count."""
    counter = _Counter()
    token = _counter.set(counter)
    try:
        yield counter
    finally:
        _counter.reset(token)
