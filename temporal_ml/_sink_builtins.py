"""The built-in metric sinks, ``"tensorboard"`` and ``"mlflow"`` (see :mod:`temporal_ml.metric_sinks`).

Each imports its package only when a run uses it; a missing one raises
:class:`~temporal_ml.errors.MissingDependencyError` naming the extra to install.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from temporal_ml.errors import require

if TYPE_CHECKING:  # pragma: no cover
    from temporal_ml.metric_sinks import SinkContext
    from temporal_ml.types import TrainConfig

__all__ = ["TensorBoardSink", "MLflowSink"]


class TensorBoardSink:
    """Scalars in TensorBoard event files in the run's metrics directory (``tag`` = metric name).

    On resume the writer purges the steps after the resume point, so TensorBoard shows one value
    per step."""

    def __init__(self, ctx: SinkContext) -> None:
        tb = _tensorboard()
        purge = ctx.start_step + 1 if ctx.start_step > 0 else None
        self._writer = tb.SummaryWriter(log_dir=str(ctx.run_dir), purge_step=purge)

    @staticmethod
    def check() -> None:
        _tensorboard()

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, global_step=step)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


def _tensorboard() -> Any:
    require("tensorboard", "tensorboard")
    return require("torch.utils.tensorboard", "tensorboard")


class MLflowSink:
    """One MLflow run per training run, found again on resume by the tag ``temporal_ml.run_id``.

    Uses an explicit ``MlflowClient`` (no global active run), so concurrent trainings in one worker
    do not mix. Params (the config, ``hparams.*`` flattened) are logged when the MLflow run is created.
    Each record is one synchronous ``log_batch`` call from the training thread (every
    ``log_every_steps`` steps): with a remote tracking server, a larger ``log_every_steps`` keeps
    its round trips out of the step time.
    """

    TAG = "temporal_ml.run_id"

    def __init__(self, ctx: SinkContext) -> None:
        mlflow = require("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self._metric = require("mlflow.entities", "mlflow").Metric
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ctx.run_dir.parent / 'mlflow.db'}"
        self._client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "temporal-ml"
        experiment = self._client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self._client.create_experiment(name)
        found = self._client.search_runs(
            [experiment_id], filter_string=f"tags.`{self.TAG}` = '{ctx.run_id}'", max_results=1)
        if found:
            self.mlflow_run_id: str = found[0].info.run_id
            self._client.update_run(self.mlflow_run_id, status="RUNNING")
        else:
            run = self._client.create_run(experiment_id, run_name=ctx.run_id,
                                          tags={self.TAG: ctx.run_id,
                                                "temporal_ml.config_hash": ctx.config.config_hash()})
            self.mlflow_run_id = run.info.run_id
            params = [mlflow.entities.Param(k, str(v)[:500]) for k, v in _params(ctx.config).items()]
            for i in range(0, len(params), 100):
                self._client.log_batch(self.mlflow_run_id, params=params[i:i + 100])

    @staticmethod
    def check() -> None:
        require("mlflow", "mlflow")

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        batch = [self._metric(key, value, now, step) for key, value in metrics.items()]
        if batch:
            self._client.log_batch(self.mlflow_run_id, metrics=batch)

    def close(self) -> None:
        self._client.set_terminated(self.mlflow_run_id, status="FINISHED")


def _params(config: TrainConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json", exclude={"hparams", "metric_sinks"})
    params = {k: v for k, v in data.items() if v is not None}
    for key, value in config.hparams.items():
        params[f"hparams.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return params

