"""What runs report and return: progress, training and evaluation results, experiments' results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from temporal_ml.types._base import _Frozen
from temporal_ml.types._config import TrainConfig
from temporal_ml.types._refs import CheckpointRef, SnapshotRef


class RowProgress(BaseModel):
    """Rows done of ``total`` and the rate since the work started (what an evaluation heartbeats)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    rows_done: int
    rows_total: int
    rows_per_second: float | None = None

    def line(self) -> str:
        """``3,200/7,600 rows (410 rows/s)``."""
        rate = f" ({self.rows_per_second:,.0f} rows/s)" if self.rows_per_second else ""
        return f"{self.rows_done:,}/{self.rows_total:,} rows{rate}"

    @classmethod
    def of_details(cls, details: Any) -> RowProgress | None:
        """The progress in an activity's heartbeat details, if any."""
        for item in details or ():
            if isinstance(item, dict) and "rows_done" in item and "rows_total" in item:
                try:
                    return cls.model_validate(item)
                except ValueError:
                    return None
        return None


class TrainProgress(BaseModel):
    """Live progress of a run, as reported by the training activity and answered by queries."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    state: Literal[
        "pending", "snapshotting", "training", "pausing", "paused", "stopping", "done", "failed"
    ] = "pending"
    run_id: str | None = None
    step: int = 0
    max_steps: int = 0
    epoch: int = 0
    loss: float | None = None
    samples_per_second: float | None = None
    latest_checkpoint: CheckpointRef | None = None
    resumes: int = 0
    pauses: int = 0
    #: rows done by an evaluation inside the training (``TrainConfig.eval_split``), while it runs
    eval_rows: RowProgress | None = None


class TrainResult(_Frozen):
    """The typed result of a training workflow.

    Attributes:
        run_id: the run.
        snapshot: the dataset snapshot it trained on.
        checkpoint: the final checkpoint (its ``model_sha256`` identifies the weights bitwise).
        steps: optimizer steps completed.
        metrics: final metrics (``loss`` and, with ``eval_split``, evaluation metrics).
        resumes: how many times the training recovered from a checkpoint: a lost worker or a failed
            attempt retried, a rerun of its run id, a promotion to a higher rung (a new training of
            the same run), including two starts from the same checkpoint when the first was killed
            before its next save (kept in the run's ``resumes.json`` beside its checkpoints). Going
            on after a pause or a continue-as-new is no resume.
        pauses: how many times it was paused (and resumed).
        stopped_early: ``True`` if the run was stopped before ``max_steps``.
        config_hash: sha256 of the canonical config (its trajectory fields, see ``TrainConfig.config_hash``).
    """

    run_id: str
    snapshot: SnapshotRef
    checkpoint: CheckpointRef
    steps: int
    metrics: dict[str, float] = Field(default_factory=dict)
    resumes: int = 0
    pauses: int = 0
    stopped_early: bool = False
    config_hash: str = ""


class PredictionResult(_Frozen):
    """Predictions of one checkpoint for a batch of inputs."""

    checkpoint: CheckpointRef
    labels: list[Any]
    confidences: list[float]


class EvalResult(_Frozen):
    """Evaluation of one checkpoint on one split of the snapshot it was trained on.

    Classification fills ``accuracy``, ``macro_f1`` and ``loss``; regression ``mse``, ``rmse`` and
    ``loss``. ``metrics`` holds everything the trainable reported.
    """

    checkpoint: CheckpointRef
    snapshot: SnapshotRef
    split: str
    examples: int
    loss: float | None = None
    accuracy: float | None = None
    macro_f1: float | None = None
    mse: float | None = None
    rmse: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class Lineage(_Frozen):
    """Everything needed to reproduce (and recognise) one experiment's result."""

    config: TrainConfig
    config_hash: str
    seed: int
    snapshot_id: str | None = None
    checkpoint_sha256: str | None = None
    library_version: str


class ExperimentSpec(_Frozen):
    """One experiment of a coordinator: a name (part of its workflow ids) and a training config."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,99}$")
    config: TrainConfig


class ExperimentStatus(BaseModel):
    """Live status of one experiment, answered by the coordinator's ``status`` query."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    name: str
    state: Literal["pending", "training", "evaluating", "done", "failed"] = "pending"
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    latest_checkpoint: CheckpointRef | None = None
    error: str | None = None


class ExperimentResult(_Frozen):
    """The outcome of one experiment: its training and evaluation results, or why it failed."""

    name: str
    status: Literal["done", "failed"]
    train_workflow_id: str
    eval_workflow_id: str
    train: TrainResult | None = None
    eval: EvalResult | None = None
    error: str | None = None
    lineage: Lineage


class LeaderboardEntry(_Frozen):
    """One row of a leaderboard: its rank, the trial or experiment, the metric's value and the
    training steps it was reached at (``budget``: a ladder ranks higher rungs first)."""

    rank: int
    name: str
    metric: str
    value: float
    budget: int | None = None


class CoordinatorResult(_Frozen):
    """Results of every experiment (in input order) and the leaderboard of the successful ones."""

    run_id: str
    snapshot: SnapshotRef | None = None
    experiments: list[ExperimentResult]
    leaderboard: list[LeaderboardEntry]
    #: Where every experiment's result is, when there were more than fit inline
    #: (``CoordinatorInput.max_inline_results``): then ``experiments`` is empty and
    #: :func:`temporal_ml.workflows.coordinator.read_coordinator_table` reads them, in input order.
    table_uri: str | None = None
    results_omitted: int = 0
    #: Workflow runs the coordinator took (it continues as new when its history grows long).
    runs: int = 1
