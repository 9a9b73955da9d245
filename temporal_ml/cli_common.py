"""Shared pieces of the ``temporal-ml`` inspection commands: connection options, run kinds, a run's
description (from visibility and our search attributes), table output.

Run kinds are the values of the ``TmlKind`` search attribute that workflows set: ``train``
(``TrainingWorkflow``), ``eval`` (``EvalWorkflow``), ``coordinator`` (``CoordinatorWorkflow``), and
any kind a later workflow sets (e.g. ``sweep``). Commands dispatch on the kind through small
registries (see :mod:`temporal_ml.cli_runs` and :mod:`temporal_ml.results`), so a new kind plugs in
without changing the commands.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionDescription

__all__ = [
    "KIND_ALIASES",
    "RunInfo",
    "add_client_options",
    "client_for",
    "describe_run",
    "run_info",
    "kind_of",
    "format_table",
    "format_duration",
]

#: ``--kind`` spellings users try -> the ``TmlKind`` value workflows set.
KIND_ALIASES: Mapping[str, str] = {
    "training": "train", "trainings": "train", "train": "train",
    "evaluation": "eval", "evaluations": "eval", "eval": "eval",
    "experiment": "coordinator", "experiments": "coordinator", "coordinator": "coordinator",
    "sweep": "sweep", "sweeps": "sweep",
}

#: Search attributes shown as run fields (attribute -> field of :class:`RunInfo`).
_FIELDS = {"TmlKind": "kind", "TmlRunId": "run_id", "TmlExperiment": "experiment",
           "TmlSnapshotId": "snapshot_id", "TmlConfigHash": "config_hash", "TmlMetric": "metric"}


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """``--address``, ``--namespace`` and ``--verbose`` (every command that talks to a server)."""
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="Temporal frontend (default $TEMPORAL_ADDRESS, the config profile, else "
                             "localhost:7233)")
    parser.add_argument("--namespace", default=None, help="namespace (default $TEMPORAL_NAMESPACE or 'default')")
    parser.add_argument("--verbose", action="store_true", help="print the traceback of an error too")


async def client_for(args: argparse.Namespace) -> Client:
    """A connected client for the command's ``--address``/``--namespace`` (one-line error if none)."""
    from temporal_ml.cli_errors import connect_or_explain

    client: Client = await connect_or_explain(args.address, namespace=args.namespace)
    return client


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


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain, aligned text table (what pipes and tests read; rich is used only for live views)."""
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.upper().ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)
