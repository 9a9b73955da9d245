"""Turn user errors into non-retryable activity failures (DESIGN promise 5)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.exceptions import ApplicationError

from temporal_ml.errors import NON_RETRYABLE_ERRORS, permanent_error

__all__ = ["fail_fast", "fail_fast_async", "NON_RETRYABLE"]

#: Errors that no retry can fix (see :data:`temporal_ml.errors.NON_RETRYABLE_ERRORS`).
NON_RETRYABLE: tuple[type[Exception], ...] = NON_RETRYABLE_ERRORS

F = TypeVar("F", bound=Callable[..., Any])


#: Longest error message an activity failure carries (the rest is cut): failures are stored in the
#: workflow history, and the server refuses one that is too large ("Failure exceeds size limit").
MAX_MESSAGE = 2000


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 16] + " ... (truncated)"


def _convert(exc: Exception) -> ApplicationError:
    return ApplicationError(_short(str(exc)), type=type(exc).__name__, non_retryable=True)


def _bounded(exc: Exception) -> Exception:
    """``exc`` itself, or a retryable stand-in with its message cut if the message is huge."""
    if isinstance(exc, ApplicationError) or len(str(exc)) <= MAX_MESSAGE:
        return exc
    return ApplicationError(_short(str(exc)), type=type(exc).__name__)


def fail_fast(fn: F) -> F:
    """Decorate a sync activity: errors no retry can fix (:func:`temporal_ml.errors.permanent_error`)
    fail the activity without retry;
    other errors keep retrying, with messages cut to :data:`MAX_MESSAGE` characters."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if (permanent := permanent_error(exc)) is not None:
                # (a converted error drops its original: that may carry a 1.5 MB file name)
                raise _convert(permanent) from (exc if permanent is exc else None)
            if (small := _bounded(exc)) is exc:
                raise
            raise small from None

    return wrapper  # type: ignore[return-value]


def fail_fast_async(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Decorate an async activity: errors no retry can fix
    (:func:`temporal_ml.errors.permanent_error`) fail the activity without retry."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            if (permanent := permanent_error(exc)) is not None:
                # (a converted error drops its original: that may carry a 1.5 MB file name)
                raise _convert(permanent) from (exc if permanent is exc else None)
            if (small := _bounded(exc)) is exc:
                raise
            raise small from None

    return wrapper
