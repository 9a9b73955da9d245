"""Ready-made workflow types for sweeps described by a spec file (``temporal-ml sweep start``).

The bases are undecorated so that users name their own types; these are the library's own names,
registered by ``temporal-ml worker --role orchestration`` and by embedded runs, so a sweep needs no
user code. Trials train on the ``train_task_queue`` and evaluate on the ``eval_task_queue`` of the
sweep's input.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.sweeps import LadderInput, LadderResult, SweepInput, SweepResult
    from temporal_ml.types import EvalResult, TrainResult
    from temporal_ml.workflows.evaluation import EvalInput, EvalWorkflow
    from temporal_ml.workflows.ladder import LadderSweepWorkflow
    from temporal_ml.workflows.sweep import SweepWorkflow
    from temporal_ml.workflows.training import TrainingInput, TrainingWorkflow

__all__ = ["TmlTraining", "TmlEval", "TmlSweep", "TmlLadder", "BUILTIN_WORKFLOWS"]


@workflow.defn(name="TmlTraining")
class TmlTraining(TrainingWorkflow):
    """One trial's training."""

    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="TmlEval")
class TmlEval(EvalWorkflow):
    """One trial's evaluation."""

    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        return await super().run(inp)


@workflow.defn(name="TmlSweep")
class TmlSweep(SweepWorkflow):
    """A random/grid/TPE sweep: every trial trains to ``max_steps``, or with a scheduler (ASHA)
    trials climb rungs of training steps."""

    training_workflow = TmlTraining
    eval_workflow = TmlEval

    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        return await super().run(inp)


@workflow.defn(name="TmlLadder")
class TmlLadder(LadderSweepWorkflow):
    """The ASHA ladders started by releases before the scheduler joined the sweep: registered so
    they finish on this worker. New ones are ``TmlSweep`` runs with ``SweepInput.scheduler``."""

    training_workflow = TmlTraining
    eval_workflow = TmlEval

    @workflow.run
    async def run(self, inp: LadderInput) -> LadderResult:
        return await super().run(inp)


BUILTIN_WORKFLOWS: tuple[type, ...] = (TmlTraining, TmlEval, TmlSweep, TmlLadder)
"""Every built-in workflow type (what an orchestration worker registers for spec-file sweeps)."""
