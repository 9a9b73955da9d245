"""Results of runs as tables: ``temporal_ml.results(client, id)`` -> a pandas ``DataFrame``.

Like Optuna's ``trials_dataframe()`` and Ray Tune's ``ResultGrid.get_dataframe()``: one row per
experiment (or trial) of a coordinator (or sweep), one row per run for a training or evaluation.
Columns: ``name``, ``status``, ``step``/``max_steps``, ``params.<hparam>`` for every hyperparameter
(``TrainConfig.hparams``; a sweep's space key ``hparams.<name>`` is the column ``params.<name>`` too, see
:func:`param_column`) and ``TrainConfig`` fields under their own names (``seed``, ``batch_size``), metrics (``train.<m>`` and ``eval.<m>`` for experiments, ``metrics.<m>`` for a
training), durations in seconds, lineage (``config_hash``, ``snapshot_id``, ``checkpoint_sha256``,
``library_version``), the workflow ids and ``error``. A multi-objective sweep's rows add each
objective's value (``value.<objective>``, in the order of ``SweepInput.objectives``) and ``pareto``
(the trial's front in non-dominated sorting over every done trial: 1 is the Pareto front); its
``rank`` orders by front, then crowding distance, and its ``value`` is empty.

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
import sys
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from temporalio.client import Client

    from temporal_ml.runs import RunInfo

__all__ = ["results", "result_rows", "register_rows", "learning_curves", "require_pandas", "param_column",
           "TABLE_COLUMNS"]

#: The columns a table of results shows when present (``temporal-ml results``, ``report``): the
#: other formats carry every column.
TABLE_COLUMNS = ["name", "status", "rank", "pareto", "value", "step", "max_steps", "params.lr", "seed", "train.loss",
                 "metrics.loss", "eval.accuracy", "eval.macro_f1", "eval.loss", "train_s", "eval_s",
                 "duration_s", "error"]

Row = dict[str, Any]
RowBuilder = Callable[["Client", "RunInfo"], Awaitable[list[Row]]]

_BUILDERS: dict[str, RowBuilder] = {}
_QUERY_TIMEOUT = timedelta(seconds=5)
_PARALLEL_EXPERIMENTS = 8  # experiments whose children are described at once


def register_rows(kind: str) -> Callable[[RowBuilder], RowBuilder]:
    """Register the row builder of a run kind (a ``TmlKind`` value), e.g. ``@register_rows("sweep")``.

    The builder gets the client and the run's :class:`~temporal_ml.runs.RunInfo` and returns
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
    from temporal_ml.runs import describe_run

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

    from temporal_ml.failures import one_line

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
    from temporal_ml.errors import NotFoundError
    from temporal_ml.runs import describe_run
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


# the sweep's and the ladder's rows (registered by the module)
from temporal_ml import sweep_results  # noqa: E402,F401


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`results`: ``temporal_ml.results(client, id)`` calls the
    function while ``import temporal_ml.results`` still gives the module."""

    def __call__(self, client: Client, workflow_id: str) -> Any:
        return results(client, workflow_id)


sys.modules[__name__].__class__ = _CallableModule
