"""Concrete training/inference workflows over the MLP test trainable (thin subclasses)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import CoordinatorResult, EvalResult, PredictionResult, TrainResult
    from temporal_ml.workflows.coordinator import CoordinatorInput, CoordinatorWorkflow
    from temporal_ml.workflows.evaluation import EvalInput, EvalWorkflow
    from temporal_ml.workflows.inference import InferenceInput, InferenceWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow


@workflow.defn
class MLPTraining(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn
class MLPInference(InferenceWorkflow):
    @workflow.run
    async def run(self, inp: InferenceInput) -> PredictionResult:
        return await super().run(inp)


@workflow.defn
class MLPEval(EvalWorkflow):
    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        return await super().run(inp)


@workflow.defn
class MLPCoordinator(CoordinatorWorkflow):
    training_workflow = MLPTraining
    eval_workflow = MLPEval

    @workflow.run
    async def run(self, inp: CoordinatorInput) -> CoordinatorResult:
        return await super().run(inp)
