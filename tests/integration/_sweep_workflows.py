"""Concrete sweep workflows over the MLP test trainable (thin subclasses)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.sweeps import LadderInput, LadderResult, SweepInput, SweepResult
    from temporal_ml.workflows.ladder import LadderSweepWorkflow
    from temporal_ml.workflows.sweep import SweepWorkflow
    from tests.integration._training_workflows import MLPEval, MLPTraining


@workflow.defn
class MLPSweep(SweepWorkflow):
    training_workflow = MLPTraining
    eval_workflow = MLPEval

    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        return await super().run(inp)


@workflow.defn
class MLPLadder(LadderSweepWorkflow):
    training_workflow = MLPTraining
    eval_workflow = MLPEval

    @workflow.run
    async def run(self, inp: LadderInput) -> LadderResult:
        return await super().run(inp)
