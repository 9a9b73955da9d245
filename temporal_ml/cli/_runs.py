"""``temporal-ml runs`` (list runs from visibility) and ``temporal-ml status ID [--follow]``.

``runs`` lists the workflows that carry our ``TmlKind`` search attribute (trainings, evaluations,
experiments/coordinators, sweeps), newest first, filtered by kind, state, snapshot, config hash or
experiment; it works against any server ``connect()`` reaches (``temporal-ml setup`` registers the
attributes there). ``status`` shows one run: what visibility knows of it, then a row per experiment
(coordinators, sweeps) or its progress (trainings); ``--follow`` keeps it live until the run closes,
each row in the library's progress view (:mod:`temporal_ml.progress`: a bar per row on a terminal,
a line per change of state otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from temporalio.service import RPCError, RPCStatusCode

from temporal_ml.cli._common import KIND_ALIASES, add_client_options, client_for, format_table
from temporal_ml.errors import ConfigError
from temporal_ml.runs import (
    RunInfo,
    coordinator_phase,
    describe_run,
    format_duration,
    run_info,
    sweep_phase,
    worker_lost,
)

__all__ = ["add_runs_parsers", "runs_query", "STATUS_COLUMNS"]

_STATES = {
    "running": "Running", "completed": "Completed", "failed": "Failed", "canceled": "Canceled",
    "cancelled": "Canceled", "terminated": "Terminated", "timed_out": "TimedOut",
    "continued_as_new": "ContinuedAsNew",
}

#: Columns of the per-row table ``status`` shows, by run kind (sweeps add theirs here).
STATUS_COLUMNS: dict[str, list[str]] = {
    "coordinator": ["name", "status", "step", "max_steps", "train.loss", "eval_rows", "eval.accuracy", "train_s",
                    "eval_s", "error"],
    "train": ["name", "status", "state", "step", "max_steps", "metrics.loss", "rows", "checkpoint_step", "resumes",
              "note", "error"],
    "eval": ["name", "status", "rows", "split", "eval.accuracy", "eval.loss", "error"],
    "sweep": ["name", "status", "rung", "value", "step", "max_steps", "train.loss", "eval_rows", "duration_s",
              "error"],
    "ladder": ["name", "status", "value", "step", "max_steps", "train.loss", "eval_rows", "duration_s", "error"],
}


def add_runs_parsers(sub: Any) -> None:
    """Add ``runs`` and ``status`` to the ``temporal-ml`` subcommands."""
    runs = sub.add_parser("runs", help="list trainings, experiments and sweeps with their state",
                          description="List temporal-ml runs (workflows with the TmlKind search "
                                      "attribute), newest first.")
    runs.add_argument("--kind", action="append", default=[], metavar="KIND",
                      help="training, eval, experiment (coordinator), sweep, or any TmlKind (repeatable)")
    runs.add_argument("--state", action="append", default=[], metavar="STATE",
                      help=f"{', '.join(k for k in _STATES if k != 'cancelled')} (repeatable)")
    runs.add_argument("--snapshot", metavar="ID", help="runs on this dataset snapshot (id or prefix)")
    runs.add_argument("--config-hash", metavar="SHA", help="runs of this config (hash or prefix)")
    runs.add_argument("--experiment", metavar="ID", help="a coordinator/sweep and its child runs")
    runs.add_argument("--query", metavar="VISIBILITY_QUERY",
                      help="extra visibility query ANDed to the filters, e.g. \"StartTime > '2026-01-01'\"")
    runs.add_argument("--all", action="store_true",
                      help="every workflow of the namespace, not only temporal-ml runs")
    runs.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    runs.add_argument("--format", choices=["table", "json"], default="table")
    add_client_options(runs)
    runs.set_defaults(handler=lambda args: asyncio.run(_runs(args)))

    status = sub.add_parser("status", help="show a run (live with --follow)",
                            description="Show one run: state, timing, lineage and a row per experiment "
                                        "or its training progress.")
    status.add_argument("id", metavar="ID", help="workflow id of the run")
    status.add_argument("--follow", "-f", action="store_true", help="keep the view live until the run closes")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (--follow)")
    status.add_argument("--format", choices=["table", "json"], default="table")
    add_client_options(status)
    status.set_defaults(handler=lambda args: asyncio.run(_status(args)))


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def runs_query(args: argparse.Namespace) -> str:
    """The visibility query of ``temporal-ml runs`` for its filters."""
    clauses = [] if args.all else ["TmlKind IS NOT NULL"]
    kinds = [KIND_ALIASES.get(k.lower(), k) for k in args.kind]
    if kinds:
        clauses.append("(" + " OR ".join(f"TmlKind = {_quote(k)}" for k in kinds) + ")")
    states = []
    for state in args.state:
        key = state.lower().replace("-", "_")
        if key not in _STATES:
            raise ConfigError(f"--state {state}: unknown state (one of {', '.join(_STATES)})")
        states.append(_STATES[key])
    if states:
        clauses.append("(" + " OR ".join(f"ExecutionStatus = {_quote(s)}" for s in states) + ")")
    for attr, value in (("TmlSnapshotId", args.snapshot), ("TmlConfigHash", args.config_hash)):
        if value:
            op = "=" if len(value) == 64 else "STARTS_WITH"
            clauses.append(f"{attr} {op} {_quote(value.lower())}")
    if args.experiment:
        clauses.append(f"(TmlExperiment = {_quote(args.experiment)} OR WorkflowId = {_quote(args.experiment)})")
    if args.query:
        clauses.append(f"({args.query})")
    return " AND ".join(clauses)


async def _runs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    query = runs_query(args)
    client = await client_for(args)
    found: list[RunInfo] = []
    try:
        async for execution in client.list_workflows(query or None, limit=args.limit):
            found.append(run_info(execution))
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT and "Tml" in str(exc):
            raise ConfigError(
                f"the temporal-ml search attributes are not registered on namespace {client.namespace!r}: "
                "run `temporal-ml setup` once (or list every workflow with --all)") from exc
        raise
    if args.format == "json":
        print(json.dumps([r.as_dict() for r in found], indent=2, default=str))
        return 0
    if not found:
        print("no runs" + (f" match {query}" if query else ""), file=sys.stderr)
        return 0
    rows = [{"id": r.id, "kind": r.kind or "-", "status": r.status, "type": r.type,
             "started": r.start_time, "duration": format_duration(r.duration_seconds),
             "snapshot": r.snapshot_id[:12] or None, "config": r.config_hash[:12] or None,
             "metric": r.metric} for r in found]
    print(format_table(rows, ["id", "kind", "status", "type", "started", "duration", "snapshot", "config",
                              "metric"]))
    return 0


# -- status ---------------------------------------------------------------------------------------

def _header(info: RunInfo) -> list[str]:
    lines = [f"run {info.id}  kind {info.kind or '-'}  status {info.status}  type {info.type}  "
             f"queue {info.task_queue or '-'}"]
    timing = f"started {info.start_time:%Y-%m-%d %H:%M:%S} UTC" if info.start_time else "not started"
    timing += f"  {'running for' if info.running else 'took'} {format_duration(info.duration_seconds)}"
    lines.append(timing)
    if info.phase:
        lines.append(info.phase)
    lineage = [f"{label} {value}" for label, value in (("snapshot", info.snapshot_id),
                                                       ("config", info.config_hash),
                                                       ("experiment", info.experiment)) if value]
    if lineage:
        lines.append("  ".join(lineage))
    return lines


async def _snapshot(client: Any, workflow_id: str) -> tuple[RunInfo, list[dict[str, Any]]]:
    from temporal_ml.results import result_rows

    info, description = await describe_run(client, workflow_id)
    if info.running and info.kind in ("sweep", "ladder"):
        info.phase = await sweep_phase(client, workflow_id, info.duration_seconds)
    elif info.running and info.kind == "coordinator":
        info.phase = await coordinator_phase(client, workflow_id)
    rows = await result_rows(client, workflow_id) if info.kind else []
    lost = worker_lost(description) if info.running else None
    if lost is not None and len(rows) == 1:
        step = rows[0].get("checkpoint_step")
        where = f"step {step}" if step is not None else "its latest checkpoint"
        rows[0]["note"] = f"worker lost ({lost}); resuming from {where} when another worker picks it up"
    return info, rows


def _row_columns(info: RunInfo, rows: Sequence[dict[str, Any]]) -> list[str]:
    wanted = STATUS_COLUMNS.get(info.kind)
    present = {k for row in rows for k in row}
    if wanted is None:
        return [c for c in ("name", "status", "step", "error") if c in present] or sorted(present)
    shown = [c for c in wanted if c in present or c in ("name", "status")]
    # an evaluation's rows done: only while one runs
    return [c for c in shown if c not in _LIVE_ONLY or any(row.get(c) is not None for row in rows)]


#: Status columns shown only when a row has a value (live progress of running evaluations).
_LIVE_ONLY = frozenset({"rows", "eval_rows"})


def _render(info: RunInfo, rows: Sequence[dict[str, Any]]) -> str:
    parts = _header(info)
    if rows:
        parts += ["", format_table(rows, _row_columns(info, rows))]
    return "\n".join(parts)


async def _status(args: argparse.Namespace) -> int:
    client = await client_for(args)
    info, rows = await _snapshot(client, args.id)
    if args.format == "json" and not args.follow:
        print(json.dumps({"run": info.as_dict(), "rows": rows}, indent=2, default=str))
        return _code(info)
    if not args.follow:
        print(_render(info, rows))
        return _code(info)
    return await _follow(client, args, info, rows)


def _code(info: RunInfo) -> int:
    return 1 if info.status in ("failed", "terminated", "timed_out", "canceled") else 0


async def _follow(client: Any, args: argparse.Namespace, info: RunInfo, rows: list[dict[str, Any]]) -> int:
    """The header once, then each row in the library's progress view (:class:`ProgressView`: a bar per
    row on a terminal, a line per change of state otherwise) and the status line whenever it
    changes, until the run closes; then a closing line."""
    from temporal_ml.progress import ProgressView, RunProgress

    print("\n".join(_header(info)), flush=True)
    if sys.stdout.isatty():
        print("(Ctrl-C to stop following)", flush=True)
    shown = _untimed(info.phase)
    with ProgressView(sys.stdout) as view:
        while True:
            if info.phase and _untimed(info.phase) != shown:  # a sweep's status line changed
                view.say(info.phase)
                shown = _untimed(info.phase)
            for row in rows:
                view.update(str(row.get("name")), RunProgress.of_row(row))
            if not info.running:
                break
            await asyncio.sleep(args.interval)
            info, rows = await _snapshot_through_restarts(client, args.id)
    print(f"run {info.id} {info.status} after {format_duration(info.duration_seconds)}", flush=True)
    return _code(info)


async def _snapshot_through_restarts(client: Any, run_id: str) -> tuple[RunInfo, list[dict[str, Any]]]:
    """The run's state; while the server is unreachable (a restart) keep retrying, and say so."""
    from temporal_ml.client import reconnecting

    def tell(message: str) -> None:
        print(f"temporal-ml: {message}", file=sys.stderr, flush=True)

    return await reconnecting(lambda: _snapshot(client, run_id), on_disconnect=tell)


def _untimed(phase: str | None) -> str:
    """A status line without its elapsed/left times (which change on every poll)."""
    if not phase:
        return ""
    return " · ".join(part for part in phase.split(" · ") if "elapsed" not in part)
