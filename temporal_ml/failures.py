"""Errors as one line: what went wrong and what to do, for every starter and ``temporal-ml`` command.

:func:`one_line` turns any exception a user can cause (bad config, missing file, no server, a failed
workflow, a refused update, ...) into a single line; :func:`report` prints it (with the traceback
under ``--verbose``) and returns the exit code; :func:`connect_or_explain` connects like
:func:`temporal_ml.connect` and turns "no server there" into :class:`ServerUnreachable`.
"""

from __future__ import annotations

import argparse
import re
import sys
import traceback
from typing import Any, NoReturn

from temporal_ml.errors import ConfigError, TemporalMLError, install_hint

__all__ = [
    "ServerUnreachable",
    "RunIdConflict",
    "RunRefused",
    "one_line",
    "root_cause",
    "exit_code",
    "report",
    "connect_or_explain",
    "OneLineArgumentParser",
]

#: Exit codes: 2 for input the user must change (like argparse), 1 for anything else, 130 on Ctrl-C.
EXIT_INPUT, EXIT_FAILURE, EXIT_INTERRUPTED = 2, 1, 130


class ServerUnreachable(TemporalMLError):
    """No Temporal server answers at the address (the message says how to start one)."""


class RunRefused(TemporalMLError):
    """A run refused a control request (e.g. resuming a run that is not paused), or did not answer."""


class RunIdConflict(ConfigError):
    """A run id is already used: by a run with another config, or by a run that has finished."""


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def root_cause(exc: BaseException) -> BaseException:
    """The failure under Temporal's wrappers (workflow -> child workflow -> activity): the error the
    activity or workflow raised, e.g. an ``ApplicationError`` carrying a ``ConfigError``'s message.
    The causes of that error itself (a library's internal exception it was raised from) are left
    out: its own message is the one written for users."""
    from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
    from temporalio.exceptions import ActivityError, ChildWorkflowError

    wrappers = (WorkflowFailureError, WorkflowUpdateFailedError, ActivityError, ChildWorkflowError)
    seen = {id(exc)}
    while isinstance(exc, wrappers):
        nxt = getattr(exc, "cause", None) or exc.__cause__
        if nxt is None or id(nxt) in seen:
            return exc
        seen.add(id(nxt))
        exc = nxt
    return exc


def _message(exc: BaseException) -> str:
    return _first_line(getattr(exc, "message", None) or str(exc)) or type(exc).__name__


def one_line(exc: BaseException) -> str:
    """One line for ``exc``: the user's mistake and what to do, never a chain or a traceback."""
    from pydantic import ValidationError
    from temporalio.client import (
        WorkflowFailureError,
        WorkflowQueryFailedError,
        WorkflowUpdateFailedError,
    )
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, ValidationError):
        from temporal_ml.types import one_line as validation_line

        return f"invalid {exc.title}: {validation_line(exc)}".replace("Value error, ", "")
    if isinstance(exc, WorkflowFailureError):
        cause = root_cause(exc)
        kind = getattr(cause, "type", None)
        prefix = f"{kind}: " if kind and kind not in ("ConfigError", "ValidationError") else ""
        return f"the run failed: {prefix}{_message(cause)}"
    if isinstance(exc, WorkflowUpdateFailedError):
        return _message(root_cause(exc))
    if isinstance(exc, WorkflowQueryFailedError):
        return f"query failed: {_message(exc)}"
    if isinstance(exc, WorkflowAlreadyStartedError):
        return (f"a workflow with id {exc.workflow_id!r} is already running: choose another run id, "
                f"or follow it with `temporal-ml status {exc.workflow_id} --follow`")
    if isinstance(exc, RPCError):
        if exc.status == RPCStatusCode.NOT_FOUND:
            return f"not found: {_message(exc)}"
        if exc.status == RPCStatusCode.PERMISSION_DENIED:
            return f"permission denied by the Temporal server: {_message(exc)}"
        return f"Temporal server error ({exc.status.name}): {_message(exc)}"
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed client connect"):
        return _unreachable(None, str(exc), embedded_hint=False)
    if isinstance(exc, (TemporalMLError, FileNotFoundError)):
        return _message(exc)
    if isinstance(exc, ModuleNotFoundError):
        return f"this needs {exc.name or 'a module'!r}, which is not installed: {install_hint(exc.name)}"
    return f"{type(exc).__name__}: {_message(exc)} (run with --verbose for the traceback)"


def exit_code(exc: BaseException) -> int:
    """130 for Ctrl-C; 1 when a run failed, a request was refused or no server answers; 2 for what
    the user must change or install (configs, names, paths, run ids, missing extras, other
    temporal-ml errors)."""
    from pydantic import ValidationError

    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, (ServerUnreachable, RunRefused)):
        return EXIT_FAILURE
    if isinstance(exc, (TemporalMLError, ValidationError, FileNotFoundError, ModuleNotFoundError)):
        return EXIT_INPUT
    return EXIT_FAILURE


def report(exc: BaseException, *, prog: str, verbose: bool = False) -> int:
    """Print ``prog: error: <one line>`` (after the traceback when ``verbose``) to stderr; return
    the exit code."""
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"{prog}: error: {one_line(exc)}", file=sys.stderr, flush=True)
    return exit_code(exc)


def _unreachable(address: str | None, detail: str, *, embedded_hint: bool) -> str:
    if address is None:
        found = re.search(r"\d{1,3}(?:\.\d{1,3}){3}:\d+|\[[0-9a-f:]+\]:\d+", detail)
        address = found.group(0) if found else "the configured address"
    if "Connection refused" in detail:
        why = "connection refused"
    elif "dns error" in detail.lower() or "failed to lookup" in detail.lower():
        why = "unknown host"
    elif "timed out" in detail.lower() or "deadline" in detail.lower():
        why = "timed out"
    else:
        why = _first_line(detail.removeprefix("Failed client connect: "))[:120]
    hint = "start one with `temporal-ml server` (or set TEMPORAL_ADDRESS to yours)"
    if embedded_hint:
        hint += ", or run this with --embedded for a self-contained run"
    return f"no Temporal server at {address} ({why}): {hint}"


async def connect_or_explain(address: str | None = None, *, namespace: str | None = None,
                             embedded_hint: bool = False, **kwargs: Any) -> Any:
    """:func:`temporal_ml.connect`, raising :class:`ServerUnreachable` (one line, with how to start a
    server) when nothing answers at the address."""
    from temporal_ml.client import connect, connect_config

    try:
        return await connect(address, namespace=namespace, **kwargs)
    except RuntimeError as exc:
        if not str(exc).startswith("Failed client connect"):
            raise
        target = connect_config(address, namespace=namespace)["target_host"]
        raise ServerUnreachable(_unreachable(target, str(exc), embedded_hint=embedded_hint)) from exc


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (``prog: error: ... (see --help)``),
    exit code 2; subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        program = self.prog.split()[0]  # `temporal-ml`, also for `temporal-ml sweep enqueue`
        self.exit(EXIT_INPUT, f"{program}: error: {message} (see {self.prog} --help)\n")
