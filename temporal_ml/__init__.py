"""temporal-ml: durable ML training, evaluation and hyperparameter search on Temporal.

The public API is re-exported here and loaded lazily, so ``import temporal_ml`` works without torch
(an orchestration worker needs only the core install). See ``docs/architecture.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from temporal_ml import (
    results,  # a callable module: ``temporal_ml.results(client, id)`` is its function
)
from temporal_ml._version import __version__

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


if TYPE_CHECKING:  # what editors and type checkers see of the lazy names
    from temporal_ml.activities.evaluation import (
        EvalActivities as EvalActivities,
    )
    from temporal_ml.activities.snapshot import (
        SnapshotActivities as SnapshotActivities,
    )
    from temporal_ml.activities.sweep import (
        SweepActivities as SweepActivities,
    )
    from temporal_ml.activities.training import (
        TrainingActivities as TrainingActivities,
    )
    from temporal_ml.client import (
        connect as connect,
    )
    from temporal_ml.devserver import (
        DevServer as DevServer,
    )
    from temporal_ml.errors import (
        ConfigError as ConfigError,
    )
    from temporal_ml.errors import (
        IntegrityError as IntegrityError,
    )
    from temporal_ml.errors import (
        MissingDependencyError as MissingDependencyError,
    )
    from temporal_ml.errors import (
        NotFoundError as NotFoundError,
    )
    from temporal_ml.errors import (
        StorageError as StorageError,
    )
    from temporal_ml.errors import (
        StoreUnreachableError as StoreUnreachableError,
    )
    from temporal_ml.errors import (
        TemporalMLError as TemporalMLError,
    )
    from temporal_ml.metric_sinks import (
        MetricSink as MetricSink,
    )
    from temporal_ml.metric_sinks import (
        SinkContext as SinkContext,
    )
    from temporal_ml.metric_sinks import (
        register_metric_sink as register_metric_sink,
    )
    from temporal_ml.plugin import (
        TemporalMLPlugin as TemporalMLPlugin,
    )
    from temporal_ml.storage import (
        CheckpointManager as CheckpointManager,
    )
    from temporal_ml.storage import (
        SnapshotStore as SnapshotStore,
    )
    from temporal_ml.storage import (
        load_checkpoint as load_checkpoint,
    )
    from temporal_ml.sweeps import (
        LadderInput as LadderInput,
    )
    from temporal_ml.sweeps import (
        LadderResult as LadderResult,
    )
    from temporal_ml.sweeps import (
        SweepInput as SweepInput,
    )
    from temporal_ml.sweeps import (
        SweepResult as SweepResult,
    )
    from temporal_ml.training import (
        LoopControl as LoopControl,
    )
    from temporal_ml.training import (
        Prediction as Prediction,
    )
    from temporal_ml.training import (
        Trainable as Trainable,
    )
    from temporal_ml.training import (
        TrainContext as TrainContext,
    )
    from temporal_ml.training import (
        TrainingLoop as TrainingLoop,
    )
    from temporal_ml.training import (
        TrainSetup as TrainSetup,
    )
    from temporal_ml.types import (
        CheckpointRef as CheckpointRef,
    )
    from temporal_ml.types import (
        CoordinatorResult as CoordinatorResult,
    )
    from temporal_ml.types import (
        DatasetSource as DatasetSource,
    )
    from temporal_ml.types import (
        EvalResult as EvalResult,
    )
    from temporal_ml.types import (
        ExperimentResult as ExperimentResult,
    )
    from temporal_ml.types import (
        ExperimentSpec as ExperimentSpec,
    )
    from temporal_ml.types import (
        ExperimentStatus as ExperimentStatus,
    )
    from temporal_ml.types import (
        LeaderboardEntry as LeaderboardEntry,
    )
    from temporal_ml.types import (
        Lineage as Lineage,
    )
    from temporal_ml.types import (
        PredictionResult as PredictionResult,
    )
    from temporal_ml.types import (
        SnapshotRef as SnapshotRef,
    )
    from temporal_ml.types import (
        TrainConfig as TrainConfig,
    )
    from temporal_ml.types import (
        TrainProgress as TrainProgress,
    )
    from temporal_ml.types import (
        TrainResult as TrainResult,
    )
    from temporal_ml.worker import (
        create_worker as create_worker,
    )
    from temporal_ml.workflows.coordinator import (
        CoordinatorInput as CoordinatorInput,
    )
    from temporal_ml.workflows.coordinator import (
        CoordinatorWorkflow as CoordinatorWorkflow,
    )
    from temporal_ml.workflows.evaluation import (
        EvalInput as EvalInput,
    )
    from temporal_ml.workflows.evaluation import (
        EvalWorkflow as EvalWorkflow,
    )
    from temporal_ml.workflows.inference import (
        InferenceInput as InferenceInput,
    )
    from temporal_ml.workflows.inference import (
        InferenceWorkflow as InferenceWorkflow,
    )
    from temporal_ml.workflows.ladder import (
        LadderSweepWorkflow as LadderSweepWorkflow,
    )
    from temporal_ml.workflows.sweep import (
        SweepWorkflow as SweepWorkflow,
    )
    from temporal_ml.workflows.training import (
        TrainingInput as TrainingInput,
    )
    from temporal_ml.workflows.training import (
        TrainingWorkflow as TrainingWorkflow,
    )


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(f"temporal_ml.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'temporal_ml' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
