"""temporal-ml: durable ML training, evaluation and hyperparameter search on Temporal.

The public API is re-exported here and loaded lazily, so ``import temporal_ml`` works without torch
(an orchestration worker needs only the core install). See ``docs/architecture.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from temporal_ml._version import __version__
from temporal_ml.results import results  # the function (the module stays importable by name)

__all__ = [
    "__version__",
    # connecting and running
    "connect",
    "create_worker",
    "DevServer",
    "TemporalMLPlugin",
    # typed values
    "SnapshotRef",
    "CheckpointRef",
    "DatasetSource",
    "TrainConfig",
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
    # storage
    "SnapshotStore",
    "CheckpointManager",
    "load_checkpoint",
    # training
    "Trainable",
    "TrainContext",
    "TrainSetup",
    "Prediction",
    "TrainingLoop",
    "LoopControl",
    # activities and workflows
    "SnapshotActivities",
    "TrainingActivities",
    "TrainingWorkflow",
    "TrainingInput",
    "InferenceWorkflow",
    "InferenceInput",
    "EvalActivities",
    "EvalWorkflow",
    "EvalInput",
    "CoordinatorWorkflow",
    "CoordinatorInput",
    # results and metrics
    "results",
    "MetricSink",
    "SinkContext",
    "register_metric_sink",
    # sweeps
    "SweepWorkflow",
    "SweepInput",
    "SweepResult",
    "SweepActivities",
    "LadderSweepWorkflow",
    "LadderInput",
    "LadderResult",
    # errors
    "TemporalMLError",
    "ConfigError",
    "IntegrityError",
    "NotFoundError",
    "MissingDependencyError",
    "StorageError",
    "StoreUnreachableError",
]

_WHERE = {
    "connect": "client",
    "create_worker": "worker",
    "DevServer": "devserver",
    "TemporalMLPlugin": "plugin",
    **dict.fromkeys(
        ["SnapshotRef", "CheckpointRef", "DatasetSource", "TrainConfig", "TrainProgress",
         "TrainResult", "PredictionResult", "EvalResult", "Lineage", "ExperimentSpec",
         "ExperimentStatus", "ExperimentResult", "LeaderboardEntry", "CoordinatorResult"], "types"),
    **dict.fromkeys(["SnapshotStore", "CheckpointManager", "load_checkpoint"], "storage"),
    **dict.fromkeys(["Trainable", "TrainContext", "TrainSetup", "Prediction", "TrainingLoop",
                     "LoopControl"], "training"),
    "SnapshotActivities": "activities.snapshot",
    "TrainingActivities": "activities.training",
    **dict.fromkeys(["TrainingWorkflow", "TrainingInput"], "workflows.training"),
    **dict.fromkeys(["InferenceWorkflow", "InferenceInput"], "workflows.inference"),
    "EvalActivities": "activities.evaluation",
    **dict.fromkeys(["EvalWorkflow", "EvalInput"], "workflows.evaluation"),
    **dict.fromkeys(["CoordinatorWorkflow", "CoordinatorInput"], "workflows.coordinator"),
    "SweepWorkflow": "workflows.sweep",
    **dict.fromkeys(["SweepInput", "SweepResult"], "sweep_types"),
    "SweepActivities": "activities.sweep",
    "LadderSweepWorkflow": "workflows.ladder",
    **dict.fromkeys(["LadderInput", "LadderResult"], "sweep_types"),
    **dict.fromkeys(["MetricSink", "SinkContext", "register_metric_sink"], "metric_sinks"),
    **dict.fromkeys(["TemporalMLError", "ConfigError", "IntegrityError", "NotFoundError",
                     "MissingDependencyError", "StorageError", "StoreUnreachableError"], "errors"),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(f"temporal_ml.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'temporal_ml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
