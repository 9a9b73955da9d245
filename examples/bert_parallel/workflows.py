"""bert_parallel workflows: training, evaluation and a coordinator running many experiments at once.

Thin subclasses of the library bases. The coordinator runs on the orchestration queue; it sends
training activities to the training queue and evaluation activities to the evaluation queue
(``CoordinatorInput.train_task_queue`` / ``eval_task_queue``)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import CoordinatorResult, EvalResult, TrainResult
    from temporal_ml.workflows.coordinator import CoordinatorInput, CoordinatorWorkflow
    from temporal_ml.workflows.evaluation import EvalInput, EvalWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow

#: Orchestration queue: the workflows and the snapshot activity (no torch needed).
TASK_QUEUE = "bert-parallel"
#: Training activities (a worker per GPU machine in a cluster).
TRAIN_QUEUE = "bert-parallel-train"
#: Evaluation activities.
EVAL_QUEUE = "bert-parallel-eval"


@workflow.defn(name="BertParallelTraining")
class BertParallelTraining(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="BertParallelEval")
class BertParallelEval(EvalWorkflow):
    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        return await super().run(inp)


@workflow.defn(name="BertParallel")
class BertParallel(CoordinatorWorkflow):
    training_workflow = BertParallelTraining
    eval_workflow = BertParallelEval

    @workflow.run
    async def run(self, inp: CoordinatorInput) -> CoordinatorResult:
        return await super().run(inp)


WORKFLOWS = [BertParallelTraining, BertParallelEval, BertParallel]
