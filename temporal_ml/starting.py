"""Starting a run safely under a chosen run id: never silently re-run a finished run, never mix configs.

:func:`start_or_attach` is what a starter calls instead of ``client.start_workflow``:

======================================  ==========================================================
the run id is                           then
======================================  ==========================================================
unused                                  the workflow starts
running with the same config            the caller follows the running workflow (no second start)
running with another config             :class:`RunIdConflict` (choose another id, or stop it)
completed                               :class:`RunIdConflict` (see its results, or another id)
failed/cancelled/terminated, same cfg   started again: it resumes from the run's last checkpoint
failed/..., another config              :class:`RunIdConflict`
======================================  ==========================================================

"The config" is the trajectory hash of ``inp.config`` (a training) or of every ``inp.experiments``
entry (a coordinator); other inputs are compared by their JSON. Sweeps plug in by giving their input a
``config_fingerprint()`` method.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from temporal_ml.client import workflow_input
from temporal_ml.failures import RunIdConflict

__all__ = ["start_or_attach", "config_fingerprint", "workflow_input"]


def config_fingerprint(inp: BaseModel) -> str:
    """A digest of what makes two runs under one id the same run (see the module docstring)."""
    custom = getattr(inp, "config_fingerprint", None)
    if callable(custom):
        return str(custom())
    config = getattr(inp, "config", None)
    if config is not None and hasattr(config, "config_hash"):
        return str(config.config_hash())
    experiments = getattr(inp, "experiments", None)
    if experiments is not None:
        parts = [f"{e.name}={e.config.config_hash()}" for e in experiments]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return hashlib.sha256(inp.model_dump_json(exclude={"run_id"}).encode()).hexdigest()


async def start_or_attach(
    client: Client, workflow: Any, inp: BaseModel, *, id: str, task_queue: str,
    say: Callable[[str], None] = print, **kwargs: Any,
) -> WorkflowHandle[Any, Any]:
    """Start ``workflow`` with ``inp`` under workflow id ``id``, unless that id is taken (see the
    module docstring); returns the handle to follow.

    Raises:
        RunIdConflict: the id belongs to a finished run, or to a run with another config.
    """
    handle = client.get_workflow_handle(id)
    try:
        description = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return await client.start_workflow(workflow, inp, id=id, task_queue=task_queue, **kwargs)
    status = description.status
    state = status.name.lower() if status is not None else "unknown"
    if status == WorkflowExecutionStatus.COMPLETED:
        when = f" at {description.close_time:%Y-%m-%d %H:%M:%S} UTC" if description.close_time else ""
        raise RunIdConflict(
            f"run id {id!r} is already used by a run that finished{when}: see it with "
            f"`temporal-ml results {id}`, or pass another --run-id to start a new run"
        )
    previous = await workflow_input(client, handle, type(inp))
    mine = config_fingerprint(inp)
    theirs = config_fingerprint(previous) if previous is not None else None
    if theirs != mine:
        what = f"config sha256 {theirs[:12]}, this one {mine[:12]}" if theirs else "another input type"
        todo = (f"stop it with `temporal-ml stop {id}` or pass another --run-id"
                if status == WorkflowExecutionStatus.RUNNING else "pass another --run-id")
        raise RunIdConflict(f"run id {id!r} is already used by a {state} run with another config "
                            f"({what}): {todo}")
    if status == WorkflowExecutionStatus.RUNNING:
        say(f"run {id} is already running with this config: following it")
        # typed like a started one: its result decodes to the workflow's result model
        return client.get_workflow_handle_for(workflow, id) if callable(workflow) else client.get_workflow_handle(id)
    say(f"run {id} ended {state} before: starting it again (it resumes from its last checkpoint)")
    return await client.start_workflow(workflow, inp, id=id, task_queue=task_queue, **kwargs)
