"""What a run is, as the server knows it: its kind, status, times and tags (from visibility and our
search attributes), and the live phase line of a running sweep or coordinator.

Run kinds are the values of the ``TmlKind`` search attribute that workflows set: ``train``
(``TrainingWorkflow``), ``eval`` (``EvalWorkflow``), ``coordinator`` (``CoordinatorWorkflow``),
``sweep``, and any kind a later workflow sets. The results (:mod:`temporal_ml.results`), the
dashboard and the ``temporal-ml`` commands dispatch on it.

Example::

    info, _ = await describe_run(await connect(), "sweep-1")
    print(info.kind, info.status, format_duration(info.duration_seconds))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionDescription

__all__ = [
    "RunInfo",
    "describe_run",
    "run_info",
    "kind_of",
    "format_duration",
    "sweep_phase",
    "coordinator_phase",
    "worker_lost",
]


#: Search attributes shown as run fields (attribute -> field of :class:`RunInfo`).
_FIELDS = {"TmlKind": "kind", "TmlRunId": "run_id", "TmlExperiment": "experiment",
           "TmlSnapshotId": "snapshot_id", "TmlConfigHash": "config_hash", "TmlMetric": "metric"}


@dataclass
class RunInfo:
    """What visibility knows of one workflow run (one row of ``temporal-ml runs``)."""

    id: str
    type: str
    status: str
    kind: str = ""
    run_id: str = ""
    experiment: str = ""
    snapshot_id: str = ""
    config_hash: str = ""
    metric: float | None = None
    start_time: datetime | None = None
    close_time: datetime | None = None
    task_queue: str = ""
    memo: dict[str, Any] = field(default_factory=dict)
    #: a running sweep's status line (phase such as ``paused: <why>``, counts, best, times), for ``status``
    phase: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def duration_seconds(self) -> float | None:
        if self.start_time is None:
            return None
        end = self.close_time or datetime.now(timezone.utc)
        return max(0.0, (end - self.start_time).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields (times as ISO strings)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["duration_seconds"] = self.duration_seconds
        return out


def kind_of(search_attributes: Mapping[str, Any], workflow_type: str) -> str:
    """A run's kind: its ``TmlKind``, else ``experiment-child`` for a coordinator's child not yet
    tagged, else guessed from the workflow type (empty when unknown)."""
    kind = _first(search_attributes.get("TmlKind"))
    if kind:
        return str(kind)
    lowered = workflow_type.lower()
    for needle, guess in (("sweep", "sweep"), ("coordinat", "coordinator"), ("eval", "eval"),
                          ("train", "train"), ("finetune", "train")):
        if needle in lowered:
            return guess
    return ""


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def run_info(execution: WorkflowExecution, memo: Mapping[str, Any] | None = None) -> RunInfo:
    """A :class:`RunInfo` from a listed (or described) execution."""
    attrs = dict(execution.search_attributes or {})
    info = RunInfo(
        id=execution.id, type=execution.workflow_type,
        status=execution.status.name.lower() if execution.status is not None else "unknown",
        kind=kind_of(attrs, execution.workflow_type), start_time=execution.start_time,
        close_time=execution.close_time, task_queue=execution.task_queue or "",
        memo=dict(memo or {}),
    )
    for attr, name in _FIELDS.items():
        if attr == "TmlKind":
            continue
        value = _first(attrs.get(attr))
        if value is not None:
            setattr(info, name, float(value) if name == "metric" else str(value))
    return info


async def describe_run(client: Client, workflow_id: str) -> tuple[RunInfo, WorkflowExecutionDescription]:
    """Describe the latest run of ``workflow_id`` (one-line ``not found`` error when there is none)."""
    from temporalio.service import RPCError, RPCStatusCode

    from temporal_ml.errors import NotFoundError

    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(
                f"no run with id {workflow_id!r} in namespace {client.namespace!r} "
                "(list them with `temporal-ml runs`)"
            ) from exc
        raise
    try:
        memo = await description.memo()
    except Exception:  # noqa: BLE001 - a memo we cannot decode is just not shown
        memo = {}
    return run_info(description, memo), description


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12.3s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"




async def sweep_phase(client: Any, workflow_id: str, elapsed_s: float | None = None) -> str:
    """A running sweep's status line (:meth:`~temporal_ml.sweeps.SweepStatus.summary`): its
    phase (``paused: <why>``, ``stopping: <why>``), counts, best so far, elapsed time and time left
    ('' when no worker answers)."""
    from datetime import timedelta

    from temporal_ml.sweeps import SweepStatus

    try:
        status = await client.get_workflow_handle(workflow_id).query(
            "sweep_status", args=[0, 0], result_type=SweepStatus, rpc_timeout=timedelta(seconds=5))
    except Exception:  # noqa: BLE001 - no worker answers: visibility only
        return ""
    line = status.summary(elapsed_s)
    if status.retrying and status.phase == "paused":
        line += f" ({status.retrying} trials will run again from their checkpoints on resume)"
    return line


async def coordinator_phase(client: Any, workflow_id: str) -> str:
    """``paused: <why>`` of a running coordinator ('' when running, or no answer)."""
    from datetime import timedelta

    from temporal_ml.workflows.coordinator import CoordinatorStatus

    try:
        status = await client.get_workflow_handle(workflow_id).query(
            "coordinator_status", result_type=CoordinatorStatus, rpc_timeout=timedelta(seconds=5))
    except Exception:  # noqa: BLE001 - no worker answers (or an older coordinator): visibility only
        return ""
    if status.phase != "paused":
        return ""
    return f"paused: {status.pause_reason}" if status.pause_reason else "paused"


def worker_lost(description: Any) -> str | None:
    """Why the run's training activity waits for a new worker (its last attempt's worker stopped
    heartbeating or failed), or ``None`` when it is not waiting for one."""
    from temporalio.api.enums.v1 import PendingActivityState

    for pending in description.raw_description.pending_activities:
        if pending.state != PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED or pending.attempt < 2:
            continue
        failure = pending.last_failure
        if failure.HasField("timeout_failure_info"):
            return "no heartbeat from its worker"
        return failure.message.splitlines()[0] if failure.message else "its last attempt failed"
    return None

