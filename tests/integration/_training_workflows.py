"""Concrete training/inference workflows over the MLP test trainable (thin subclasses)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import PredictionResult, TrainResult
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
