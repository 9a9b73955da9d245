"""Workflows of the orchestration benchmark: thin subclasses over a no-op trainable.

Kept apart from ``bench_orchestration.py`` because the workflow sandbox re-imports the module that
defines a workflow; this one imports nothing heavy."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.types import CoordinatorResult, EvalResult, TrainResult
    from temporal_ml.workflows.coordinator import CoordinatorInput, CoordinatorWorkflow
    from temporal_ml.workflows.evaluation import EvalInput, EvalWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow


@workflow.defn(name="NoopTraining")
class NoopTraining(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="NoopEval")
class NoopEval(EvalWorkflow):
    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        return await super().run(inp)


@workflow.defn(name="NoopCoordinator")
class NoopCoordinator(CoordinatorWorkflow):
    training_workflow = NoopTraining
    eval_workflow = NoopEval

    @workflow.run
    async def run(self, inp: CoordinatorInput) -> CoordinatorResult:
        return await super().run(inp)


WORKFLOWS = [NoopTraining, NoopEval, NoopCoordinator]
