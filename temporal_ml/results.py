"""Results of runs as tables: ``temporal_ml.results(client, id)`` -> a pandas ``DataFrame``.

Like Optuna's ``trials_dataframe()`` and Ray Tune's ``ResultGrid.get_dataframe()``: one row per
experiment (or trial) of a coordinator (or sweep), one row per run for a training or evaluation.
Columns: ``name``, ``status``, ``step``/``max_steps``, ``params.<hparam>`` for every hyperparameter
(``TrainConfig.hparams``; a sweep's space key ``hparams.<name>`` is the column ``params.<name>`` too, see
:func:`param_column`) and ``TrainConfig`` fields under their own names (``seed``, ``batch_size``), metrics (``train.<m>`` and ``eval.<m>`` for experiments, ``metrics.<m>`` for a
training), durations in seconds, lineage (``config_hash``, ``snapshot_id``, ``checkpoint_sha256``,
``library_version``), the workflow ids and ``error``.

Rows come from Temporal alone (the workflow's input and result in its history, its children, and a
``progress`` query for a running training), so they work on finished and running runs, with or without
a worker. :func:`result_rows` gives the same rows as plain dicts without pandas. Learning curves come
from the per-run ``metrics.jsonl`` logs (:func:`learning_curves`).

pandas (and matplotlib, rich for the CLI) are in the ``ui`` extra: ``pip install 'temporal-ml[ui]'``.
New run kinds (sweeps) plug in with :func:`register_rows`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from temporalio.client import Client

    from temporal_ml.cli_common import RunInfo

__all__ = ["results", "result_rows", "register_rows", "learning_curves", "require_pandas", "param_column"]

Row = dict[str, Any]
RowBuilder = Callable[["Client", "RunInfo"], Awaitable[list[Row]]]

_BUILDERS: dict[str, RowBuilder] = {}
_QUERY_TIMEOUT = timedelta(seconds=5)
_PARALLEL_EXPERIMENTS = 8  # experiments whose children are described at once


def register_rows(kind: str) -> Callable[[RowBuilder], RowBuilder]:
    """Register the row builder of a run kind (a ``TmlKind`` value), e.g. ``@register_rows("sweep")``.

    The builder gets the client and the run's :class:`~temporal_ml.cli_common.RunInfo` and returns
    one dict per row (trial, experiment, run).
    """

    def decorate(fn: RowBuilder) -> RowBuilder:
        _BUILDERS[kind] = fn
        return fn

    return decorate


def require_pandas() -> Any:
    """Import pandas, or raise :class:`MissingDependencyError` naming the ``ui`` extra."""
    from temporal_ml.errors import require

    return require("pandas", "ui")


async def result_rows(client: Client, workflow_id: str) -> list[Row]:
    """The rows of :func:`results` as plain dicts (no pandas needed)."""
    from temporal_ml.cli_common import describe_run

    info, _ = await describe_run(client, workflow_id)
    builder = _BUILDERS.get(info.kind)
    if builder is None:
        return [_base_row(info)]
    return await builder(client, info)


async def results(client: Client, workflow_id: str) -> pd.DataFrame:
    """A run's results as a DataFrame: one row per experiment/trial (coordinators, sweeps) or per run
    (trainings, evaluations). See the module docstring for the columns.

    Args:
        client: a connected client (:func:`temporal_ml.connect`).
        workflow_id: the run's workflow id (its run id).

    Raises:
        NotFoundError: no workflow with that id.
        MissingDependencyError: pandas is not installed (``pip install 'temporal-ml[ui]'``).
    """
    pd = require_pandas()
    rows = await result_rows(client, workflow_id)
    return pd.DataFrame.from_records(rows, columns=_columns(rows))


def _columns(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def learning_curves(metrics_dir: str | Path, run_ids: Iterable[str]) -> pd.DataFrame:
    """Learning curves from the per-run ``<metrics_dir>/<run_id>/metrics.jsonl`` logs written by the
    training activity: one row per logged step (``run_id``, ``event``, ``step``, ``loss``, ...).
    Runs without a log are skipped."""
    pd = require_pandas()
    records: list[Row] = []
    for run_id in run_ids:
        path = Path(metrics_dir) / run_id / "metrics.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line of a killed writer
            if isinstance(record, dict):
                records.append({"run_id": run_id, **record})
    return pd.DataFrame.from_records(records)


# -- builders -------------------------------------------------------------------------------------

def _base_row(info: RunInfo) -> Row:
    return {"name": info.id, "kind": info.kind, "status": info.status, "workflow_id": info.id,
            "started": info.start_time, "closed": info.close_time,
            "duration_s": info.duration_seconds}


def param_column(key: str) -> str:
    """The result column of a hyperparameter or search-space key, the same for every run kind:
    ``hparams.<name>`` (a space key) and ``<name>`` of ``TrainConfig.hparams`` are ``params.<name>``;
    another space key is a ``TrainConfig`` field and keeps its name (``batch_size``, ``seed``)."""
    return f"params.{key.removeprefix('hparams.')}" if key.startswith("hparams.") else key


def _params(config: Any) -> Row:
    row: Row = {f"params.{k}": v for k, v in sorted(config.hparams.items())}
    row.update({"seed": config.seed, "batch_size": config.batch_size, "max_steps": config.max_steps})
    return row


def _prefixed(prefix: str, metrics: Mapping[str, float] | None) -> Row:
    return {f"{prefix}.{k}": v for k, v in sorted((metrics or {}).items())}


async def _result_or_error(client: Client, workflow_id: str, result_type: type) -> tuple[Any, str | None]:
    """``(result, None)`` of a completed workflow, ``(None, root cause)`` of a failed one."""
    from temporalio.client import WorkflowFailureError

    from temporal_ml.cli_errors import one_line

    try:
        return await client.get_workflow_handle(workflow_id, result_type=result_type).result(), None
    except WorkflowFailureError as exc:
        return None, one_line(exc).removeprefix("the run failed: ")


async def _progress(client: Client, workflow_id: str) -> Any:
    """The ``progress`` query of a running training, or ``None`` (no worker answered in time)."""
    from temporal_ml.types import TrainProgress

    try:
        return await client.get_workflow_handle(workflow_id).query(
            "progress", result_type=TrainProgress, rpc_timeout=_QUERY_TIMEOUT)
    except Exception:  # noqa: BLE001 - no worker, or not a training: no live progress
        return None


async def eval_progress(client: Client, workflow_id: str) -> Any:
    """The rows an evaluation workflow's running activity has done (its heartbeat details, a
    :class:`~temporal_ml.training.progress.RowProgress`), or ``None`` (not evaluating, or not yet
    counted)."""
    from temporal_ml.training.progress import RowProgress

    try:
        description = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=_QUERY_TIMEOUT)
    except Exception:  # noqa: BLE001 - gone, or the server is busy: no news
        return None
    for pending in description.raw_description.pending_activities:
        payloads = list(pending.heartbeat_details.payloads)
        if payloads:
            try:
                details = await client.data_converter.decode(payloads)
            except Exception:  # noqa: BLE001 - details of another kind of activity
                continue
            progress = RowProgress.of_details(details)
            if progress is not None:
                return progress
    return None


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
    from temporal_ml.sweep_types import LadderInput, LadderState, SweepInput

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


async def _input(client: Client, workflow_id: str, input_type: type) -> Any:
    from temporal_ml.client import workflow_input

    return await workflow_input(client, client.get_workflow_handle(workflow_id), input_type)


@register_rows("train")
async def _training_rows(client: Client, info: RunInfo) -> list[Row]:
    from temporal_ml.types import TrainResult
    from temporal_ml.workflows.training import TrainingInput

    inp = await _input(client, info.id, TrainingInput)
    row = _base_row(info)
    row["name"] = info.run_id or info.id
    if inp is not None:
        row.update(_params(inp.config))
    if info.status == "completed":
        result, _ = await _result_or_error(client, info.id, TrainResult)
        row.update({"step": result.steps, "resumes": result.resumes, "pauses": result.pauses,
                    "stopped_early": result.stopped_early,
                    **_prefixed("metrics", result.metrics), "config_hash": result.config_hash,
                    "snapshot_id": result.snapshot.id, "checkpoint_sha256": result.checkpoint.model_sha256,
                    "checkpoint": result.checkpoint.uri})
    elif info.status == "failed":
        row["error"] = (await _result_or_error(client, info.id, TrainResult))[1]
    elif info.running:
        progress = await _progress(client, info.id)
        if progress is not None:
            row.update({"state": progress.state, "step": progress.step, "resumes": progress.resumes,
                        "pauses": progress.pauses,
                        "rows": progress.eval_rows.line() if progress.eval_rows is not None else None,
                        "metrics.loss": progress.loss,
                        "checkpoint_step": progress.latest_checkpoint.step
                        if progress.latest_checkpoint is not None else None,
                        "checkpoint": progress.latest_checkpoint.uri
                        if progress.latest_checkpoint is not None else None})
    row.setdefault("config_hash", info.config_hash or None)
    row.setdefault("snapshot_id", info.snapshot_id or None)
    row.setdefault("library_version", info.memo.get("temporal_ml") or None)  # the workflow's memo
    return [row]


@register_rows("eval")
async def _eval_rows(client: Client, info: RunInfo) -> list[Row]:
    from temporal_ml.types import EvalResult

    row = _base_row(info)
    row["name"] = info.run_id or info.id
    result, error = (await _result_or_error(client, info.id, EvalResult)
                     if info.status in ("completed", "failed") else (None, None))
    if info.running:
        progress = await eval_progress(client, info.id)
        if progress is not None:
            row.update({"state": "evaluating", "rows": progress.line()})
    if result is not None:
        row.update({"split": result.split, "examples": result.examples, **_prefixed("eval", result.metrics),
                    "snapshot_id": result.snapshot.id,
                    "checkpoint_sha256": result.checkpoint.model_sha256})
    row["error"] = error
    return [row]


@register_rows("coordinator")
async def _coordinator_rows(client: Client, info: RunInfo) -> list[Row]:
    from temporal_ml.types import CoordinatorResult
    from temporal_ml.workflows.coordinator import CoordinatorInput, child_id, read_coordinator_table

    inp = await _input(client, info.id, CoordinatorInput)
    run_id = (inp.run_id if inp is not None else None) or info.experiment or info.id
    final, error = (await _result_or_error(client, info.id, CoordinatorResult)
                    if info.status in ("completed", "failed") else (None, None))
    specs = list(inp.experiments) if inp is not None else []
    experiments = list(final.experiments) if final is not None else []
    if final is not None and final.table_uri:  # more results than fit in the workflow's result
        experiments = await asyncio.to_thread(read_coordinator_table, final.table_uri)
    done = {e.name: e for e in experiments}
    ranks = {e.name: e.rank for e in final.leaderboard} if final is not None else {}
    names = [s.name for s in specs] or list(done)
    configs = {s.name: s.config for s in specs}

    async def row_of(name: str) -> Row:
        train_id, eval_id = child_id(run_id, name, "train"), child_id(run_id, name, "eval")
        experiment = done.get(name)
        if experiment is not None:
            train_id, eval_id = experiment.train_workflow_id, experiment.eval_workflow_id
        row: Row = {"name": name, "status": "pending"}
        config = configs.get(name) or (experiment.lineage.config if experiment else None)
        if config is not None:
            row.update(_params(config))
            row["config_hash"] = config.config_hash()
        train, evaluation = await asyncio.gather(_child(client, train_id, "train"),
                                                 _child(client, eval_id, "eval"))
        row.update(train)
        row.update(evaluation)
        if experiment is not None:
            row["status"] = experiment.status
            if experiment.train is not None:
                row.update({"step": experiment.train.steps, "resumes": experiment.train.resumes,
                            **_prefixed("train", experiment.train.metrics)})
            if experiment.eval is not None:
                row.update(_prefixed("eval", experiment.eval.metrics))
            lin = experiment.lineage
            row.update({"snapshot_id": lin.snapshot_id, "checkpoint_sha256": lin.checkpoint_sha256,
                        "library_version": lin.library_version, "error": experiment.error})
            row["rank"] = ranks.get(name)
        else:
            row["status"] = _live_status(row)
        row.update({"train_workflow_id": train_id, "eval_workflow_id": eval_id})
        return row

    limit = asyncio.Semaphore(_PARALLEL_EXPERIMENTS)  # a large grid must not flood the server

    async def limited(name: str) -> Row:
        async with limit:
            return await row_of(name)

    rows = list(await asyncio.gather(*(limited(name) for name in names)))
    if error is not None:
        for row in rows:
            row.setdefault("error", error)
    for row in rows:
        row["experiment"] = run_id
    return rows


def _live_status(row: Row) -> str:
    if row.get("eval_status") == "completed":
        return "done"
    if row.get("train_status") == "failed" or row.get("eval_status") == "failed":
        return "failed"
    if row.get("eval_status") == "running":
        return "evaluating"
    if row.get("train_status") in ("running", "completed"):
        return "training"
    return "pending"


async def _child(client: Client, workflow_id: str, prefix: str) -> Row:
    """``<prefix>_status``, ``<prefix>_s`` (duration) and, for a child still training, its step/loss;
    for a finished child its metrics; a failed one its error."""
    from temporal_ml.cli_common import describe_run
    from temporal_ml.errors import NotFoundError
    from temporal_ml.types import EvalResult, TrainResult

    try:
        info, _ = await describe_run(client, workflow_id)
    except NotFoundError:
        return {}
    row: Row = {f"{prefix}_status": info.status, f"{prefix}_s": info.duration_seconds}
    result_type = TrainResult if prefix == "train" else EvalResult
    if info.status == "completed":
        result, _ = await _result_or_error(client, workflow_id, result_type)
        if isinstance(result, TrainResult):
            row.update({"step": result.steps, "resumes": result.resumes, "snapshot_id": result.snapshot.id,
                        "checkpoint_sha256": result.checkpoint.model_sha256,
                        **_prefixed("train", result.metrics)})
        elif isinstance(result, EvalResult):
            row.update(_prefixed("eval", result.metrics))
    elif info.status == "failed":
        row["error"] = (await _result_or_error(client, workflow_id, result_type))[1]
    elif info.running and prefix == "train":
        progress = await _progress(client, workflow_id)
        if progress is not None:
            row.update({"step": progress.step, "train.loss": progress.loss})
    elif info.running and prefix == "eval":
        rows = await eval_progress(client, workflow_id)
        if rows is not None:
            row["eval_rows"] = rows.line()
    return row


# -- sweeps (SweepWorkflow: kind "sweep"; LadderSweepWorkflow: kind "ladder") -----------------------

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
    from temporal_ml.sweep_types import PAGE_ROWS, LadderResult, SweepResult, SweepStatus, TrialRow

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

    from temporal_ml.cli_errors import one_line

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
    if result is not None:
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


#: Columns every sweep row has, running or finished (empty until known): lineage and workflow ids
#: come with a trial's result, the rank with the sweep's.
_SWEEP_COLUMNS = ("rank", "budget", "eval_rows", "train_workflow_id", "eval_workflow_id", "seed",
                  "config_hash", "snapshot_id", "library_version")


def _same_columns(rows: list[Row], fixed: Sequence[str]) -> list[Row]:
    """Give every row the same keys in one order: ``fixed`` and every key any row has (a value a
    row lacks is ``None``), so a run's columns do not change while it runs or when it finishes.
    Order: name, status, value, the params, progress, the ``eval.*`` metrics, then the rest."""
    keys = {k for row in rows for k in row} | set(fixed)
    first = ["name", "index", "status", "value"]

    def place(key: str) -> tuple[int, int, str]:
        if key in first:
            return (0, first.index(key), "")
        if key.startswith("params."):
            return (1, 0, key)
        if key in ("step", "max_steps", "budget", "train.loss"):
            return (2, ("step", "max_steps", "budget", "train.loss").index(key), "")
        return (3, 0, key) if key.startswith("eval.") else (4, 0, key)

    order = sorted(keys, key=place)
    return [{k: row.get(k) for k in order} for row in rows]
