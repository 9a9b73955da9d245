"""What the dashboard shows and sends: runs, a run's rows (paged, sorted, filtered on the server),
its status line, its figures, and the controls (Temporal updates, validated by the workflows).

Every function takes a connected :class:`temporalio.client.Client`; none holds state between calls
except :class:`RowCache`, which keeps a run's rows for a moment so that paging through a sweep of
10,000 trials does not read its results table once per page.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)

__all__ = ["RUN_KINDS", "ControlError", "RowCache", "list_runs", "run_summary", "page_rows", "control",
           "figure_png", "CONTROLS", "pareto_front_rows", "FRONT_SHOWN"]

#: The kinds the runs page filters by (a coordinator's kind is ``coordinator``).
RUN_KINDS = ("train", "eval", "coordinator", "sweep", "ladder")
#: The states the runs page filters by: the label -> Temporal's ``ExecutionStatus``.
STATES = {"running": "Running", "completed": "Completed", "failed": "Failed", "cancelled": "Canceled",
          "terminated": "Terminated", "timed_out": "TimedOut", "continued_as_new": "ContinuedAsNew"}
#: Control -> (update name, what its argument is: ``None`` (none), ``int``, ``object``), by run kind.
CONTROLS: dict[str, dict[str, tuple[str, str | None]]] = {
    "sweep": {"pause": ("pause", None), "resume": ("resume", None), "stop": ("stop", None),
              "stop_trial": ("stop_trial", "int"), "add_trials": ("add_trials", "int"),
              "enqueue": ("enqueue", "object"), "set_max_concurrency": ("set_max_concurrency", "int"),
              "retry_failed": ("retry_failed", None)},
    "train": {"pause": ("pause", None), "resume": ("resume", None), "stop": ("stop_early", None)},
    "coordinator": {"pause": ("pause", None), "resume": ("resume", None)},
}
CONTROLS["ladder"] = CONTROLS["sweep"]
_TIMEOUT = timedelta(seconds=10)


class ControlError(Exception):
    """A control the dashboard refuses or the run refused, in one line."""


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def list_runs(client: Client, *, kind: str = "", state: str = "", text: str = "", page: int = 0,
                    per_page: int = 50) -> dict[str, Any]:
    """One page of temporal-ml runs, newest first: ``{"runs": [...], "page": k, "more": bool}``.

    ``text`` matches the start of a workflow id or of the experiment (sweep or coordinator) a run
    belongs to."""
    from temporal_ml.runs import run_info

    clauses = ["TmlKind IS NOT NULL"]
    if kind in RUN_KINDS:
        clauses.append(f"TmlKind = {_quote(kind)}")
    if state in STATES:
        clauses.append(f"ExecutionStatus = {_quote(STATES[state])}")
    if text:
        clauses.append(f"(WorkflowId STARTS_WITH {_quote(text)} OR TmlExperiment STARTS_WITH {_quote(text)})")
    wanted = (page + 1) * per_page + 1
    found = []
    async for execution in client.list_workflows(" AND ".join(clauses), limit=wanted):
        found.append(run_info(execution))
    shown = found[page * per_page:(page + 1) * per_page]
    return {"page": page, "more": len(found) > (page + 1) * per_page, "runs": [
        {"id": r.id, "kind": r.kind, "status": r.status, "type": r.type,
         "started": r.start_time.isoformat() if r.start_time else None, "duration_s": r.duration_seconds,
         "snapshot": r.snapshot_id[:12], "metric": r.metric, "experiment": r.experiment}
        for r in shown]}


@dataclass
class RowCache:
    """A run's rows (``temporal_ml.results.result_rows``) kept ``ttl`` seconds: the table, its pages
    and the figure of one refresh read the run once."""

    ttl: float = 1.5
    _rows: dict[str, tuple[float, Any, list[dict[str, Any]]]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def get(self, client: Client, workflow_id: str) -> tuple[Any, list[dict[str, Any]]]:
        """(``RunInfo``, rows) of the run, at most ``ttl`` seconds old."""
        from temporal_ml.results import result_rows
        from temporal_ml.runs import describe_run

        lock = self._locks.setdefault(workflow_id, asyncio.Lock())
        async with lock:
            cached = self._rows.get(workflow_id)
            if cached is not None and time.monotonic() - cached[0] < self.ttl:
                return cached[1], cached[2]
            info, _ = await describe_run(client, workflow_id)
            rows = await result_rows(client, workflow_id)
            if len(self._rows) > 64:
                self._rows.pop(next(iter(self._rows)))
            self._rows[workflow_id] = (time.monotonic(), info, rows)
            return info, rows


async def run_summary(client: Client, cache: RowCache, workflow_id: str) -> dict[str, Any]:
    """The run's facts, its status line (a running sweep's counts, best, time left), its kind's
    controls and, for a sweep, its search space (the enqueue form)."""
    from temporal_ml.runs import format_duration

    info, rows = await cache.get(client, workflow_id)
    line, space, rungs = "", None, None
    if info.kind in ("sweep", "ladder"):
        line, space, rungs = await _sweep_facts(client, info)
    elif info.running and info.kind == "coordinator":
        from temporal_ml.runs import coordinator_phase

        line = await coordinator_phase(client, info.id)
    front = pareto_front_rows(rows) if info.kind == "sweep" else None
    lineage = {k: rows[0].get(k) for k in ("config_hash", "snapshot_id", "seed", "library_version",
                                           "checkpoint_sha256", "resumes", "pauses") if rows and k in rows[0]}
    return {"id": info.id, "kind": info.kind, "status": info.status, "type": info.type,
            "task_queue": info.task_queue, "started": info.start_time.isoformat() if info.start_time else None,
            "duration": format_duration(info.duration_seconds), "snapshot": info.snapshot_id,
            "experiment": info.experiment, "line": line, "rows": len(rows), "space": space, "rungs": rungs,
            "front": front,
            "controls": sorted(CONTROLS.get(info.kind, {})) if info.running else [],
            "lineage": lineage if info.kind == "train" else {},
            "checkpoints": await _checkpoints_of(rows[0].get("checkpoint") if rows else None)
            if info.kind == "train" else None}


#: Trials of a multi-objective sweep's Pareto front its page lists at most (by ``rank``: the ends
#: of the front and its sparse stretches first).
FRONT_SHOWN = 100


def pareto_front_rows(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A multi-objective sweep's Pareto front for its page: the objectives, the front's trials
    (``pareto`` 1, at most :data:`FRONT_SHOWN`, by rank) with each objective's value, and its size;
    ``None`` for a sweep with one objective.

    Example::

        {"objectives": ["accuracy", "loss"], "size": 3,
         "trials": [{"name": "t0004", "rank": 1, "values": [0.93, 0.21]}, ...]}
    """
    objectives = [c for c in (rows[0] if rows else {}) if c.startswith("value.")]
    if not objectives or not any("pareto" in r for r in rows):
        return None
    front = sorted((r for r in rows if r.get("pareto") == 1),
                   key=lambda r: (r.get("rank") is None, r.get("rank") or 0))
    return {"objectives": [c.removeprefix("value.") for c in objectives], "size": len(front),
            "trials": [{"name": r.get("name"), "index": r.get("index"), "rank": r.get("rank"),
                        "values": [_json_value(r.get(c)) for c in objectives]} for r in front[:FRONT_SHOWN]]}


#: Checkpoints a training's page lists at most (the newest).
CHECKPOINTS_SHOWN = 50


def checkpoint_list(uri: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The checkpoints of the training run whose checkpoint ``uri`` is given (its run directory:
    ``<root>/<run_id>/step-N``), newest first: step, model digest, bytes (every file), metrics;
    a step directory without a valid manifest (being written, torn or being deleted) is left out.

    Example::

        checkpoint_list("file:///data/tml/checkpoints/run-1/step-000000000200")
        # [{"step": 200, "sha256": "9f2c...", "bytes": 1843200, "metrics": {"loss": 0.41}}, ...]
    """
    import fsspec

    from temporal_ml.storage._ckpt_manifest import MODEL_FILE, scan

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    run_dir = path.rstrip("/").rsplit("/", 1)[0]
    run_id = run_dir.rsplit("/", 1)[-1]
    out = []
    for step, _, manifest in reversed(scan(fs, run_dir, run_id)):
        if manifest is None:
            continue
        files = manifest["files"]
        out.append({"step": step, "sha256": files.get(MODEL_FILE, {}).get("sha256"),
                    "bytes": sum(int(f.get("bytes", 0)) for f in files.values()),
                    "metrics": dict(manifest.get("metrics") or {})})
        if len(out) >= CHECKPOINTS_SHOWN:
            break
    return out


async def _checkpoints_of(uri: Any) -> list[dict[str, Any]]:
    """:func:`checkpoint_list` off the event loop; none when unknown or the store cannot be read
    (the page shows the rest)."""
    import asyncio

    if not isinstance(uri, str) or not uri:
        return []
    try:
        return await asyncio.to_thread(checkpoint_list, uri)
    except Exception:  # noqa: BLE001 - a store this process cannot read: no list
        return []


async def _sweep_facts(client: Client, info: Any) -> tuple[str, Any, Any]:
    from temporal_ml.client import workflow_input
    from temporal_ml.sweeps import LadderInput, SweepInput, SweepStatus

    handle = client.get_workflow_handle(info.id)
    line, space, rungs = "", None, None
    try:
        inp = await workflow_input(client, handle, LadderInput if info.kind == "ladder" else SweepInput)
    except Exception:  # noqa: BLE001 - an input we cannot read: no form
        inp = None
    if inp is not None:
        space = {name: param.model_dump(mode="json") for name, param in inp.space.params.items()}
    if info.running:
        try:
            status = await handle.query("sweep_status", args=[0, 0], result_type=SweepStatus,
                                        rpc_timeout=timedelta(seconds=5))
            line = status.summary(info.duration_seconds)
            if status.scheduled is not None:
                rungs = {"counts": [r.model_dump() for r in status.scheduled.rungs],
                         "decisions": status.scheduled.decisions[-10:]}
        except Exception:  # noqa: BLE001 - no worker answers now: the page says so
            line = "no answer from the run's worker (it shows again when one polls)"
    return line, space, rungs


def page_rows(rows: list[dict[str, Any]], *, offset: int = 0, limit: int = 50, sort: str = "",
              desc: bool = False, query: str = "") -> dict[str, Any]:
    """One page of ``rows``: filtered (``query`` in any cell's text), sorted by column ``sort``
    (missing values last), ``limit`` rows (at most 500) from ``offset``; with the columns."""
    from temporal_ml.plots import _columns

    columns = _columns(rows)
    chosen = [r for r in rows if not query or any(query.lower() in str(v).lower() for v in r.values())]
    if sort in columns:
        def key(row: dict[str, Any]) -> tuple[int, Any]:
            value = row.get(sort)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return (1, 0)
            return (0, value if isinstance(value, (int, float)) else str(value))

        present = [r for r in chosen if key(r)[0] == 0]
        missing = [r for r in chosen if key(r)[0] == 1]
        try:
            present.sort(key=key, reverse=desc)
        except TypeError:  # mixed numbers and text: compare as text
            present.sort(key=lambda r: str(r.get(sort)), reverse=desc)
        chosen = present + missing
    limit = max(1, min(int(limit), 500))
    offset = max(0, int(offset))
    return {"columns": columns, "total": len(chosen), "offset": offset,
            "rows": [{c: _json_value(r.get(c)) for c in columns} for r in chosen[offset:offset + limit]]}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


async def control(client: Client, workflow_id: str, kind: str, action: str, arg: Any) -> str:
    """Send control ``action`` (with ``arg``) to a run as a Temporal update; the answer in one line.

    Raises:
        ControlError: the action does not apply, its argument is malformed, or the run refused it
            (the workflow's validator: the same checks as the CLI's).
    """
    known = CONTROLS.get(kind, {})
    if action not in known:
        raise ControlError(f"{action!r} is not a control of a {kind or 'run'} "
                           f"({', '.join(sorted(known)) or 'none'})")
    update, takes = known[action]
    args: list[Any] = []
    if takes == "int":
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise ControlError(f"{action} needs a whole number, got {str(arg)[:40]!r}")
        args = [arg]
    elif takes == "object":
        if not isinstance(arg, dict):
            raise ControlError(f"{action} needs a point of the search space (an object)")
        args = [arg]
    try:
        answer = await client.get_workflow_handle(workflow_id).execute_update(
            update, args=args, rpc_timeout=_TIMEOUT)
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise ControlError(f"{workflow_id}: no answer in {_TIMEOUT.seconds}s: is a worker polling the "
                           "run's task queue?") from None
    except WorkflowUpdateFailedError as exc:
        from temporal_ml.failures import one_line

        raise ControlError(f"{workflow_id}: {one_line(exc)}") from None
    return _answer_line(action, answer)


def _answer_line(action: str, answer: Any) -> str:
    if isinstance(answer, dict) and "phase" in answer:
        return f"{action}: the run is {answer['phase']}"
    if isinstance(answer, dict) and "state" in answer:
        return f"{action}: {answer.get('state')} at step {answer.get('step')}"
    return f"{action}: {answer}"


def figure_png(info: Any, rows: list[dict[str, Any]], metrics_dir: Path | None, rungs: Any = None,
               space: Any = None, live_only: bool = False) -> bytes | None:
    """The run's figure (learning curves, objective per trial, best so far, parallel coordinates,
    rungs) as PNG, or ``None`` with nothing to draw. ``live_only``: the learning curves of the rows
    still running only (the live panel, redrawn as they train)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from temporal_ml.errors import ConfigError
    from temporal_ml.plots import _curves, _draw, _png, figure

    if live_only:
        running = [r for r in rows if r.get("status") in ("training", "running", "evaluating")]
        curves = _curves(info, running, metrics_dir) if running else {}
        if not curves:
            return None
        fig, ax = plt.subplots(figsize=(8, 3.4))
        _draw(ax, "curves", curves, None)
        ax.set_title(f"running: {len(curves)} learning curves")
    else:
        try:
            fig = figure(info, rows, metrics_dir, None, rungs, space)
        except ConfigError:
            return None
    try:
        return _png(fig)
    finally:
        plt.close(fig)
