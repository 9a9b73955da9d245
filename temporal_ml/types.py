"""Typed values that cross Temporal boundaries: references to stored data and results.

These are small pydantic models (paths and digests, never tensors or datasets), so workflow payloads
stay far below Temporal's limits.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ModelWrapValidatorHandler,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from temporal_ml.errors import ConfigError

__all__ = [
    "SnapshotRef",
    "CheckpointRef",
    "DatasetSource",
    "TrainConfig",
    "RowProgress",
    "TrainProgress",
    "TrainResult",
    "PredictionResult",
    "EvalResult",
    "Lineage",
    "ExperimentSpec",
    "ExperimentStatus",
    "ExperimentResult",
    "LeaderboardEntry",
    "CoordinatorResult",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")


class BoundaryModel(BaseModel):
    """Base of workflow input models: input that reaches a workflow invalid fails it at once.

    Outside workflows these models validate like any pydantic model (``ValidationError``). When one
    is validated inside a workflow (decoding a start request sent as raw JSON, by another SDK or by
    ``temporal workflow start``; or built by workflow code), a validation error becomes a
    non-retryable ``ApplicationError`` of type ``ValidationError`` with a one-line message, which
    fails the workflow instead of failing its workflow task forever.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")

    @model_validator(mode="wrap")
    @classmethod
    def _fail_workflow_when_invalid(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            if not _in_workflow():
                raise
            from temporalio.exceptions import ApplicationError

            raise ApplicationError(
                f"invalid {cls.__name__}: {one_line(exc)}", type="ValidationError", non_retryable=True
            ) from None


def one_line(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic validation error as one short line: ``loc: message; ...``."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "input"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _in_workflow() -> bool:
    """Whether this runs in workflow code (including payload decoding in the workflow sandbox)."""
    from temporalio import workflow

    return workflow.in_workflow() or workflow.unsafe.in_sandbox()


class SnapshotRef(_Frozen):
    """A committed, content-addressed dataset snapshot.

    Attributes:
        id: sha256 (hex) over the canonical serialization of every split, column, the schema, the row
            order and the source identity. Equal ids mean equal content.
        root: URL of the snapshot store that holds it (any fsspec URL).
        splits: number of rows of each split.
        source: identity of where the data came from (name, config, revision or file digests).
    """

    id: str = Field(pattern=r"^[0-9a-f]{64}$")
    root: str
    splits: dict[str, int]
    source: dict[str, str] = Field(default_factory=dict)

    @property
    def short_id(self) -> str:
        """The first 12 hex digits of the id, for display."""
        return self.id[:12]


class CheckpointRef(_Frozen):
    """A committed checkpoint of one training run.

    Attributes:
        run_id: the run it belongs to.
        step: global optimizer step at which it was taken.
        uri: URL of the checkpoint directory (``<root>/<run_id>/step-<zero-padded>``).
        model_sha256: sha256 of ``model.safetensors``; equal digests mean bitwise-equal weights.
        metrics: metrics recorded with it (e.g. ``loss``), used by best-k retention.
    """

    run_id: str
    step: int = Field(ge=0)
    uri: str
    model_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    metrics: dict[str, float] = Field(default_factory=dict)


class DatasetSource(_Frozen):
    """Where a run's data comes from; the snapshot activity turns it into a :class:`SnapshotRef`.

    Exactly one of ``files``, ``hub`` or ``generator`` is set.

    Attributes:
        files: split name -> local file (CSV/TSV/JSON lines/Parquet) readable by the snapshot worker.
        hub: a Hugging Face dataset name (with optional ``hub_config`` and ``revision``).
        generator: the name of a data generator registered on the worker (e.g. synthetic data),
            called with ``params``; generators must be deterministic in their params.
    """

    files: dict[str, str] | None = None
    hub: str | None = None
    hub_config: str | None = None
    revision: str | None = None
    generator: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSource:
        chosen = [k for k in ("files", "hub", "generator") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError(f"set exactly one of files, hub, generator (got {chosen or 'none'})")
        return self


class TrainConfig(_Frozen):
    """One training run's configuration. Validated before the workflow starts.

    Attributes:
        trainable: name of the :class:`~temporal_ml.training.Trainable` registered on the worker.
        hparams: hyperparameters passed to the trainable (JSON values).
        seed: seeds every RNG and the data order.
        batch_size: examples per optimizer step.
        max_steps: optimizer steps to train (the budget the LR schedule is defined over, unless
            ``schedule_steps`` is set).
        schedule_steps: the step budget the LR schedule (``TrainContext.total_steps``) is defined
            over, when it differs from ``max_steps``: a run trained to ``max_steps`` and later
            continued to ``schedule_steps`` (an ASHA promotion) follows the trajectory of a run
            trained straight to ``schedule_steps``. With it set, ``max_steps`` is only where this
            call stops and is left out of ``config_hash`` (``None``: the schedule spans ``max_steps``).
        checkpoint_every_steps: checkpoint cadence in steps (``None``: by time only).
        checkpoint_every_seconds: checkpoint cadence in seconds (``None``: by steps only).
        async_checkpoints: write checkpoints in a background thread (the step waits only for the copy).
        keep_last: committed checkpoints to keep (the newest ones).
        log_every_steps: read the loss (a device sync) and log metrics every this many steps.
        eval_split: a split of the snapshot to evaluate on at the end of training (optional).
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        deterministic: ask torch for deterministic algorithms (bitwise-reproducible runs).
        metric_sinks: where the run's metrics go besides its JSONL log, like the HF Trainer's
            ``report_to``: ``"tensorboard"``, ``"mlflow"``, ``"wandb"`` (optional extras), a name registered with
            :func:`temporal_ml.metric_sinks.register_metric_sink` or a ``"module:factory"`` reference
            (see :mod:`temporal_ml.metric_sinks`). Checked when the config is built in Python; an
            unknown name fails there, before anything starts. Operational: left out of both hashes and,
            when empty, of the serialized config (payloads and hashes stay those of earlier versions).
        world_size: data-parallel ranks (processes) to train with on one worker (per node, for a
            gang over several nodes, see ``GangSupervisor``). ``1``: the training
            activity runs the loop itself; more: it supervises a gang of that many ranks on
            ``torch.distributed`` (DDP, elastic launcher). ``batch_size`` stays the *global* batch,
            split across the ranks, and the sample order does not depend on the world size.
        dist_backend: ``"auto"`` (``nccl`` on CUDA, else ``gloo``), ``"gloo"`` or ``"nccl"``.
        threads_per_rank: torch threads of each rank (``None``: the worker's cores / world size).
        stop_on_nonfinite_loss: stop at once when the training loss becomes NaN or infinite and fail
            the run with ``diverged: loss nan at step N`` (:class:`~temporal_ml.errors.DivergedError`,
            not retried; no checkpoint of the diverged weights is written). On CPU the loss of every
            step is checked (no device sync to pay); on an accelerator at each ``log_every_steps``
            (the loop's one device sync), so N is the step where it was seen. Default ``True``.
            Operational: left out of the hashes and, when ``True``, of the serialized config.
    """

    trainable: str = Field(min_length=1)
    hparams: dict[str, JsonValue] = Field(default_factory=dict)
    seed: int = 0
    batch_size: int = Field(default=32, ge=1)
    max_steps: int = Field(ge=1)
    schedule_steps: int | None = Field(default=None, ge=1)
    checkpoint_every_steps: int | None = Field(default=100, ge=1)
    checkpoint_every_seconds: float | None = Field(default=None, gt=0)
    async_checkpoints: bool = True
    keep_last: int = Field(default=2, ge=1)
    log_every_steps: int = Field(default=20, ge=1)
    eval_split: str | None = None
    device: str = "auto"
    deterministic: bool = True
    metric_sinks: list[str] = Field(default_factory=list)

    @field_validator("metric_sinks")
    @classmethod
    def _known_sinks(cls, names: list[str], info: ValidationInfo) -> list[str]:
        from temporalio import workflow

        from temporal_ml.metric_sinks import check_metric_sinks

        # Built in Python here: names must be known to this process. Decoded from a payload, or inside
        # a workflow (which must never fail on a name only the training worker registers): syntax
        # only; the training worker resolves them and fails the run clearly if it cannot.
        strict = info.mode == "python" and not workflow.in_workflow()
        try:
            return check_metric_sinks(names, registered=strict)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @model_serializer(mode="wrap")
    def _drop_later_defaults(self, handler: SerializerFunctionWrapHandler,
                          info: SerializationInfo) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("metric_sinks", True):
            del data["metric_sinks"]
        if data.get("stop_on_nonfinite_loss") is True:  # the default: payloads stay those of 0.x
            del data["stop_on_nonfinite_loss"]
        return data
    world_size: int = Field(default=1, ge=1, le=1024)
    dist_backend: Literal["auto", "gloo", "nccl"] = "auto"
    threads_per_rank: int | None = Field(default=None, ge=1)
    stop_on_nonfinite_loss: bool = True

    @model_validator(mode="after")
    def _has_cadence(self) -> TrainConfig:
        if self.checkpoint_every_steps is None and self.checkpoint_every_seconds is None:
            raise ValueError("set checkpoint_every_steps and/or checkpoint_every_seconds")
        if self.schedule_steps is not None and self.max_steps > self.schedule_steps:
            raise ValueError(f"max_steps ({self.max_steps}) exceeds schedule_steps ({self.schedule_steps})")
        return self

    @property
    def total_steps(self) -> int:
        """The step budget the LR schedule is defined over (``schedule_steps`` or ``max_steps``)."""
        return self.schedule_steps if self.schedule_steps is not None else self.max_steps

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the fields that change the training trajectory.

        Used for lineage and to guard a resume against a changed config. Fields that only change how
        a run is operated, not the weights it reaches (checkpoint cadence, retention, log cadence,
        asynchronous saving, the device and the final evaluation split), are left out, so they may be
        changed when a run is resumed.
        """
        exclude = set(OPERATIONAL_FIELDS)
        if self.schedule_steps is not None:
            exclude.add("max_steps")  # where a call stops; the trajectory is fixed by schedule_steps
        return _sha256_json(self._hashed(self.model_dump(mode="json", exclude=exclude)))

    def full_hash(self) -> str:
        """sha256 of the canonical JSON of every field (what ``config_hash`` covered in 0.1.0: checkpoints of that version record it)."""
        return _sha256_json(self._hashed(self.model_dump(mode="json")))

    @staticmethod
    def _hashed(data: dict[str, Any]) -> dict[str, Any]:
        if data.get("schedule_steps", 0) is None:  # unset: hashes stay those of configs before the field
            del data["schedule_steps"]
        data.pop("metric_sinks", None)  # where metrics go never changes a trajectory
        for key, default in _LATER_DEFAULTS.items():  # likewise for fields added later
            if key in data and data[key] == default:
                del data[key]
        return data


#: Fields added after 0.1.0, left out of the hashes while they hold their default (so the hashes of
#: existing configs, recorded in their checkpoints, do not change).
_LATER_DEFAULTS: dict[str, Any] = {"world_size": 1, "dist_backend": "auto", "threads_per_rank": None}


#: ``TrainConfig`` fields that do not change a run's trajectory (left out of ``config_hash``).
OPERATIONAL_FIELDS = (
    "checkpoint_every_steps", "checkpoint_every_seconds", "async_checkpoints", "keep_last",
    "log_every_steps", "device", "eval_split", "metric_sinks",
    # how many ranks share the work: the sample order and the global batch do not depend on it
    # (the weights then agree up to the order of floating-point reductions; see docs/scaling.md)
    "world_size", "dist_backend", "threads_per_rank",
    # what happens once the loss is not finite: the trajectory up to there is the same
    "stop_on_nonfinite_loss",
)


def _sha256_json(value: Any) -> str:
    import hashlib
    import json

    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
