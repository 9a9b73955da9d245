"""A training run's configuration, and what of it decides the trajectory (its hash)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from temporal_ml.errors import ConfigError
from temporal_ml.types._base import _Frozen


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

        from temporal_ml._sink_names import check

        # Built in Python here: names must be known to this process. Decoded from a payload, or inside
        # a workflow (which must never fail on a name only the training worker registers): syntax
        # only; the training worker resolves them and fails the run clearly if it cannot.
        strict = info.mode == "python" and not workflow.in_workflow()
        try:
            return check(names, registered=strict)
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
