"""Orchestration overhead: what Temporal + temporal-ml add per experiment, around the actual work.

A ``CoordinatorWorkflow`` runs N (default 50) no-op experiments: each is a training child workflow
(one ``train`` activity: a one-parameter model, ``max_steps=1``, an 8-row data set) and an evaluation
child workflow (one ``evaluate`` activity), after one ``create_snapshot`` activity. Everything runs
against a real local dev server (``DevServer``: SQLite, headless, a temporary data directory, free
port) with an in-process worker, after a small warm-up coordinator (torch import, first workflow
tasks, OpenMP threads).

Activity time is measured two ways and both are printed:

* **history** (used for the overhead figures): ``ActivityTaskCompleted.event_time -
  ActivityTaskStarted.event_time`` of every activity in the coordinator's and children's
  histories, i.e. the server's view of how long each activity ran on the worker (dispatch to
  result). ``ActivityTaskScheduled -> Started`` is reported separately as queue latency.
* **in-worker**: an activity interceptor times each ``execute_activity`` call on the worker
  (``perf_counter`` around the activity function, after payload decoding), as a cross-check.

Figures, for a run with ``max_concurrency = C`` (the coordinator's own limit):

* ``wall``: client-side time from ``start_workflow`` to the coordinator's result.
* ``wall / N``: end-to-end time per experiment.
* ``overhead / exp = (wall - sum(activity time) / C) / N``: per-experiment time not explained by
  activity work spread perfectly over C slots. With C = 1 this is exactly the serial orchestration
  cost per experiment (two child workflows started and completed, two activities dispatched, the
  coordinator's workflow tasks); with C > 1 it also includes any imperfect packing.

    python benchmarks/bench_orchestration.py [--experiments 50] [--max-concurrency 10] [--no-serial]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import torch
from _noop_workflows import WORKFLOWS, NoopCoordinator
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.sweep import SweepActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.training.trainable import Trainable, TrainContext, TrainSetup
from temporal_ml.types import CoordinatorResult, DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.coordinator import CoordinatorInput, read_coordinator_table

QUEUE = "bench-orchestration"


# -- the no-op workload ---------------------------------------------------------------------------

def tiny_data(rows: int = 8) -> dict[str, pa.Table]:
    """An 8-row regression data set (a deterministic generator for ``DatasetSource``)."""
    values = pa.array([float(i) for i in range(rows)], pa.float32())
    return {"train": pa.table({"x": values}), "dev": pa.table({"x": values})}


class _Scalar(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))


class NoopTrainable(Trainable):
    """A model with a single parameter ``w`` fitting the mean of ``x`` (squared error)."""

    def setup(self, ctx: TrainContext) -> TrainSetup:
        model = _Scalar()
        x = torch.tensor(ctx.data["train"].column("x").to_pylist())
        return TrainSetup(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                          make_batch=lambda idx: x[torch.as_tensor(list(idx))], train_size=len(x))

    def train_step(self, setup: TrainSetup, batch: Any) -> torch.Tensor:
        w: torch.Tensor = setup.model.w  # type: ignore[assignment]
        return ((w - batch) ** 2).mean()

    def evaluate(self, setup: TrainSetup, split: pa.Table) -> dict[str, float]:
        x = torch.tensor(split.column("x").to_pylist())
        w: torch.Tensor = setup.model.w  # type: ignore[assignment]
        with torch.no_grad():
            return {"loss": float(((w - x) ** 2).mean()), "examples": float(len(x))}


# -- measuring activities from inside the worker ---------------------------------------------------

class ActivityTimer(Interceptor):
    """Records the in-worker duration of every activity execution, by activity type."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        timer = self

        class _Timed(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                start = time.perf_counter()
                try:
                    return await super().execute_activity(input)
                finally:
                    timer.seconds[activity.info().activity_type].append(time.perf_counter() - start)

        return _Timed(next)


# -- histories -------------------------------------------------------------------------------------

@dataclass
class HistoryStats:
    """Activity and workflow-task figures read from workflow histories."""

    run_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    queue_seconds: list[float] = field(default_factory=list)
    workflow_task_latency: list[float] = field(default_factory=list)
    child_start_seconds: list[float] = field(default_factory=list)
    workflow_tasks: int = 0
    events: int = 0
    runs: int = 0

    def merge(self, other: HistoryStats) -> None:
        for name, seconds in other.run_seconds.items():
            self.run_seconds[name].extend(seconds)
        self.queue_seconds += other.queue_seconds
        self.workflow_task_latency += other.workflow_task_latency
        self.child_start_seconds += other.child_start_seconds
        self.workflow_tasks += other.workflow_tasks
        self.events += other.events
        self.runs += other.runs


async def history_stats(client: Client, workflow_ids: Sequence[str], all_runs: bool = False) -> HistoryStats:
    """Sum activity run times (Started -> Completed) and queue latency (Scheduled -> Started);
    ``all_runs``: over every run of each id (a coordinator that continued as new)."""
    stats = HistoryStats()
    handles = []
    for wid in workflow_ids:
        if all_runs:
            handles += [client.get_workflow_handle(wid, run_id=wf.run_id)
                        async for wf in client.list_workflows(f'WorkflowId = "{wid}"')]
        else:
            handles.append(client.get_workflow_handle(wid))
    for handle in handles:
        history = await handle.fetch_history()
        stats.runs += 1
        scheduled: dict[int, tuple[str, float]] = {}
        started: dict[int, float] = {}
        pending: dict[int, float] = {}  # workflow task scheduled / child initiated, by event id
        for e in history.events:
            t = e.event_time.ToDatetime().timestamp()
            stats.events += 1
            if e.HasField("activity_task_scheduled_event_attributes"):
                scheduled[e.event_id] = (e.activity_task_scheduled_event_attributes.activity_type.name, t)
            elif e.HasField("activity_task_started_event_attributes"):
                sid = e.activity_task_started_event_attributes.scheduled_event_id
                started[sid] = t
                stats.queue_seconds.append(t - scheduled[sid][1])
            elif e.HasField("activity_task_completed_event_attributes"):
                sid = e.activity_task_completed_event_attributes.scheduled_event_id
                stats.run_seconds[scheduled[sid][0]].append(t - started[sid])
            elif e.HasField("workflow_task_completed_event_attributes"):
                stats.workflow_tasks += 1
            elif e.HasField("workflow_task_scheduled_event_attributes") or e.HasField(
                    "start_child_workflow_execution_initiated_event_attributes"):
                pending[e.event_id] = t
            elif e.HasField("workflow_task_started_event_attributes"):
                sid = e.workflow_task_started_event_attributes.scheduled_event_id
                stats.workflow_task_latency.append(t - pending[sid])
            elif e.HasField("child_workflow_execution_started_event_attributes"):
                sid = e.child_workflow_execution_started_event_attributes.initiated_event_id
                stats.child_start_seconds.append(t - pending[sid])
    return stats


# -- one run ---------------------------------------------------------------------------------------

#: Topologies: every role on one queue and worker (activities may then run eagerly, dispatched
#: with the workflow task that schedules them), or one worker and queue per role as in
#: ``examples/bert_parallel`` (every activity goes through the server's task queue).
TOPOLOGIES = ("single", "roles")


@dataclass
class RunFigures:
    topology: str
    concurrency: int
    experiments: int
    wall: float
    history: HistoryStats
    in_worker: dict[str, list[float]]
    coordinator_events: int
    coordinator_runs: int


def coordinator_input(n: int, concurrency: int, run_id: str, topology: str, tmp: str) -> CoordinatorInput:
    config = TrainConfig(trainable="noop", max_steps=1, batch_size=4, device="cpu")
    roles = topology == "roles"
    return CoordinatorInput(
        experiments=[ExperimentSpec(name=f"e{i:03d}", config=config.model_copy(update={"seed": i}))
                     for i in range(n)],
        dataset=DatasetSource(generator="tiny"), run_id=run_id, max_concurrency=concurrency,
        train_task_queue=f"{QUEUE}-train" if roles else None,
        eval_task_queue=f"{QUEUE}-eval" if roles else None,
        leaderboard_metric="loss", leaderboard_mode="min",
        table_root=f"{tmp}/tables" if n > 200 else None,  # more results than fit in one payload
    )


async def run_once(client: Client, timer: ActivityTimer, n: int, concurrency: int,
                   topology: str, tmp: str) -> RunFigures:
    run_id = f"bench-{topology}-{concurrency}-{uuid.uuid4().hex[:6]}"
    timer.seconds.clear()
    start = time.perf_counter()
    handle = await client.start_workflow(
        NoopCoordinator.run, coordinator_input(n, concurrency, run_id, topology, tmp), id=run_id, task_queue=QUEUE)
    result: CoordinatorResult = await handle.result()
    wall = time.perf_counter() - start
    experiments = result.experiments or read_coordinator_table(result.table_uri or "")
    failed = [e for e in experiments if e.status != "done"]
    if failed:
        raise SystemExit(f"{len(failed)} experiments failed, e.g. {failed[0].name}: {failed[0].error}")
    children = [w for e in experiments for w in (e.train_workflow_id, e.eval_workflow_id)]
    stats = await history_stats(client, children)
    coordinator = await history_stats(client, [run_id], all_runs=True)
    stats.merge(coordinator)
    return RunFigures(topology, concurrency, n, wall, stats, {k: list(v) for k, v in timer.seconds.items()},
                      coordinator.events, coordinator.runs)


def workers(client: Client, tmp: str, topology: str, trainings: int, timer: ActivityTimer) -> list[Worker]:
    """In-process workers for ``topology``, with the activity timer on each."""
    store = SnapshotStore(tmp)  # snapshots in <tmp>/snapshots
    trainables = {"noop": NoopTrainable()}
    # the sweep activities write a coordinator's results table (more than 200 experiments)
    snapshot = [*SnapshotActivities(store, generators={"tiny": tiny_data}).activities(),
                *SweepActivities().activities()]
    train = TrainingActivities(trainables=trainables, snapshot_store=store, checkpoint_root=f"{tmp}/checkpoints",
                               max_concurrent_trainings=trainings).activities()
    evaluate = EvalActivities(trainables=trainables, snapshot_store=store).activities()
    threads = max(8, trainings)

    def make(queue: str, workflows: Sequence[type], activities: list[Any]) -> Worker:
        return create_worker(client, task_queue=queue, workflows=workflows, activities=activities,
                             activity_threads=threads, interceptors=[timer])

    if topology == "single":
        return [make(QUEUE, WORKFLOWS, [*snapshot, *train, *evaluate])]
    return [make(QUEUE, WORKFLOWS, snapshot), make(f"{QUEUE}-train", (), train),
            make(f"{QUEUE}-eval", (), evaluate)]


# -- report ----------------------------------------------------------------------------------------

def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _med(values: Sequence[float]) -> str:
    return _ms(statistics.median(values)) if values else "-"


def report(runs: Sequence[RunFigures]) -> None:
    print()
    print("activity time, summed over the run (s): history = server Started->Completed, "
          "in-worker = interceptor")
    print(f"  {'topology':<8} {'C':>3}  {'activity':<28} {'count':>5} {'history':>8} {'in-worker':>9} "
          f"{'median ms':>9}")
    for r in runs:
        for name in sorted(r.history.run_seconds):
            hist, inside = r.history.run_seconds[name], r.in_worker.get(name, [])
            print(f"  {r.topology:<8} {r.concurrency:>3}  {name:<28} {len(hist):>5} {sum(hist):>8.2f} "
                  f"{sum(inside):>9.2f} {_med(hist):>9}")
    print()
    header = (f"{'topology':<8} {'C':>3} {'N':>3} {'wall s':>7} {'sum act s':>9} {'wall/N ms':>9} "
              f"{'overhead/exp ms':>15} | {'wf tasks/exp':>12} {'wft lat ms':>10} {'child start ms':>14} "
              f"{'act queue ms':>12} {'coord events':>12}")
    print(header)
    print("-" * len(header))
    for r in runs:
        total = sum(sum(v) for v in r.history.run_seconds.values())
        overhead = (r.wall - total / r.concurrency) / r.experiments
        print(f"{r.topology:<8} {r.concurrency:>3} {r.experiments:>3} {r.wall:>7.2f} {total:>9.2f} "
              f"{_ms(r.wall / r.experiments):>9} {_ms(overhead):>15} | "
              f"{r.history.workflow_tasks / r.experiments:>12.1f} {_med(r.history.workflow_task_latency):>10} "
              f"{_med(r.history.child_start_seconds):>14} {_med(r.history.queue_seconds):>12} "
              f"{r.coordinator_events:>12}")
    print()
    for r in runs:
        print(f"{r.topology} C={r.concurrency}: coordinator history {r.coordinator_events} events in "
              f"{r.coordinator_runs} run(s), {r.coordinator_events / r.experiments:.1f} events per experiment "
              f"(limit per run: 51,200 events; continue-as-new is suggested from 4,096 on the dev server)")
    print()
    print("C = max_concurrency; N = experiments; sum act = all activity run time from the histories;")
    print("overhead/exp = (wall - sum act / C) / N. Right of '|', medians from the histories:")
    print("workflow-task latency (Scheduled->Started), child start (Initiated->ChildStarted) and")
    print("activity queue time (Scheduled->Started; 0 when dispatched eagerly); wf tasks/exp counts the")
    print("workflow tasks of the coordinator and both children per experiment.")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)  # a one-parameter model: no OpenMP pools competing for the cores
    levels = [args.max_concurrency] + ([] if args.no_serial or args.max_concurrency == 1 else [1])
    runs: list[RunFigures] = []
    with tempfile.TemporaryDirectory(prefix="tml-bench-orch-", dir=args.tmp) as tmp:
        server = DevServer(port=_free_port(), headless=True, data_dir=f"{tmp}/server")
        await asyncio.to_thread(server.start)
        try:
            client = await connect(server.address)
            timer = ActivityTimer()
            for topology in args.topologies:
                async with contextlib.AsyncExitStack() as stack:
                    for worker in workers(client, tmp, topology, args.max_concurrency, timer):
                        await stack.enter_async_context(worker)
                    await run_once(client, timer, 4, 2, topology, tmp)  # warm-up: imports, threads, caches
                    for level in levels:
                        print(f"{topology}: {args.experiments} no-op experiments, max_concurrency={level} ...",
                              flush=True)
                        runs.append(await run_once(client, timer, args.experiments, level, topology, tmp))
        finally:
            server.stop()
    report(runs)


def _topologies(value: str) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    if not chosen or set(chosen) - set(TOPOLOGIES):
        raise argparse.ArgumentTypeError(f"choose from {','.join(TOPOLOGIES)}")
    return chosen


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=50, help="no-op experiments per run (default 50)")
    parser.add_argument("--max-concurrency", type=int, default=10, help="coordinator concurrency (default 10)")
    parser.add_argument("--no-serial", action="store_true", help="skip the max_concurrency=1 run")
    parser.add_argument("--tmp", default=None,
                        help="directory for the server database and stores (default: the system temp dir; "
                             "e.g. /dev/shm to take disk syncs out of the figures)")
    parser.add_argument("--topologies", type=_topologies, default=list(TOPOLOGIES),
                        help="comma-separated: single (one worker and queue), roles (a worker and queue "
                             "per role); default both")
    asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    os._exit(0)  # skip finalization: the SDK's runtime threads can crash it (temporalio/sdk-python#300)
