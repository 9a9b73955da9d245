"""Workflows of the sweep benchmark (kept apart from ``bench_sweep.py``: the workflow sandbox
re-imports the module that defines a workflow; this one imports nothing heavy).

* ``FloorParent``: the bare Temporal floor: per trial one child workflow (``FloorChild``) running one
  no-op activity, at most C at a time.
* ``TrivialSweep``: ``SweepWorkflow`` whose training and evaluation children each run one no-op
  activity (what the sweep itself costs); ``NoopSweep``: the real training/evaluation workflows and
  activities over a one-parameter model.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from _noop_workflows import NoopEval, NoopTraining

    from temporal_ml.sweeps import SweepInput, SweepResult
    from temporal_ml.types import CheckpointRef, EvalResult, TrainResult
    from temporal_ml.workflows.evaluation import EvalInput
    from temporal_ml.workflows.sweep import SweepWorkflow
    from temporal_ml.workflows.training import TrainingInput

_SHA = "0" * 64


@activity.defn(name="bench_noop")
async def noop(x: float) -> float:
    return x


@workflow.defn(name="FloorChild")
class FloorChild:
    @workflow.run
    async def run(self, x: float) -> float:
        return await workflow.execute_activity(noop, x, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name="FloorParent")
class FloorParent:
    @workflow.run
    async def run(self, n: int, concurrency: int) -> int:
        slots = asyncio.Semaphore(concurrency)  # wakes one waiter per freed slot

        async def one(i: int) -> None:
            async with slots:
                await workflow.execute_child_workflow(FloorChild.run, float(i),
                                                      id=f"{workflow.info().workflow_id}-{i}")

        await asyncio.gather(*(one(i) for i in range(n)))
        return n


@workflow.defn(name="TrivialTrain")
class TrivialTrain:
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        await workflow.execute_activity(noop, 0.0, start_to_close_timeout=timedelta(seconds=30))
        run_id = inp.run_id or workflow.info().workflow_id
        ckpt = CheckpointRef(run_id=run_id, step=inp.config.max_steps, uri=f"mem://{run_id}", model_sha256=_SHA)
        assert inp.snapshot is not None
        metrics = {"eval_loss": float(inp.config.hparams.get("x", 0.0))} if inp.config.eval_split else {}  # type: ignore[arg-type]
        return TrainResult(run_id=run_id, snapshot=inp.snapshot, checkpoint=ckpt, steps=inp.config.max_steps,
                           metrics=metrics)


@workflow.defn(name="TrivialEval")
class TrivialEval:
    @workflow.run
    async def run(self, inp: EvalInput) -> EvalResult:
        value = await workflow.execute_activity(noop, float(inp.config.hparams.get("x", 0.0)),  # type: ignore[arg-type]
                                                start_to_close_timeout=timedelta(seconds=30))
        return EvalResult(checkpoint=inp.checkpoint, snapshot=inp.snapshot, split=inp.split, examples=1,
                          loss=value, metrics={"loss": value})


@workflow.defn(name="TrivialSweep")
class TrivialSweep(SweepWorkflow):
    training_workflow = TrivialTrain
    eval_workflow = TrivialEval

    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        return await super().run(inp)


@workflow.defn(name="NoopSweep")
class NoopSweep(SweepWorkflow):
    training_workflow = NoopTraining
    eval_workflow = NoopEval

    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        return await super().run(inp)


@workflow.defn(name="BenchFinishedSweep")
class FinishedSweep:
    """Returns the result it is given, tagged as a sweep: what a finished sweep looks like to the
    dashboard (``bench_dashboard.py``)."""

    @workflow.run
    async def run(self, result: SweepResult) -> SweepResult:
        from temporalio.common import SearchAttributeKey

        workflow.upsert_search_attributes([SearchAttributeKey.for_keyword("TmlKind").value_set("sweep"),
                                           SearchAttributeKey.for_keyword("TmlExperiment").value_set(result.run_id)])
        return result


WORKFLOWS = [FloorChild, FloorParent, TrivialTrain, TrivialEval, TrivialSweep, NoopSweep, NoopTraining,
             NoopEval]
