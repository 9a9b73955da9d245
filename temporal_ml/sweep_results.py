"""The result rows of sweeps (and of the ladder of the previous release): one row per trial, from
the sweep's results table, its held rows or its result, with live progress while it runs.
Registered with :func:`temporal_ml.results.register_rows` for the ``sweep`` and ``ladder`` kinds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from temporalio.client import Client

    from temporal_ml.runs import RunInfo


from temporal_ml.results import (
    _QUERY_TIMEOUT,
    Row,
    _base_row,
    _input,
    _prefixed,
    eval_progress,
    param_column,
    register_rows,
)

__all__ = ["sweep_trials", "trials_evaluating"]


async def trials_evaluating(client: Client, workflow_id: str, kind: str, trials: Sequence[Any]) -> dict[int, Any]:
    """The rows done by the evaluation of each trial (``TrialRow``) that is evaluating now, by index:
    ``{3: RowProgress(...)}`` (a trial whose evaluation has reported nothing yet is left out).

    ``kind`` is ``sweep`` (children ``<run>--tNNNN--eval``; with a scheduler ``<run>--tNNNN--rR--eval``,
    the rung from the row) or ``ladder`` (the rung from its ``ladder`` query)."""
    evaluating = [t for t in trials if t.state == "evaluating"]
    if not evaluating:
        return {}
    handle = client.get_workflow_handle(workflow_id)
    run_id = workflow_id
    rung_of: dict[str, int] = {}
    from temporal_ml.sweeps import LadderInput, LadderState, SweepInput

    try:
        if kind == "ladder":
            state = await handle.query("ladder", result_type=LadderState, rpc_timeout=_QUERY_TIMEOUT)
            rung_of = dict(state.rung_of) if state is not None else {}
        inp = await _input(client, workflow_id, SweepInput if kind == "sweep" else LadderInput)
        run_id = (inp.run_id if inp is not None else None) or workflow_id
    except Exception:  # noqa: BLE001 - no worker answers: no live evaluation rows
        return {}

    async def one(trial: Any) -> tuple[int, Any]:
        rung = f"--r{rung_of[trial.name]}" if trial.name in rung_of else ""
        if getattr(trial, "rung", None) is not None:
            rung = f"--r{trial.rung}"
        if kind == "ladder" and not rung:
            return trial.index, None
        return trial.index, await eval_progress(client, f"{run_id}--{trial.name}{rung}--eval")

    found = await asyncio.gather(*(one(t) for t in evaluating))
    return {index: progress for index, progress in found if progress is not None}


def _trial_row(row: Any) -> Row:
    """A sweep's ``TrialRow`` as a result row."""
    from datetime import datetime, timezone

    end = row.finished or (datetime.now(timezone.utc) if row.started is not None else None)
    duration = (end - row.started).total_seconds() if row.started is not None and end is not None else None
    return {
        "name": row.name, "index": row.index, "status": row.state, "value": row.value,
        **{param_column(k): v for k, v in sorted(row.params.items())},
        "step": row.step, "max_steps": row.max_steps, "train.loss": row.loss,
        **_prefixed("eval", row.metrics), "resumes": row.resumes, "source": row.source,
        "started": row.started, "finished": row.finished, "duration_s": duration,
        "train_s": getattr(row, "train_seconds", None), "eval_s": getattr(row, "eval_seconds", None),
        "checkpoint": row.checkpoint_uri, "checkpoint_sha256": row.model_sha256, "error": row.error,
        **({"rung": row.rung, "bracket": row.bracket, "checkpoints_deleted": row.deleted,
            "decisions": "; ".join(row.decisions)}
           if getattr(row, "rung", None) is not None else {}),
    }


async def sweep_trials(client: Client, info: RunInfo) -> tuple[list[Any], Any | None]:
    """Every trial row (``TrialRow``) of a sweep or ladder, by index, and its result if it finished.

    A finished sweep: its result's rows, or (when it left rows out) every row of its results table.
    A running one: the rows in its table and the pages of its ``trials`` query (needs a worker;
    without one, the table's rows only). Raises ``WorkflowFailureError`` for a failed sweep.
    """
    from temporal_ml.activities.sweep import read_sweep_table
    from temporal_ml.sweeps import PAGE_ROWS, LadderResult, SweepResult, SweepStatus, TrialRow

    if info.status == "completed":
        result_type = SweepResult if info.kind == "sweep" else LadderResult
        result = await client.get_workflow_handle(info.id, result_type=result_type).result()
        rows = [t.row for t in result.trials]
        table_uri = getattr(result, "table_uri", None)
        if getattr(result, "rows_omitted", 0) and table_uri is not None:
            rows = [TrialRow.model_validate(r) for r in read_sweep_table(table_uri)]
        return rows, result
    handle = client.get_workflow_handle(info.id)
    by_index: dict[int, Any] = {}
    try:
        status = await handle.query("sweep_status", result_type=SweepStatus, rpc_timeout=_QUERY_TIMEOUT)
    except Exception:  # noqa: BLE001 - no worker answers (or a ladder of an older release)
        status = None
    offset = 0
    while True:
        try:
            page = await handle.query("trials", args=[offset, PAGE_ROWS], result_type=list[TrialRow],
                                      rpc_timeout=_QUERY_TIMEOUT)
        except Exception:  # noqa: BLE001 - no worker answers: the table's rows only
            break
        by_index.update({r.index: r for r in page})
        if len(page) < PAGE_ROWS:
            break
        offset += PAGE_ROWS
    if status is not None and status.table_uri is not None:  # the newer of a held and a written row
        for raw in read_sweep_table(status.table_uri):
            written = TrialRow.model_validate(raw)
            held = by_index.get(written.index)
            if held is None or _row_progress(written) >= _row_progress(held):
                by_index[written.index] = written
    return [by_index[k] for k in sorted(by_index)], None


def _row_progress(row: Any) -> tuple[int, int, int, int]:
    """How far a trial's row had got: a sweep writes a finished row to its table, and with a
    scheduler holds it again when it is promoted (the held row is then the newer)."""
    return (row.rung or 0, len(row.rung_values), len(row.retried_from) + len(row.rerun_seqs),
            row.result_seq if row.result_seq is not None else -1)


@register_rows("sweep")
@register_rows("ladder")
async def _sweep_rows(client: Client, info: RunInfo) -> list[Row]:
    """One row per trial: a finished sweep's (with rank, and lineage for the rows its result holds),
    or a running one's (:func:`sweep_trials`)."""
    from temporalio.client import WorkflowFailureError

    from temporal_ml.failures import one_line

    if info.status not in ("completed", "failed") and not info.running:
        return [_base_row(info)]
    try:
        trials, result = await sweep_trials(client, info)
    except WorkflowFailureError as exc:
        return [{**_base_row(info), "error": one_line(exc).removeprefix("the run failed: ")}]
    rows: list[Row] = []
    ranks: dict[str, int] = {}
    inline: dict[str, Any] = {}
    evaluating = await trials_evaluating(client, info.id, info.kind, trials) if info.running else {}
    objectives, directions = await _objectives(client, info, result)
    fronts: dict[str, int] = {}
    if objectives is not None and directions is not None:  # several objectives: by front, then crowding
        from temporal_ml.sweeps import pareto_ranked

        ranked = pareto_ranked(trials, directions)
        ranks = {t.name: k + 1 for k, (t, _) in enumerate(ranked)}
        fronts = {t.name: front for t, front in ranked}
    elif result is not None:
        sign = -1.0 if result.direction == "maximize" else 1.0
        if info.kind == "sweep":  # every done trial, ranked by its value (with a scheduler: the most steps first)
            scheduled = getattr(result, "scheduled", None) is not None
            done = sorted((t for t in trials if t.state == "done" and t.value is not None),
                          key=lambda t: (-t.step if scheduled else 0, sign * float(t.value), t.index))
            ranks = {t.name: k + 1 for k, t in enumerate(done)}
        else:  # a ladder ranks by the highest rung reached first
            ranks = {e.name: e.rank for e in result.leaderboard}
        inline = {t.name: t for t in result.trials}
    for trial in trials:
        row = _trial_row(trial)
        row["rank"] = ranks.get(trial.name)
        if objectives is not None:  # each objective's value, and the trial's front (1: the Pareto front)
            values = trial.values or [None] * len(objectives)
            row.update({f"value.{name}": v for name, v in zip(objectives, values, strict=False)})
            row["pareto"] = fronts.get(trial.name)
        row["budget"] = trial.max_steps or None
        if trial.index in evaluating:  # its evaluation's rows done so far
            row["eval_rows"] = evaluating[trial.index].line()
        if result is not None and info.kind == "sweep" and trial.name not in inline:  # from the table
            rung = f"--r{trial.rung}" if trial.rung is not None else ""
            row.update({"train_workflow_id": f"{result.run_id}--{trial.name}{rung}--train",
                        "eval_workflow_id": f"{result.run_id}--{trial.name}{rung}--eval"})
        if trial.name in inline:
            got = inline[trial.name]
            row.update({"train_workflow_id": got.train_workflow_id, "eval_workflow_id": got.eval_workflow_id})
            if got.lineage is not None:
                row.update({"seed": got.lineage.seed, "config_hash": got.lineage.config_hash,
                            "snapshot_id": got.lineage.snapshot_id,
                            "library_version": got.lineage.library_version})
        rows.append(row)
    for row in rows:
        row["experiment"] = info.id
    return _same_columns(rows, _SWEEP_COLUMNS) or [_base_row(info)]


async def _objectives(client: Client, info: RunInfo, result: Any) -> tuple[list[str] | None, list[Any] | None]:
    """A multi-objective sweep's objectives and directions (from its result, or while it runs from
    its input); ``(None, None)`` for a sweep with one objective, or a ladder."""
    if info.kind != "sweep":
        return None, None
    if result is not None:
        return getattr(result, "objectives", None), getattr(result, "directions", None)
    from temporal_ml.sweeps import SweepInput

    try:
        inp = await _input(client, info.id, SweepInput)
    except Exception:  # noqa: BLE001 - an input this version cannot read: no objectives' columns
        return None, None
    return (inp.objectives, inp.directions) if inp is not None else (None, None)


#: Columns every sweep row has, running or finished (empty until known): lineage and workflow ids
#: come with a trial's result, the rank with the sweep's.
_SWEEP_COLUMNS = ("rank", "budget", "eval_rows", "train_workflow_id", "eval_workflow_id", "seed",
                  "config_hash", "snapshot_id", "library_version")


def _same_columns(rows: list[Row], fixed: Sequence[str]) -> list[Row]:
    """Give every row the same keys in one order: ``fixed`` and every key any row has (a value a
    row lacks is ``None``), so a run's columns do not change while it runs or when it finishes.
    Order: name, status, value (a multi-objective sweep: ``pareto`` and each objective's
    ``value.<name>``), the params, progress, the ``eval.*`` metrics, then the rest."""
    keys = {k for row in rows for k in row} | set(fixed)
    first = ["name", "index", "status", "value", "pareto"]
    objectives = [k for row in rows[:1] for k in row if k.startswith("value.")]  # in the objectives' order

    def place(key: str) -> tuple[int, int, str]:
        if key in first:
            return (0, first.index(key), "")
        if key in objectives:
            return (0, len(first) + objectives.index(key), "")
        if key.startswith("params."):
            return (1, 0, key)
        if key in ("step", "max_steps", "budget", "train.loss"):
            return (2, ("step", "max_steps", "budget", "train.loss").index(key), "")
        return (3, 0, key) if key.startswith("eval.") else (4, 0, key)

    order = sorted(keys, key=place)
    return [{k: row.get(k) for k in order} for row in rows]
