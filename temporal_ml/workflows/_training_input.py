"""The input of a training workflow, and what a workflow needs to start its activities: the snapshot
activity, the training activity's retry policy and no-worker timeout, progress reports."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from temporal_ml._names import check_name
    from temporal_ml.activities._fail_fast import NON_RETRYABLE
    from temporal_ml.activities.messages import (
        CREATE_SNAPSHOT,
        REPORT_SIGNAL,
    )
    from temporal_ml.types import (
        BoundaryModel,
        CheckpointRef,
        DatasetSource,
        SnapshotRef,
        TrainConfig,
        TrainProgress,
    )


__all__ = ["TrainingInput", "create_snapshot", "parse_report", "no_worker_timeout", "train_retry_policy"]


class TrainingInput(BoundaryModel):
    """Input of a training workflow.

    Attributes:
        config: the run's configuration.
        dataset: where the data comes from (snapshotted first), or
        snapshot: an existing snapshot to train on (exactly one of the two).
        run_id: the run id (checkpoint directory); defaults to the workflow id.
        task_queue: queue of the training activities (default: the workflow's own queue).
        heartbeat_timeout_seconds: a worker silent this long is considered dead; the attempt is
            retried on another worker from the latest checkpoint.
        max_attempts: attempts of the training activity before the run fails (0: unlimited).
        progress_every_seconds: how often the activity reports progress to the workflow.
        report_to: ids of further workflows (e.g. a coordinator) that receive the progress reports.
        nodes: machines the run's gang spans (each runs ``config.world_size`` ranks). With more than
            one, the workflow starts one training activity per node and restarts them all together
            from the last checkpoint when any fails (see ``docs/scaling.md``); ``max_attempts`` then
            counts gang attempts.
        node_task_queues: the queue of each node's activity (one per node, e.g. one per machine or
            node group); default: every node on ``task_queue`` (workers polling it, one node each).
        rendezvous: ``host:port`` where node 0's worker hosts torch's c10d rendezvous store, or
            ``"auto"``: node 0's activity picks its own endpoint and signals it, and the workflow
            starts the other nodes with it (required with ``nodes > 1``; every node must reach it).
        no_worker_timeout_seconds: a training activity that no worker takes from its queue for
            this long fails the run with a schedule-to-start timeout (sweeps and coordinators pause
            on it: ``NoWorkerError``); ``None``: it waits for a worker forever.
        search_attributes: our search attributes the namespace defines, as a parent workflow found
            them (a sweep's trials): the run tags itself without asking again (``None``: it asks).
        init_from: another run's checkpoint to start from (a warm start: the exploit step of
            population-based training, where a trial continues from a copy of a better trial's
            checkpoint with its own, perturbed hyperparameters). When the run has no committed
            checkpoint yet, the training activity first copies ``init_from`` into the run's own
            checkpoint directory at the same step: the tensor files byte for byte, each verified
            against the source manifest's sha256 while copying (a mismatch fails with
            ``IntegrityError``), ``state.json`` with its ``meta`` re-stamped for this run (run id,
            this config's hash, snapshot id) plus ``meta["init_from"]`` (``run_id``, ``step``, ``uri``,
            ``model_sha256``, ``config_hash`` of the source: its lineage), and a new manifest written
            last, so the copy's ``model_sha256`` is the source's. The run then continues from the copy
            as a planned continue, not a recovery: weights, optimizer moments, LR-scheduler state,
            grad scaler, sampler position and RNGs come from the checkpoint, the optimizer's
            hyperparameters from this run's ``config`` (with an LR scheduler that has ``base_lrs``,
            the current learning rate is scaled by new base / old base, exact for multiplicative
            schedules). The copy is idempotent (a retry after a crash mid-copy finishes it), and a
            run that already has a committed checkpoint at or past ``init_from.step`` (a resumed
            run) ignores ``init_from``. Only training hyperparameters may differ from the source's
            config (learning rate, weight decay, dropout, ...): hyperparameters that change the
            model's shapes, and ``seed``, ``batch_size`` or the data size, fail with one-line errors.
            Not supported with ``nodes > 1``.
        continue_from: this run's own checkpoint the training goes on from, as a sweep's next rung
            does (an ASHA promotion, the next round of population-based training): restoring it is
            planned, not a recovery, so it does not count in ``resumes`` (a retried attempt, after a
            lost worker, still does). ``None``: the training starts, or resumes from what the run's
            store holds.
        carried, carried_paused: state handed over by continue-as-new (set by the workflow itself).
    """

    config: TrainConfig
    dataset: DatasetSource | None = None
    snapshot: SnapshotRef | None = None
    run_id: str | None = None
    task_queue: str | None = None
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=20, ge=0)
    progress_every_seconds: float = Field(default=10.0, gt=0)
    report_to: list[str] = Field(default_factory=list)
    nodes: int = Field(default=1, ge=1, le=1024)
    node_task_queues: list[str] | None = None
    rendezvous: str | None = None
    carried: TrainProgress | None = None
    carried_paused: bool = False
    no_worker_timeout_seconds: float | None = Field(default=None, gt=0)
    search_attributes: list[str] | None = None
    init_from: CheckpointRef | None = Field(default=None, exclude_if=lambda v: v is None)
    continue_from: CheckpointRef | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("run_id")
    @classmethod
    def _safe_run_id(cls, value: str | None) -> str | None:
        # The run id becomes a directory of the checkpoint store: no '/', no '..'.
        return None if value is None else check_name(value, "run id")

    @model_validator(mode="after")
    def _one_data_source(self) -> TrainingInput:
        if (self.dataset is None) == (self.snapshot is None):
            raise ValueError("set exactly one of dataset or snapshot")
        return self

    @model_validator(mode="after")
    def _gang_over_nodes(self) -> TrainingInput:
        if self.init_from is not None and self.nodes > 1:
            raise ValueError("init_from (a warm start) is not supported with nodes > 1")
        if self.node_task_queues is not None and len(self.node_task_queues) != self.nodes:
            raise ValueError(f"node_task_queues names {len(self.node_task_queues)} queues for "
                             f"{self.nodes} nodes (one per node)")
        if self.nodes > 1:
            host, _, port = (self.rendezvous or "").rpartition(":")
            if self.rendezvous != "auto" and (not host or not port.isdigit()):
                raise ValueError(f"a run over {self.nodes} nodes needs rendezvous='host:port' (where "
                                 f"node 0 hosts the c10d store) or 'auto', got {self.rendezvous!r}")
            ranks = self.config.world_size * self.nodes
            if self.config.batch_size < ranks:
                raise ValueError(f"batch_size {self.config.batch_size} (the global batch) is smaller "
                                 f"than the {ranks} ranks")
        return self


async def create_snapshot(source: DatasetSource, task_queue: str | None = None,
                          heartbeat_timeout_seconds: float = 60.0) -> SnapshotRef:
    """Run the snapshot activity from workflow code (idempotent: same content, same id).

    The activity heartbeats while it works, so a worker that dies mid-snapshot is noticed within
    ``heartbeat_timeout_seconds`` and the snapshot retried on another worker.
    """
    return await workflow.execute_activity(
        CREATE_SNAPSHOT, source, result_type=SnapshotRef, task_queue=task_queue,
        start_to_close_timeout=timedelta(hours=2),
        heartbeat_timeout=timedelta(seconds=heartbeat_timeout_seconds),
        retry_policy=RetryPolicy(maximum_attempts=5,
                                 non_retryable_error_types=[e.__name__ for e in NON_RETRYABLE]),
    )


def parse_report(args: tuple[Any, ...]) -> TrainProgress | None:
    """The progress report carried by a ``tml_report`` signal, or ``None`` (logged) if it is malformed.

    The handler takes raw arguments and validates them itself, so a bad signal (sent by hand or by
    another SDK) is dropped instead of failing the workflow task.
    """
    if len(args) == 1:
        try:
            return TrainProgress.model_validate(args[0])
        except ValueError as exc:
            workflow.logger.warning("dropping a malformed %s signal: %s", REPORT_SIGNAL, exc)
            return None
    workflow.logger.warning("dropping a %s signal with %d arguments (expected 1)", REPORT_SIGNAL, len(args))
    return None


def no_worker_timeout(inp: TrainingInput) -> timedelta | None:
    """The schedule-to-start timeout of a run's training activities (``None``: wait forever)."""
    seconds = inp.no_worker_timeout_seconds
    return None if seconds is None else timedelta(seconds=seconds)


def train_retry_policy(max_attempts: int) -> RetryPolicy:
    """The training activity's retry policy: quick first retry, capped backoff, config errors final."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30), maximum_attempts=max_attempts,
        non_retryable_error_types=[e.__name__ for e in NON_RETRYABLE],
    )

