"""Turn user errors into non-retryable activity failures (DESIGN promise 5)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.exceptions import ApplicationError

from temporal_ml.errors import ConfigError, IntegrityError, MissingDependencyError, NotFoundError

__all__ = ["fail_fast", "fail_fast_async", "NON_RETRYABLE"]

#: Errors that no retry can fix: bad config, missing or corrupt data, a missing dependency.
NON_RETRYABLE: tuple[type[Exception], ...] = (
    ConfigError, NotFoundError, IntegrityError, MissingDependencyError,
)

F = TypeVar("F", bound=Callable[..., Any])


def _convert(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


def fail_fast(fn: F) -> F:
    """Decorate a sync activity: :data:`NON_RETRYABLE` errors fail the activity without retry."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NON_RETRYABLE as exc:
            raise _convert(exc) from exc

    return wrapper  # type: ignore[return-value]


def fail_fast_async(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Decorate an async activity: :data:`NON_RETRYABLE` errors fail the activity without retry."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except NON_RETRYABLE as exc:
            raise _convert(exc) from exc

    return wrapper
