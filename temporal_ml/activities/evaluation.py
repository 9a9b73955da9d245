"""The evaluation activity: metrics of a verified checkpoint on a split of its own snapshot."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from temporalio import activity

from temporal_ml.activities._fail_fast import fail_fast
from temporal_ml.activities._heartbeat import heartbeating
from temporal_ml.activities.messages import EVALUATE, EvalRequest
from temporal_ml.errors import ConfigError, NotFoundError
from temporal_ml.metric_sinks import log_evaluation
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.training.progress import RowProgress, counting_rows
from temporal_ml.training.restore import setup_from_checkpoint
from temporal_ml.training.setup_cache import SetupCache, WorkerCache, cached_snapshot
from temporal_ml.training.trainable import Trainable
from temporal_ml.types import EvalResult

__all__ = ["EvalActivities"]

_NAMED = ("loss", "accuracy", "macro_f1", "mse", "rmse")


def _details(progress: RowProgress | None) -> dict[str, Any] | None:
    """Heartbeat details of an evaluation: its rows done, once the trainable reports any."""
    return progress.model_dump() if progress is not None else None


class EvalActivities:
    """Evaluation activities bound to a snapshot store and the trainables that can rebuild models.

    Args:
        trainables: name -> :class:`Trainable` (``TrainConfig.trainable`` picks one).
        snapshot_store: the store holding the snapshots runs trained on.
        storage_options: fsspec options for reading checkpoints.
        metrics_dir: local directory of the runs' metrics (``<run_id>/``): an evaluation's metrics go
            to the sinks of its run's ``config.metric_sinks`` there (``None``: to none).
        setup_cache: the worker's memory cache of loaded snapshots and set-up data (default: this
            process's :meth:`WorkerCache.default`, shared with the training activities).
    """

    def __init__(
        self,
        *,
        trainables: Mapping[str, Trainable],
        snapshot_store: SnapshotStore,
        storage_options: dict[str, Any] | None = None,
        metrics_dir: str | Path | None = None,
        setup_cache: WorkerCache | None = None,
    ) -> None:
        self.trainables = dict(trainables)
        self.snapshots = snapshot_store
        self.storage_options = storage_options
        self.metrics_dir = metrics_dir
        self.setup_cache = SetupCache.for_worker(snapshot_store.array_cache(), setup_cache)

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on an evaluation worker."""
        return [self.evaluate]

    @activity.defn(name=EVALUATE)
    @fail_fast
    def evaluate(self, req: EvalRequest) -> EvalResult:
        """Evaluate ``req.checkpoint`` on split ``req.split`` of ``req.snapshot``.

        The data comes from the snapshot the run trained on (never a fresh download); the checkpoint
        is verified by sha256 before use.

        Raises:
            ApplicationError (non-retryable): unknown trainable or split, a missing checkpoint, or a
                checkpoint that does not match its digests.
        """
        with counting_rows() as rows, heartbeating(details=lambda: _details(rows.latest())):
            return self._evaluate(req)

    def _evaluate(self, req: EvalRequest) -> EvalResult:
        trainable = self.trainables.get(req.config.trainable)
        if trainable is None:
            raise ConfigError(
                f"unknown trainable {req.config.trainable!r}; this worker has {sorted(self.trainables)}"
            )
        data = cached_snapshot(self.setup_cache.memory, self.snapshots, req.snapshot)
        if req.split not in data:
            raise NotFoundError(
                f"split {req.split!r} is not in snapshot {req.snapshot.short_id} (splits: {sorted(data)})"
            )
        setup = setup_from_checkpoint(trainable, req.config, data, req.checkpoint,
                                      storage_options=self.storage_options,
                                      snapshot_id=req.snapshot.id, cache=self.setup_cache)
        metrics = {k: float(v) for k, v in trainable.evaluate(setup, data[req.split]).items()}
        if "mse" in metrics and "rmse" not in metrics:
            metrics["rmse"] = math.sqrt(metrics["mse"])
        log_evaluation(self.metrics_dir, req.checkpoint.run_id, req.config, req.checkpoint.step, metrics)
        return EvalResult(
            checkpoint=req.checkpoint, snapshot=req.snapshot, split=req.split,
            examples=int(metrics.get("examples", data[req.split].num_rows)),
            metrics=metrics, **{k: metrics[k] for k in _NAMED if k in metrics},
        )
