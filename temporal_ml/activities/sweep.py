"""Activities of sweeps: stop a trial's training run, delete the checkpoints of a dead trial.

Torch-free; they run on the orchestration workers beside the sweep workflows (register
``SweepActivities().activities()`` there). Workflow code cannot send an Update to another
workflow, so stopping one trial is an activity that sends the training workflow its ``stop_early``
update through ``activity.client()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from temporal_ml.activities._heartbeat import heartbeat_while, heartbeating
from temporal_ml.activities.plan import PLAN, PlanRequest, PlanResult, plan_next
from temporal_ml.search import AnySearcher, Direction, SearchExhausted, SearchSpace, TrialRecord
from temporal_ml.types import CheckpointRef, TrainConfig, TrainProgress

__all__ = [
    "SweepActivities",
    "STOP_RUN",
    "DELETE_RUN_CHECKPOINTS",
    "COPY_RUN_CHECKPOINT",
    "CopyCheckpointRequest",
    "StopRunRequest",
    "DeleteCheckpointsRequest",
    "DeleteCheckpointsResult",
    "WRITE_TABLE_PART",
    "TablePartRequest",
    "read_sweep_table",
    "SUGGEST",
    "SuggestRequest",
    "SuggestResult",
    "WRITE_SWEEP_PART",
    "SweepPartRequest",
    "SweepPartWritten",
    "read_table_part",
]

STOP_RUN = "temporal_ml.sweep.stop_run"
WRITE_TABLE_PART = "temporal_ml.sweep.write_table_part"
DELETE_RUN_CHECKPOINTS = "temporal_ml.sweep.delete_run_checkpoints"
#: Population-based training's exploit: copy a member's checkpoint into another member's new run.
COPY_RUN_CHECKPOINT = "temporal_ml.sweep.copy_run_checkpoint"
#: The activity that computes a searcher's suggestion once (on the sweep's task queue); its result
#: is recorded in the sweep's history, so a replay (or a worker with other searcher code) reuses it.
SUGGEST = "temporal_ml.sweep.suggest"
#: Write one part of a sweep's results table and answer its digest (the sweep records it).
WRITE_SWEEP_PART = "temporal_ml.sweep.write_part"
#: Wait for a child a sweep started in an earlier run (it continued as new while the child ran).
AWAIT_CHILD = "temporal_ml.sweep.await_child"
#: ``AwaitedChild.error_type`` of a child that does not exist (the run before ended first): start it.
CHILD_NOT_STARTED = "ChildNotStarted"


class AwaitChildRequest(BaseModel):
    """Wait for workflow ``workflow_id`` (a trial's training or evaluation) to close."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    workflow_id: str
    heartbeat_seconds: float = 10.0


class AwaitedChild(BaseModel):
    """How a child closed: its result as JSON, or its failure in one line and the innermost cause's
    error type (``TrialOutcome.error`` / ``error_type``)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    result: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None


class StopRunRequest(BaseModel):
    """Stop the training workflow ``workflow_id`` early (it ends at a checkpoint of its current step)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    workflow_id: str


class DeleteCheckpointsRequest(BaseModel):
    """Delete (or with ``dry_run`` only measure) the checkpoint directory of ``checkpoint``'s run."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    checkpoint: CheckpointRef
    dry_run: bool = False


class CopyCheckpointRequest(BaseModel):
    """Copy checkpoint ``source`` into run ``run_id`` (beside the source's run, at the same step),
    for ``config`` (the run's config: the copy carries its hash) on snapshot ``snapshot_id``."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    source: CheckpointRef
    run_id: str
    config: TrainConfig
    snapshot_id: str | None = None


class DeleteCheckpointsResult(BaseModel):
    """What was deleted: the directory and the bytes it held (0 when it was already gone)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    directory: str
    bytes: int


class TablePartRequest(BaseModel):
    """Write one part (``part-<index>.json``, a JSON list of trial rows) of a sweep's table under ``uri``."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    uri: str
    index: int
    rows: list[dict[str, Any]]


class SweepPartRequest(BaseModel):
    """Write part ``index`` of sweep ``run_id``'s results table: under ``<table_root>/<run_id>``
    (``table_root``: the sweep's, else the worker's ``SweepActivities(table_root=...)``)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    run_id: str
    table_root: str | None
    index: int
    rows: list[dict[str, Any]]


class SweepPartWritten(BaseModel):
    """A written part: the table's directory, the part's sha256 and its number of rows."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    uri: str
    sha256: str
    rows: int


#: Points one ``suggest`` call returns at most.
MAX_SUGGESTIONS = 64


class SuggestRequest(BaseModel):
    """Ask ``searcher`` for trial ``index``'s point of ``space`` given ``history`` (and the trials
    already written to the results table ``table_uri``: parts verified against ``table_parts``).

    ``count`` > 1 asks for the points of trials ``index`` .. ``index + count - 1`` at once, each
    computed with the ones before it as pending (what asking one at a time gives when no result
    arrives in between)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    searcher: AnySearcher
    space: SearchSpace
    history: list[TrialRecord]
    seed: int
    index: int
    #: one direction, or (a multi-objective sweep) one per objective
    direction: Direction | tuple[Direction, ...]
    table_uri: str | None = None
    table_parts: list[str] = []
    count: int = Field(default=1, ge=1, le=MAX_SUGGESTIONS)



class SuggestResult(BaseModel):
    """The suggested point, or (``params`` ``None``) why the searcher has none: ``exhausted``;
    ``more``: the points of the next trials when several were asked for (fewer if it ran out)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    params: dict[str, Any] | None = None
    exhausted: str | None = None
    more: list[dict[str, Any]] = []


def suggest_point(req: SuggestRequest, storage_options: dict[str, Any] | None = None) -> SuggestResult:
    """The searcher's suggestion (pure: equal requests give equal results)."""
    history = req.history
    if req.table_parts and req.searcher.uses_history:
        assert req.table_uri is not None
        written = [record for k, digest in enumerate(req.table_parts)
                   for record in _part_records(req.table_uri, k, digest, storage_options)]
        history = sorted([*written, *history], key=lambda r: r.index)
    points: list[dict[str, Any]] = []
    for k in range(req.count):
        try:
            point = dict(req.searcher.suggest(req.space, history, seed=req.seed, index=req.index + k,
                                              direction=req.direction))  # type: ignore[arg-type]
        except SearchExhausted as exc:
            if not points:
                return SuggestResult(exhausted=str(exc) or "the searcher has no new points")
            break
        points.append(point)
        if k + 1 < req.count and req.searcher.uses_history:  # the next one sees this one as pending
            history = [*history, TrialRecord(index=req.index + k, params=point, state="pending")]
    return SuggestResult(params=points[0], more=points[1:])


_RECORDS: dict[tuple[str, int, str], list[TrialRecord]] = {}  # what the searcher is told, per part


def _part_records(uri: str, index: int, sha256: str,
                  storage_options: dict[str, Any] | None) -> list[TrialRecord]:
    """The searcher's records of a verified part (converted once: a part never changes)."""
    from temporal_ml.sweeps import TrialRow

    key = (uri, index, sha256)
    if key not in _RECORDS:
        if len(_RECORDS) >= _PARTS_MAX:
            _RECORDS.pop(next(iter(_RECORDS)))
        _RECORDS[key] = [TrialRow.model_validate(row).record()
                         for row in read_table_part(uri, index, sha256, storage_options)]
    return _RECORDS[key]


#: Parts whose searcher records a worker keeps in memory (a part never changes once written): a
#: 100,000-trial sweep has 1,000; the oldest are dropped beyond this.
_PARTS_MAX = 2048


def read_table_part(uri: str, index: int, sha256: str,
                    storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of part ``index`` of the table at ``uri``, verified against ``sha256``.

    Raises:
        ApplicationError: the part is missing or its bytes do not match the recorded digest.
    """
    import hashlib
    import json

    import fsspec

    from temporal_ml.converter import decode_nonfinite

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    name = f"{path.rstrip('/')}/part-{index:05d}.json"
    try:
        with fs.open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ApplicationError(f"part {index} of the results table {uri} is missing",
                               type="TableCorrupt", non_retryable=True) from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ApplicationError(f"part {index} of the results table {uri} does not match its recorded "
                               "sha256 (changed or torn)", type="TableCorrupt", non_retryable=True)
    rows: list[dict[str, Any]] = decode_nonfinite(json.loads(data))
    return rows


def read_sweep_table(uri: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every trial row of a sweep table written under ``uri`` (``SweepResult.table_uri``), by index
    (a trial that ran again, e.g. a coordinator's re-run experiment: its latest row).

    Non-finite numbers, stored as ``"NaN"``/``"Infinity"``/``"-Infinity"``
    (:mod:`temporal_ml.converter`), come back as floats."""
    import json

    import fsspec

    from temporal_ml.converter import decode_nonfinite

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    by_index: dict[Any, dict[str, Any]] = {}
    for part in sorted(fs.glob(f"{path.rstrip('/')}/part-*.json")):
        with fs.open(part, "rb") as f:
            for row in decode_nonfinite(json.loads(f.read())):
                by_index[row["index"]] = row  # a later part's row (a re-run) replaces an earlier one
    return sorted(by_index.values(), key=lambda r: r["index"])


class SweepActivities:
    """The sweep activities, bound to the storage options of the checkpoint store.

    Args:
        storage_options: fsspec options for the checkpoint URLs (credentials of an object store).
        table_root: where sweeps that set no ``table_root`` write their results tables
            (``temporal-ml worker``: ``<store>/tables``).
    """

    def __init__(self, storage_options: dict[str, Any] | None = None, table_root: str | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        self.table_root = table_root

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on an orchestration worker."""
        return [self.stop_run, self.delete_run_checkpoints, self.write_table_part, self.suggest,
                self.write_sweep_part, self.await_child, self.plan, self.copy_run_checkpoint]

    @activity.defn(name=PLAN)
    def plan(self, req: PlanRequest) -> PlanResult:
        """The next promotions and new trials of a sweep with a scheduler, and the checkpoints that
        may go (:mod:`temporal_ml.activities.plan`); recorded by the sweep."""
        with heartbeating():
            return plan_next(req, self.storage_options)

    @activity.defn(name=SUGGEST)
    def suggest(self, req: SuggestRequest) -> SuggestResult:
        """One searcher suggestion, computed once and recorded by the sweep (it runs on the sweep's
        task queue)."""
        with heartbeating():
            return suggest_point(req, self.storage_options)

    @activity.defn(name=WRITE_SWEEP_PART)
    def write_sweep_part(self, req: SweepPartRequest) -> SweepPartWritten:
        """Write ``part-<index>.json`` of a sweep's table atomically; answer its sha256.

        Idempotent: a retry writes the same bytes under the same name."""
        import hashlib

        root = req.table_root or self.table_root
        if root is None:
            raise ApplicationError(
                f"sweep {req.run_id} has more finished trials than it keeps inline and nowhere to write "
                "its results table: set SweepInput.table_root, or run the orchestration worker with a "
                "store (temporal-ml worker --store)", type="ConfigError", non_retryable=True)
        uri = f"{root.rstrip('/')}/{req.run_id}"
        with heartbeating():
            data = self._write_part(uri, req.index, req.rows)
        return SweepPartWritten(uri=uri, sha256=hashlib.sha256(data).hexdigest(), rows=len(req.rows))

    @activity.defn(name=STOP_RUN)
    async def stop_run(self, req: StopRunRequest) -> TrainProgress | None:
        """Send ``stop_early`` to a training workflow; ``None`` if it had already finished.

        Idempotent: a retry after the run stopped is refused by the run (it has finished) and
        answered ``None`` as well.
        """
        handle = activity.client().get_workflow_handle(req.workflow_id)
        try:
            return await heartbeat_while(handle.execute_update("stop_early", result_type=TrainProgress))
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if getattr(cause, "type", None) == "RunControlRefused":
                return None
            raise
        except RPCError as err:
            if "already completed" in str(err) or "not found" in str(err).lower():
                return None
            raise

    @activity.defn(name=AWAIT_CHILD)
    async def await_child(self, req: AwaitChildRequest) -> AwaitedChild:
        """Wait (heartbeating) until workflow ``req.workflow_id`` closes, following its
        continue-as-new runs, and answer its result or why it failed. Idempotent: a retry (after
        this worker died) waits again, or reads the closed workflow's outcome at once."""
        import asyncio

        from temporalio.client import WorkflowFailureError
        from temporalio.service import RPCStatusCode

        from temporal_ml.errors import root_message, root_type

        handle = activity.client().get_workflow_handle(req.workflow_id)
        waiting = asyncio.ensure_future(handle.result(follow_runs=True))
        try:
            while True:
                done, _ = await asyncio.wait([waiting], timeout=req.heartbeat_seconds)
                if done:
                    break
                activity.heartbeat()
            try:
                value = waiting.result()
            except WorkflowFailureError as err:
                cause = err.cause
                return AwaitedChild(error=root_message(cause), error_type=root_type(cause))
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                return AwaitedChild(error=f"{req.workflow_id} was never started", error_type=CHILD_NOT_STARTED)
        finally:
            waiting.cancel()
        from pydantic_core import to_jsonable_python

        return AwaitedChild(result=to_jsonable_python(value, inf_nan_mode="strings") if value is not None else None)

    @activity.defn(name=DELETE_RUN_CHECKPOINTS)
    def delete_run_checkpoints(self, req: DeleteCheckpointsRequest) -> DeleteCheckpointsResult:
        """Delete ``<root>/<run_id>/`` of the checkpoint's run (idempotent); ``dry_run``: only measure."""
        import fsspec

        uri = req.checkpoint.uri.rstrip("/")
        directory = uri.rsplit("/", 1)[0]
        if directory.rsplit("/", 1)[-1] != req.checkpoint.run_id:
            raise ApplicationError(f"{uri} is not a checkpoint of run {req.checkpoint.run_id!r}",
                                   type="ConfigError", non_retryable=True)
        fs, path = fsspec.core.url_to_fs(directory, **self.storage_options)
        with heartbeating():
            if not fs.exists(path):
                return DeleteCheckpointsResult(directory=directory, bytes=0)
            size = int(fs.du(path, total=True))
            if not req.dry_run:
                fs.rm(path, recursive=True)
        return DeleteCheckpointsResult(directory=directory, bytes=size)

    @activity.defn(name=COPY_RUN_CHECKPOINT)
    def copy_run_checkpoint(self, req: CopyCheckpointRequest) -> CheckpointRef:
        """Copy ``req.source`` into run ``req.run_id`` beside it, every file verified against the
        source's digests (idempotent: a retry finishes or finds the copy); answers the copy."""
        from temporal_ml.errors import IntegrityError, NotFoundError
        from temporal_ml.storage.checkpoints import copy_checkpoint

        uri = req.source.uri.rstrip("/")
        run_dir = uri.rsplit("/", 1)[0]
        if run_dir.rsplit("/", 1)[-1] != req.source.run_id:
            raise ApplicationError(f"{uri} is not a checkpoint of run {req.source.run_id!r}",
                                   type="ConfigError", non_retryable=True)
        root = run_dir.rsplit("/", 1)[0]
        try:
            with heartbeating():
                return copy_checkpoint(req.source, root=root, run_id=req.run_id, config=req.config,
                                       snapshot_id=req.snapshot_id, storage_options=self.storage_options)
        except (IntegrityError, NotFoundError) as exc:
            raise ApplicationError(f"the exploit cannot copy {uri}: {exc}", type=type(exc).__name__,
                                   non_retryable=True) from None

    @activity.defn(name=WRITE_TABLE_PART)
    def write_table_part(self, req: TablePartRequest) -> str:
        """Write ``part-<index>.json`` atomically (temporary name, then rename); returns its URL.
        Non-finite numbers are written as the strings of :mod:`temporal_ml.converter`."""
        with heartbeating():
            self._write_part(req.uri, req.index, req.rows)
        return f"{req.uri.rstrip('/')}/part-{req.index:05d}.json"

    def _write_part(self, uri: str, index: int, rows: list[dict[str, Any]]) -> bytes:
        """Write ``rows`` as ``<uri>/part-<index>.json`` atomically; returns the bytes written."""
        import fsspec
        from pydantic_core import to_json

        data = to_json(rows, inf_nan_mode="strings")
        fs, path = fsspec.core.url_to_fs(uri, **self.storage_options)
        fs.makedirs(path, exist_ok=True)
        name = f"{path.rstrip('/')}/part-{index:05d}.json"
        tmp = f"{name}.tmp-{activity.info().activity_id}"
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, name)
        return data
