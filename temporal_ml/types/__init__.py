"""Typed values that cross Temporal boundaries: references to stored data and results.

These are small pydantic models (paths and digests, never tensors or datasets), so workflow payloads
stay far below Temporal's limits.
"""

from __future__ import annotations

from temporal_ml.types._base import BoundaryModel as BoundaryModel
from temporal_ml.types._base import _Frozen as _Frozen
from temporal_ml.types._base import _in_workflow as _in_workflow
from temporal_ml.types._base import one_line as one_line
from temporal_ml.types._config import OPERATIONAL_FIELDS as OPERATIONAL_FIELDS
from temporal_ml.types._config import TrainConfig
from temporal_ml.types._config import _sha256_json as _sha256_json
from temporal_ml.types._refs import CheckpointRef, DatasetSource, SnapshotRef
from temporal_ml.types._results import (
    CoordinatorResult,
    EvalResult,
    ExperimentResult,
    ExperimentSpec,
    ExperimentStatus,
    LeaderboardEntry,
    Lineage,
    PredictionResult,
    RowProgress,
    TrainProgress,
    TrainResult,
)

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
