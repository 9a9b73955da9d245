"""bert_sweeps workflows: a random/TPE sweep over BERT fine-tuning, with or without ASHA.

Thin subclasses of the library bases. The sweeps run on the orchestration queue (with the snapshot
and sweep activities); they send training activities to the training queue and evaluation activities
to the evaluation queue (``train_task_queue`` / ``eval_task_queue`` of their inputs)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.sweeps import LadderInput, LadderResult, SweepInput, SweepResult
    from temporal_ml.types import EvalResult, TrainResult
    from temporal_ml.workflows.evaluation import EvalInput, EvalWorkflow
    from temporal_ml.workflows.ladder import LadderSweepWorkflow
    from temporal_ml.workflows.sweep import SweepWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow

#: Orchestration queue: the workflows, the snapshot and sweep activities (no torch needed).
TASK_QUEUE = "bert-sweeps"
#: Training activities (a worker per GPU machine in a cluster).
TRAIN_QUEUE = "bert-sweeps-train"
#: Evaluation activities.
EVAL_QUEUE = "bert-sweeps-eval"


@workflow.defn(name="BertSweepTraining")
class BertSweepTraining(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="BertSweepEval")
class BertSweepEval(EvalWorkflow):
    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        return await super().run(inp)


@workflow.defn(name="BertSweep")
class BertSweep(SweepWorkflow):
    training_workflow = BertSweepTraining
    eval_workflow = BertSweepEval

    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        return await super().run(inp)


@workflow.defn(name="BertLadder")
class BertLadder(LadderSweepWorkflow):
    """Ladders started by the previous release (``--mode ladder`` is a ``BertSweep`` with ASHA now)."""

    training_workflow = BertSweepTraining
    eval_workflow = BertSweepEval

    @workflow.run
    async def run(self, inp: LadderInput) -> LadderResult:
        return await super().run(inp)


WORKFLOWS = [BertSweepTraining, BertSweepEval, BertSweep, BertLadder]
