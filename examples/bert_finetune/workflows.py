"""bert_finetune workflows: fine-tuning and inference, thin subclasses of the library bases."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import PredictionResult, TrainResult
    from temporal_ml.workflows.inference import InferenceInput, InferenceWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow

TASK_QUEUE = "bert-finetune"


@workflow.defn(name="BertFineTune")
class BertFineTuneWorkflow(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="BertInference")
class BertInferenceWorkflow(InferenceWorkflow):
    @workflow.run
    async def run(self, inp: InferenceInput) -> PredictionResult:
        return await super().run(inp)
