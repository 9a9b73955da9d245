"""The public API is pinned, every name resolves, and the orchestration side needs no torch."""

from __future__ import annotations

import subprocess
import sys

import temporal_ml

PUBLIC = {
    "__version__", "connect", "create_worker", "DevServer", "TemporalMLPlugin", "SnapshotRef",
    "CheckpointRef", "DatasetSource", "TrainConfig", "TrainProgress", "TrainResult",
    "PredictionResult", "SnapshotStore", "CheckpointManager", "load_checkpoint", "Trainable",
    "TrainContext", "TrainSetup", "Prediction", "TrainingLoop", "LoopControl", "SnapshotActivities",
    "TrainingActivities", "TrainingWorkflow", "TrainingInput", "InferenceWorkflow", "InferenceInput",
    "TemporalMLError", "ConfigError", "IntegrityError", "NotFoundError", "MissingDependencyError",
    "SweepWorkflow", "SweepInput", "SweepResult", "SweepActivities", "LadderSweepWorkflow",
    "LadderInput", "LadderResult",
}


def test_public_names_are_pinned_and_resolve() -> None:
    assert set(temporal_ml.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(temporal_ml, name) is not None


def test_orchestration_imports_do_not_need_torch() -> None:
    code = (
        "import sys, temporal_ml\n"
        "from temporal_ml import connect, TrainingWorkflow, InferenceWorkflow, TrainConfig, DevServer\n"
        "from temporal_ml import SnapshotStore, CheckpointManager, TemporalMLPlugin\n"
        "from temporal_ml import SweepWorkflow, SweepInput, SweepResult, SweepActivities\n"
        "from temporal_ml import LadderSweepWorkflow, LadderInput, LadderResult\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
