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
    "StorageError",
    "StoreUnreachableError",
    "SweepWorkflow", "SweepInput", "SweepResult", "SweepActivities", "LadderSweepWorkflow",
    "LadderInput", "LadderResult",
    "EvalResult", "Lineage", "ExperimentSpec", "ExperimentStatus", "ExperimentResult", "LeaderboardEntry",
    "CoordinatorResult", "EvalActivities", "EvalWorkflow", "EvalInput", "CoordinatorWorkflow",
    "CoordinatorInput", "results", "MetricSink", "SinkContext", "register_metric_sink",
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
        "from temporal_ml import EvalWorkflow, CoordinatorWorkflow, CoordinatorInput, results\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
        "from temporal_ml import SweepWorkflow, SweepInput, SweepResult, SweepActivities\n"
        "from temporal_ml import LadderSweepWorkflow, LadderInput, LadderResult\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_results_is_the_function_and_pandas_is_optional() -> None:
    import importlib
    import inspect

    from temporal_ml.results import learning_curves, result_rows  # noqa: F401 - the module's names

    # `temporal_ml.results` is the module (``import temporal_ml.results as r`` too), and calling it
    # calls its function
    module = importlib.import_module("temporal_ml.results")
    import temporal_ml.results as bound

    assert temporal_ml.results is module is bound and inspect.iscoroutinefunction(module.results)
    call = temporal_ml.results(None, "run-1")  # type: ignore[operator,arg-type]
    assert inspect.iscoroutine(call) and call.cr_code is module.results.__code__
    call.close()
    # without pandas, the DataFrame API fails with the extra to install (and nothing else breaks)
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import temporal_ml\n"
        "from temporal_ml.results import require_pandas\n"
        "from temporal_ml.errors import MissingDependencyError\n"
        "try:\n    require_pandas()\nexcept MissingDependencyError as exc:\n"
        "    assert \"pip install 'temporal-ml[ui]'\" in str(exc), exc\nelse:\n    raise SystemExit(1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
