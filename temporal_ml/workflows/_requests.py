"""Checks every control update of a sweep or a ladder applies before it touches state.

A request reaches a validator as the JSON it was sent as: the handlers take ``*extra`` after their one
argument, so the SDK decodes arguments without type hints (``true`` stays a bool and ``"3"`` a string
instead of being coerced to ``1`` and ``3``) and a wrong number of arguments reaches the validator
instead of raising a Python ``TypeError``. A refusal is one bounded line that never echoes the request
(a refusal carrying a 3 MB request would fail the workflow task), and a request over
:data:`MAX_REQUEST_BYTES` is refused before anything else looks at it. (A request over the SDK's
2 MB payload limit cannot be refused cleanly at all: the SDK's rejection message carries the request
back, and the workflow task fails until the client gives up; clients refuse such requests before
sending, as the CLI does.)
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from temporalio.exceptions import ApplicationError

__all__ = ["MAX_REQUEST_BYTES", "MISSING", "refuse", "shown", "check_arity", "whole_number",
           "check_size"]

#: Largest request an update takes (its arguments as JSON).
MAX_REQUEST_BYTES = 64 * 1024
#: Longest refusal message.
MAX_REFUSAL = 300


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: Default of an update's one argument: tells "not sent" from any value that was sent.
MISSING: Any = _Missing()


def refuse(message: str) -> ApplicationError:
    """The error a validator raises to refuse a request (changes nothing): one line, bounded."""
    line = " ".join(message.split())
    if len(line) > MAX_REFUSAL:
        line = line[: MAX_REFUSAL - 5] + " ..."
    return ApplicationError(line, type="SweepControlRefused", non_retryable=True)


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a refusal that names what it got."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + " ..."


def check_arity(update: str, value: Any, extra: tuple[Any, ...], takes: int = 1) -> None:
    """Refuse unless the update got exactly ``takes`` (0 or 1) arguments."""
    got = len(extra) + (0 if value is MISSING else 1)
    if got != takes:
        what = "no arguments" if takes == 0 else "exactly one argument"
        raise refuse(f"{update} takes {what} (got {got})")


def check_size(update: str, *values: Any) -> None:
    """Refuse a request whose arguments are over :data:`MAX_REQUEST_BYTES` as JSON."""
    size = sum(len(to_json(v, inf_nan_mode="strings")) for v in values if v is not MISSING)
    if size > MAX_REQUEST_BYTES:
        raise refuse(f"{update} request too large ({size} bytes; at most {MAX_REQUEST_BYTES})")


def whole_number(update: str, value: Any, extra: tuple[Any, ...], low: int, high: int,
                 what: str) -> int:
    """``value`` when it is a JSON integer (not a bool, not a string) in ``[low, high]``."""
    check_arity(update, value, extra)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise refuse(f"{what} must be a whole number from {low} to {high} (got {shown(value)})")
    return value
