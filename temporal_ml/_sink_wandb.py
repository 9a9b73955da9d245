"""The built-in ``"wandb"`` metric sink: one Weights & Biases run per training run (see
:mod:`temporal_ml.metric_sinks`).

Imports ``wandb`` only when a run uses it; without it,
:class:`~temporal_ml.errors.MissingDependencyError` names the extra (``temporal-ml[wandb]``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from temporal_ml.errors import ConfigError, require

if TYPE_CHECKING:  # pragma: no cover
    from temporal_ml.metric_sinks import SinkContext
    from temporal_ml.types import TrainConfig

__all__ = ["WandbSink", "wandb_run_id"]


def wandb_run_id(run_id: str, config: TrainConfig) -> str:
    """The W&B run id of a training run: the run id made W&B-safe (lower case, ``[a-z0-9_-]``, at most
    47 characters) and 16 hex digits of sha256 over the run id and ``config.config_hash()``, at most 64
    characters in all. The same run (and so a resumed one) always gets the same id; a run id reused
    with another config gets another."""
    digest = hashlib.sha256(f"{run_id}\n{config.config_hash()}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^a-z0-9_-]+", "-", run_id.lower()).strip("-")[:47].rstrip("-")
    return f"{slug}-{digest}" if slug else digest


class WandbSink:
    """One W&B run per training run, with the id :func:`wandb_run_id` and ``resume="allow"``: a resumed
    training call, and an evaluation of one of its checkpoints, log into the same W&B run.

    Every metric is plotted against ``step`` (the optimizer step, logged in each record and declared
    the step metric of all others, as the Hugging Face Trainer's W&B callback does), not against W&B's
    own ``_step``, which only grows: so the steps a resumed run logs again, and an evaluation at an
    earlier checkpoint's step, are kept rather than dropped as out of order.

    Honours W&B's environment (``WANDB_MODE``, ``WANDB_API_KEY``, ``WANDB_ENTITY``, ...); the project
    is ``$WANDB_PROJECT`` (default ``temporal-ml``), the local files go to ``$WANDB_DIR`` (default: the
    run's metrics directory). Each sink has its own ``wandb.Run`` (``reinit="create_new"``), so
    concurrent trainings in one worker do not mix; the process's console is not captured.
    """

    def __init__(self, ctx: SinkContext) -> None:
        wandb = require("wandb", "wandb")
        self.wandb_run_id = wandb_run_id(ctx.run_id, ctx.config)
        settings = wandb.Settings(reinit="create_new", console="off", quiet=True)
        try:
            self._run = wandb.init(
                id=self.wandb_run_id, resume="allow", name=ctx.run_id,
                project=os.environ.get("WANDB_PROJECT") or "temporal-ml",
                dir=None if os.environ.get("WANDB_DIR") else str(ctx.run_dir), settings=settings)
        except wandb.errors.UsageError as exc:  # not logged in, a bad setting: no retry fixes it
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"metric sink 'wandb': {first} (or set WANDB_MODE=offline)") from None
        self._run.define_metric("step")
        self._run.define_metric("*", step_metric="step", step_sync=True)
        self._run.config.update(_config(ctx), allow_val_change=True)

    @staticmethod
    def check() -> None:
        require("wandb", "wandb")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        if metrics:
            self._run.log({**metrics, "step": step})

    def close(self) -> None:
        self._run.finish()


def _config(ctx: SinkContext) -> dict[str, Any]:
    data = ctx.config.model_dump(mode="json", exclude={"metric_sinks"})
    data = {k: v for k, v in data.items() if v is not None}
    data["temporal_ml"] = {"run_id": ctx.run_id, "config_hash": ctx.config.config_hash()}
    return data
