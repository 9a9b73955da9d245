"""What a coordinator takes, carries through continue-as-new and answers: its input, its carried
state and status, its children's ids and its results table."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml._names import NAME_PATTERN, check_name
    from temporal_ml.activities.sweep import read_sweep_table
    from temporal_ml.errors import INFRASTRUCTURE_ERRORS
    from temporal_ml.types import (
        BoundaryModel,
        DatasetSource,
        ExperimentResult,
        ExperimentSpec,
        SnapshotRef,
    )


__all__ = ["CoordinatorInput", "CoordinatorCarry", "CoordinatorStatus", "read_coordinator_table", "child_id",
           "check_child_ids"]


class CoordinatorCarry(BaseModel):
    """What a coordinator hands to the run it continues as (compact: names and scores, plus at most
    ``max_inline_results`` results not yet written to the table)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    finished: dict[str, Literal["done", "failed"]] = {}
    scores: dict[str, float] = {}  # leaderboard metric of every finished experiment that has it
    unwritten: list[ExperimentResult] = []
    parts: int = 0  # table parts written so far
    runs: int = 1
    #: no experiment starts until ``resume`` (an infrastructure error paused it: ``pause_reason``)
    paused: bool = False
    pause_reason: str | None = None
    #: a finished coordinator started again under its own id to re-run failed experiments
    reopened: bool = False
    #: experiments whose children ran on when the run before continued as new (no drain): the
    #: next run waits for their training (``train``) or evaluation (``eval``)
    running: dict[str, Literal["train", "eval"]] = {}


class CoordinatorStatus(BaseModel):
    """Answer of the ``coordinator_status`` query (and of the ``pause``/``resume``/``retry_failed``
    updates): the phase, why it is paused, and how many experiments are in each state."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    phase: Literal["starting", "running", "paused", "draining", "done"]
    pause_reason: str | None = None
    counts: dict[str, int] = {}


class CoordinatorInput(BoundaryModel):
    """Input of a coordinator.

    Attributes:
        experiments: the configs to run (unique names).
        dataset / snapshot: the data every experiment uses (exactly one; a dataset is snapshotted once).
        run_id: the canonical run id the child ids derive from (default: the workflow id).
        max_concurrency: experiments in flight at once (enforced by the workflow).
        eval_split: split of the snapshot to evaluate on.
        train_task_queue / eval_task_queue: activity queues of training and evaluation workers
            (default: the coordinator's own queue).
        leaderboard_metric / leaderboard_mode: rank by this evaluation metric, ``max`` or ``min``.
        heartbeat_timeout_seconds: passed to each training and evaluation (a silent worker is dead);
            also the heartbeat timeout of the coordinator's results-table writes.
        max_attempts, progress_every_seconds: passed to each training.
        table_root: a directory or fsspec URL for the results table, required when there are more
            than ``max_inline_results`` experiments (their results would not fit in one payload:
            Temporal's limit is 2 MB, an experiment's result about 2 KB). The table is written in
            parts of ``max_inline_results`` rows under ``<table_root>/<run_id>``, by the worker that
            runs the coordinator (register ``SweepActivities`` there: the orchestration role does).
        max_inline_results: at most this many results are returned inline or carried across a
            continue-as-new.
        infrastructure_errors: error types (an ``ApplicationError``'s type: the exception's class
            name) that mean the infrastructure failed, not the experiment: ``StorageError`` (the store
            is full or refuses writes), ``StoreUnreachableError`` (it does not answer, once the
            retries are spent) and ``NoWorkerError``. Such an experiment pauses the
            coordinator and runs again from its last checkpoint on ``resume``. Add your own types.
        no_worker_timeout_seconds: how long an experiment's training or evaluation may wait for a
            worker on its task queue before the coordinator pauses (``None``: wait forever).
        carried: state handed over by continue-as-new (set by the workflow itself).
    """

    experiments: list[ExperimentSpec] = Field(min_length=1)
    dataset: DatasetSource | None = None
    snapshot: SnapshotRef | None = None
    run_id: str | None = Field(default=None, pattern=NAME_PATTERN.pattern)
    max_concurrency: int = Field(default=2, ge=1)
    eval_split: str = "dev"
    train_task_queue: str | None = None
    eval_task_queue: str | None = None
    leaderboard_metric: str = "accuracy"
    leaderboard_mode: Literal["max", "min"] = "max"
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=20, ge=0)
    progress_every_seconds: float = Field(default=10.0, gt=0)
    table_root: str | None = None
    max_inline_results: int = Field(default=200, ge=1, le=500)
    infrastructure_errors: list[str] = Field(default_factory=lambda: list(INFRASTRUCTURE_ERRORS))
    no_worker_timeout_seconds: float | None = Field(default=600.0, gt=0)
    carried: CoordinatorCarry | None = None

    @model_validator(mode="after")
    def _check(self) -> CoordinatorInput:
        if (self.dataset is None) == (self.snapshot is None):
            raise ValueError("set exactly one of dataset or snapshot")
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment names must be unique, got {names}")
        if len(names) > self.max_inline_results and self.table_root is None:
            raise ValueError(
                f"{len(names)} experiments are more than max_inline_results={self.max_inline_results} "
                "results a workflow can return inline: set table_root (a directory or fsspec URL) "
                "for the results table")
        if self.run_id is not None:
            check_child_ids(self.run_id, names)
        return self


def read_coordinator_table(uri: str, storage_options: dict[str, Any] | None = None) -> list[ExperimentResult]:
    """Every experiment result of a coordinator whose results went to a table
    (``CoordinatorResult.table_uri``), in input order.

    Example::

        result = await handle.result()
        experiments = result.experiments or read_coordinator_table(result.table_uri)
    """
    return [ExperimentResult.model_validate(row["result"]) for row in read_sweep_table(uri, storage_options)]


def child_id(run_id: str, name: str, kind: str) -> str:
    """The workflow id (and run id) of an experiment's ``kind`` (``train``/``eval``) child."""
    return f"{run_id}--{name}--{kind}"


def check_child_ids(run_id: str, names: list[str]) -> None:
    """Raise ``ConfigError`` (a ``ValueError``) unless ``run_id`` and every derived child id are valid
    names (at most 200 characters: a child's id is its training run id, a storage path component)."""
    check_name(run_id, "run id")
    for name in names:
        for kind in ("train", "eval"):
            derived = child_id(run_id, name, kind)
            if len(derived) > 200:
                raise ValueError(
                    f"the child id {derived[:40]}... of experiment {name!r} would be {len(derived)} "
                    "characters (at most 200): use a shorter run id or experiment name"
                )
