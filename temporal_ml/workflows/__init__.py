"""Workflow bases. They are undecorated: subclass, add ``@workflow.defn`` and re-declare
``@workflow.run`` (calling ``super().run``); signal/query/update handlers are inherited.

Example::

    from temporalio import workflow
    from temporal_ml.workflows import TrainingWorkflow

    @workflow.defn(name="MyTraining")
    class MyTraining(TrainingWorkflow):
        @workflow.run
        async def run(self, inp):
            return await super().run(inp)

The names load lazily (a worker imports only the workflows it runs).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["TrainingWorkflow", "TrainingInput", "EvalWorkflow", "EvalInput", "InferenceWorkflow",
           "InferenceInput", "CoordinatorWorkflow", "CoordinatorInput", "SweepWorkflow",
           "LadderSweepWorkflow"]

_WHERE = {
    "TrainingWorkflow": "training", "TrainingInput": "training",
    "EvalWorkflow": "evaluation", "EvalInput": "evaluation",
    "InferenceWorkflow": "inference", "InferenceInput": "inference",
    "CoordinatorWorkflow": "coordinator", "CoordinatorInput": "coordinator",
    "SweepWorkflow": "sweep", "LadderSweepWorkflow": "ladder",
}

if TYPE_CHECKING:
    from temporal_ml.workflows.coordinator import CoordinatorInput as CoordinatorInput
    from temporal_ml.workflows.coordinator import CoordinatorWorkflow as CoordinatorWorkflow
    from temporal_ml.workflows.evaluation import EvalInput as EvalInput
    from temporal_ml.workflows.evaluation import EvalWorkflow as EvalWorkflow
    from temporal_ml.workflows.inference import InferenceInput as InferenceInput
    from temporal_ml.workflows.inference import InferenceWorkflow as InferenceWorkflow
    from temporal_ml.workflows.ladder import LadderSweepWorkflow as LadderSweepWorkflow
    from temporal_ml.workflows.sweep import SweepWorkflow as SweepWorkflow
    from temporal_ml.workflows.training import TrainingInput as TrainingInput
    from temporal_ml.workflows.training import TrainingWorkflow as TrainingWorkflow


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(f"temporal_ml.workflows.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'temporal_ml.workflows' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
