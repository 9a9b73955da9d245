"""cifar10_scaleup workflows: a training run (thin subclass of the library base) and
``ScaleUpWorkflow``, which runs the same training at several world sizes, one after the other, as
durable child runs with equal global batch, steps, seed and data, and reports the scaling.

Runs go one at a time so each has the machine to itself (the timings are then comparable). Each
child sends its progress reports (``report_to``) here as well; the median of its reported training
throughput (``samples_per_second`` over logging windows) measures the steady state, without the
start-up of the gang and the final evaluation that the wall time includes.
"""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.messages import REPORT_SIGNAL
    from temporal_ml.types import (
        BoundaryModel,
        DatasetSource,
        SnapshotRef,
        TrainConfig,
        TrainResult,
    )
    from temporal_ml.workflows.training import (
        TrainingInput,
        TrainingWorkflow,
        create_snapshot,
        parse_report,
    )

TASK_QUEUE = "cifar10-scaleup"


class ScaleUpInput(BoundaryModel):
    """The training to scale (its ``world_size`` is replaced by each of ``world_sizes``)."""

    config: TrainConfig
    dataset: DatasetSource
    world_sizes: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,80}$")
    task_queue: str | None = None
    heartbeat_timeout_seconds: float = 30.0
    progress_every_seconds: float = 2.0


class ScaleResult(BaseModel):
    """One world size: its run, timings and test metrics.

    ``speedup`` / ``efficiency`` compare end-to-end wall times (gang start, training, evaluation) with
    the first world size; ``train_speedup`` / ``train_efficiency`` compare steady-state training
    throughput (``train_samples_per_second``)."""

    world_size: int
    run_id: str
    steps: int
    wall_seconds: float
    samples_per_second: float
    train_samples_per_second: float | None = None
    speedup: float = 1.0
    efficiency: float = 1.0
    train_speedup: float | None = None
    train_efficiency: float | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    model_sha256: str


class ScaleUpResult(BaseModel):
    """Every scale, in the order run."""

    run_id: str
    snapshot: SnapshotRef
    global_batch: int
    steps: int
    scales: list[ScaleResult]


class ScaleUpStatus(BaseModel):
    """Answered by the ``status`` query."""

    world_size: int | None = None
    step: int = 0
    max_steps: int = 0
    done: list[int] = Field(default_factory=list)


@workflow.defn(name="Cifar10Training")
class Cifar10Training(TrainingWorkflow):
    @workflow.run
    async def run(self, inp: TrainingInput) -> TrainResult:
        return await super().run(inp)


@workflow.defn(name="Cifar10ScaleUp")
class ScaleUpWorkflow:
    training_workflow = Cifar10Training

    def __init__(self) -> None:
        self._rates: dict[str, list[float]] = {}
        self._status = ScaleUpStatus()

    @workflow.signal(name=REPORT_SIGNAL)
    def report(self, *args: Any) -> None:
        p = parse_report(args)
        if p is None or p.run_id is None:
            return
        if p.samples_per_second:
            self._rates.setdefault(p.run_id, []).append(p.samples_per_second)
        self._status.step, self._status.max_steps = p.step, p.max_steps

    @workflow.query
    def status(self) -> ScaleUpStatus:
        return self._status

    @workflow.run
    async def run(self, inp: ScaleUpInput) -> ScaleUpResult:
        snapshot = await create_snapshot(inp.dataset, inp.task_queue)
        cfg = inp.config
        scales: list[ScaleResult] = []
        for world in inp.world_sizes:
            run_id = f"{inp.run_id}-w{world}"
            self._status.world_size, self._status.step = world, 0
            start = workflow.now()
            result: TrainResult = await workflow.execute_child_workflow(
                self.training_workflow.run,
                TrainingInput(config=cfg.model_copy(update={"world_size": world}), snapshot=snapshot,
                              run_id=run_id, task_queue=inp.task_queue,
                              heartbeat_timeout_seconds=inp.heartbeat_timeout_seconds,
                              progress_every_seconds=inp.progress_every_seconds,
                              report_to=[workflow.info().workflow_id]),
                id=run_id, execution_timeout=timedelta(days=7),
            )
            wall = (workflow.now() - start).total_seconds()
            # the first report of a run covers the gang's start-up: left out of the steady state
            rates = self._rates.get(run_id, [])[1:]
            scales.append(ScaleResult(
                world_size=world, run_id=run_id, steps=result.steps, wall_seconds=wall,
                samples_per_second=result.steps * cfg.batch_size / wall if wall > 0 else 0.0,
                train_samples_per_second=statistics.median(rates) if rates else None,
                test_accuracy=result.metrics.get("eval_accuracy"),
                test_loss=result.metrics.get("eval_loss"),
                model_sha256=result.checkpoint.model_sha256,
            ))
            self._status.done.append(world)
        base = scales[0]
        for s in scales:
            factor = s.world_size / base.world_size
            s.speedup = s.samples_per_second / base.samples_per_second if base.samples_per_second else 0.0
            s.efficiency = s.speedup / factor
            if s.train_samples_per_second and base.train_samples_per_second:
                s.train_speedup = s.train_samples_per_second / base.train_samples_per_second
                s.train_efficiency = s.train_speedup / factor
        return ScaleUpResult(run_id=inp.run_id, snapshot=snapshot, global_batch=cfg.batch_size,
                             steps=cfg.max_steps, scales=scales)


WORKFLOWS = [Cifar10Training, ScaleUpWorkflow]
