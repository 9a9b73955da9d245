"""Re-run the failed trials of a finished sweep or coordinator, under its own workflow id.

A running sweep or coordinator takes the ``retry_failed`` update. One that has finished is
*reopened*: a new run of the same workflow id starts from the finished run's input and outcome,
with the failed trials (or experiments) as the only work left. Each runs again from its last
checkpoint (its training run id is unchanged), the rest keep their results, and the new run's
result is the whole sweep's (or coordinator's) again::

    client = await temporal_ml.connect()
    again = await reopen_sweep(client, "sst2-sweep")                 # every failed trial
    again = await reopen_coordinator(client, "exp-7", ["bert-lr3"])  # one experiment
    result = await client.get_workflow_handle("exp-7").result()

``temporal-ml retry ID [--trial N | --experiment NAME]`` calls these for a finished run (and sends
``retry_failed`` to a running one). A reopened ladder (:func:`reopen_ladder`) runs each failed trial
again toward the rung it failed at, then lets its scheduler promote it as usual; it starts no new
trial.
"""

from __future__ import annotations

import hashlib
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus

from temporal_ml.client import workflow_input
from temporal_ml.errors import ConfigError

__all__ = ["reopen_sweep", "reopen_ladder", "reopen_coordinator"]


async def _closed_run(client: Client, workflow_id: str, what: str, input_type: type[Any],
                      result_type: type[Any]) -> tuple[Any, Any, Any]:
    """``(description, input, result)`` of ``workflow_id``'s latest run, which must have completed
    with an input of ``input_type``."""
    description = await _finished(client, workflow_id, what)
    inp = await workflow_input(client, client.get_workflow_handle(workflow_id), input_type)
    if inp is None:
        raise ConfigError(f"{workflow_id!r} is not a {what} (its input is not a {input_type.__name__})")
    result = await client.get_workflow_handle(workflow_id, result_type=result_type).result()
    return description, inp, result


async def _finished(client: Client, workflow_id: str, what: str) -> Any:
    """The description of ``workflow_id``'s latest run, which must have completed."""
    from temporal_ml.errors import NotFoundError

    handle = client.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except Exception as exc:  # noqa: BLE001 - RPCError NOT_FOUND and friends: one line
        raise NotFoundError(f"no {what} {workflow_id!r} on this server ({type(exc).__name__})") from None
    status = description.status
    if status == WorkflowExecutionStatus.RUNNING:
        raise ConfigError(f"{what} {workflow_id!r} is running: send it retry_failed instead of reopening it")
    if status != WorkflowExecutionStatus.COMPLETED:
        name = status.name.lower() if status is not None else "unknown"
        raise ConfigError(f"cannot reopen {what} {workflow_id!r}: its last run {name}, only a finished one "
                          "can be reopened (start it again instead)")
    return description


async def reopen_coordinator(client: Client, workflow_id: str, experiments: list[str] | None = None,
                             storage_options: dict[str, Any] | None = None) -> list[str]:
    """Start finished coordinator ``workflow_id`` again to re-run its failed ``experiments`` (all
    failed ones by default) from their last checkpoints; returns their names.

    Raises ``ConfigError`` (one line) when it is not a finished coordinator or has no such failed
    experiment, ``NotFoundError`` when there is no such workflow.
    """
    from temporal_ml.types import CoordinatorResult
    from temporal_ml.workflows.coordinator import (
        CoordinatorCarry,
        CoordinatorInput,
        read_coordinator_table,
    )

    description, inp, result = await _closed_run(client, workflow_id, "coordinator", CoordinatorInput,
                                                 CoordinatorResult)
    done = result.experiments or (read_coordinator_table(result.table_uri, storage_options)
                                  if result.table_uri else [])
    known = {e.name for e in done}
    unknown = sorted(set(experiments or []) - known)
    if unknown:
        raise ConfigError(f"coordinator {workflow_id!r} has no experiment {unknown[0]!r}")
    again = [e.name for e in done if e.status == "failed" and (experiments is None or e.name in experiments)]
    if not again:
        which = ", ".join(experiments) if experiments else "none"
        raise ConfigError(f"nothing to retry: coordinator {workflow_id!r} has no failed experiment ({which})")
    keep = [e for e in done if e.name not in again]
    carry = CoordinatorCarry(
        finished={e.name: e.status for e in keep},
        scores={entry.name: entry.value for entry in result.leaderboard if entry.name not in again},
        unwritten=[] if result.table_uri else keep, parts=len(_parts(result.table_uri, storage_options)),
        runs=result.runs, reopened=True)
    await client.start_workflow(
        description.workflow_type, inp.model_copy(update={
            "run_id": result.run_id, "snapshot": result.snapshot, "dataset": None, "carried": carry}),
        id=workflow_id, task_queue=description.task_queue)
    return again


async def reopen_sweep(client: Client, workflow_id: str, trial: int | None = None,
                       storage_options: dict[str, Any] | None = None) -> list[int]:
    """Start finished sweep ``workflow_id`` again to re-run its failed trials (``trial`` only, if
    given) from their last checkpoints; returns their indices. No new trial starts.

    Raises ``ConfigError`` (one line) when it is not a finished sweep or has no such failed trial.
    """
    from temporal_ml.activities.sweep import read_sweep_table
    from temporal_ml.sweeps import (
        TOP_ROWS,
        SweepInput,
        SweepResult,
        SweepState,
        TableSummary,
        TrialRow,
        front_of,
    )
    from temporal_ml.workflows._sweep_table import rank_rows

    description, inp, result = await _closed_run(client, workflow_id, "sweep", SweepInput, SweepResult)
    if result.table_uri:
        rows = [TrialRow.model_validate(r) for r in read_sweep_table(result.table_uri, storage_options)]
    elif result.rows_omitted:
        raise ConfigError(f"cannot reopen sweep {workflow_id!r}: {result.rows_omitted} of its rows were "
                          "not kept (it had no table_root)")
    else:
        rows = [t.row for t in result.trials]
    again = [r for r in rows if r.state == "failed" and (trial is None or r.index == trial)]
    if not again:
        which = f"trial {trial} did not fail" if trial is not None else "no trial failed"
        raise ConfigError(f"nothing to retry: sweep {workflow_id!r}: {which}")
    indices = [r.index for r in again]
    if result.table_uri:  # the table stays; the re-run rows join it as a later part (which wins)
        digests = _parts(result.table_uri, storage_options)
        kept = [r for r in rows if r.index not in indices]
        top, dropped = (front_of(kept, inp.directions) if inp.directions is not None else  # several objectives
                        (rank_rows(kept, inp.direction, by_budget=inp.scheduler is not None)[:TOP_ROWS], 0))
        table = TableSummary(
            uri=result.table_uri, parts=digests, rows=len(kept),
            n_done=sum(r.state == "done" for r in kept), n_failed=sum(r.state == "failed" for r in kept),
            n_stopped=sum(r.state == "stopped" for r in kept),
            top=top, front_dropped=dropped)
        held = again
    else:
        table, held = TableSummary(), rows
    carried = inp.carried
    state = SweepState(
        rows=held, n_started=result.n_trials, table=table, n_trials=result.n_trials,
        max_concurrency=carried.max_concurrency if carried is not None else inp.max_concurrency,
        results_seen=max((seq + 1 for r in rows for seq in _seqs(r)), default=0),
        exhausted=result.exhausted, runs=result.runs, retry=indices)
    await client.start_workflow(
        description.workflow_type, inp.model_copy(update={
            "run_id": result.run_id, "snapshot": result.snapshot, "dataset": None, "carried": state}),
        id=workflow_id, task_queue=description.task_queue)
    return indices


def _seqs(row: Any) -> list[int]:
    """Every result order a trial's row records (its results, earlier ones, rung results, re-runs)."""
    return [*([row.result_seq] if row.result_seq is not None else []), *row.retried_from,
            *row.rung_seqs, *row.rerun_seqs]


async def reopen_ladder(client: Client, workflow_id: str, trial: int | None = None) -> list[int]:
    """Start finished ladder ``workflow_id`` again to re-run its failed trials (``trial`` only, if
    given), each toward the rung it failed at from its last checkpoint; returns their indices. No
    new trial starts; the scheduler may promote the re-run trials.

    The ladder's measured checkpoint bytes start again from zero (a byte budget is enforced on the
    trials measured after the reopen).
    """
    from temporal_ml.sweeps import LadderInput, LadderResult, LadderState

    description, inp, result = await _closed_run(client, workflow_id, "ladder", LadderInput, LadderResult)
    rows = [t.row for t in result.trials]
    again = [r.index for r in rows if r.state == "failed" and (trial is None or r.index == trial)]
    if not again:
        which = f"trial {trial} did not fail" if trial is not None else "no trial failed"
        raise ConfigError(f"nothing to retry: ladder {workflow_id!r}: {which}")
    table = result.table
    rung_of = {}
    for name, bracket in table.trial_bracket.items():  # the rung each trial last trained toward
        rungs = table.brackets[bracket].rungs
        rung_of[name] = 1 + max((k for k, rung in enumerate(rungs) if name in rung.promoted), default=-1)
    state = LadderState(
        table=table, rows=rows, rung_of=rung_of, decisions=result.decisions, deleted=result.deleted,
        reports=result.reports, freed_bytes=result.freed_bytes, peak_checkpoint_bytes=result.peak_checkpoint_bytes,
        budget_exceeded=result.budget_exceeded, started=len(rows), added=max(0, len(rows) - inp.n_trials),
        exhausted=True, results_seen=len(result.reports), retry=again,
        max_concurrency=inp.carried.max_concurrency if inp.carried is not None else inp.max_concurrency)
    await client.start_workflow(
        description.workflow_type, inp.model_copy(update={
            "run_id": result.run_id, "snapshot": result.snapshot, "dataset": None, "carried": state}),
        id=workflow_id, task_queue=description.task_queue)
    return again


def _parts(uri: str | None, storage_options: dict[str, Any] | None) -> list[str]:
    """The sha256 of each part of the table at ``uri``, in order (none without a table)."""
    if not uri:
        return []
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    digests = []
    for part in sorted(fs.glob(f"{path.rstrip('/')}/part-*.json")):
        with fs.open(part, "rb") as f:
            digests.append(hashlib.sha256(f.read()).hexdigest())
    return digests
