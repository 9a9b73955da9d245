"""bert_eval workflows: training, evaluation and the coordinator that ties them into one experiment.

Thin subclasses of the library bases; the coordinator names its child workflow types."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import CoordinatorResult, EvalResult, TrainResult
    from temporal_ml.workflows.coordinator import CoordinatorInput, CoordinatorWorkflow
    from temporal_ml.workflows.evaluation import EvalInput, EvalWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow

TASK_QUEUE = "bert-eval"


@workflow.defn(name="BertEvalTraining")
class BertTraining(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="BertEval")
class BertEval(EvalWorkflow):
    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        return await super().run(inp)


@workflow.defn(name="BertExperiment")
class BertExperiment(CoordinatorWorkflow):
    training_workflow = BertTraining
    eval_workflow = BertEval

    @workflow.run
    async def run(self, inp: CoordinatorInput) -> CoordinatorResult:
        return await super().run(inp)


WORKFLOWS = [BertTraining, BertEval, BertExperiment]
