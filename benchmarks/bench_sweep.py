"""Orchestration cost per sweep trial, against a bare Temporal floor and Optuna, in one process.

On a local embedded dev server (SQLite, headless, temporary data directory) with an in-process
worker, after a warm-up:

* **floor**: one parent workflow running N children, each one no-op activity, C at a time (the least a
  durable trial can cost on Temporal: one child workflow + one activity).
* **sweep (trivial children)**: ``SweepWorkflow`` (random searcher) running N trials at
  ``max_concurrency`` C, each a training child and an evaluation child that run one no-op activity
  each: the cost of the sweep's own machinery (suggestions, audit, bookkeeping, two children).
* **sweep (no-op trainable)**: the same through the real ``TrainingWorkflow``/``EvalWorkflow`` and the
  real ``train``/``evaluate`` activities over a one-parameter model (``max_steps=1``).
* each sweep again with ``evaluate_in_training`` (the training activity evaluates; no evaluation
  child): one child workflow and one activity per trial, as in the floor.
* **optuna**: ``study.optimize`` of a no-op objective with a durable journal-file storage, if installed.
* **ray tune**: ``Tuner.fit`` of ``--ray-trials`` no-op function trials at concurrency C in a subprocess
  (``benchmarks/_ray_noop.py``), if installed; ``ray.init`` is not counted.

Prints wall time per trial (the fastest of ``--repeats`` interleaved runs: the machine may be shared),
the CPU time of this process per trial (client and worker, not the server: steadier than wall time
on a busy machine), their ratios to the floor, and the events per trial of the parent's history.

    python benchmarks/bench_sweep.py [--trials 200] [--max-concurrency 8] [--no-real]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import torch
from _sweep_bench_workflows import WORKFLOWS, FloorParent, NoopSweep, TrivialSweep, noop
from bench_orchestration import NoopTrainable, tiny_data
from temporalio import activity
from temporalio.client import Client, WorkflowHandle

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.messages import TRAIN, TrainOutcome, TrainRequest
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.sweep import SweepActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.search import Float, RandomSearcher, SearchSpace
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.sweeps import SweepInput, SweepResult
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.worker import create_worker

QUEUE = "bench-sweep"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_activities(tmp: str, concurrency: int, table_root: str | None = None,
                     trial_seconds: float = 0.0) -> list[Any]:
    """The activities of the sweep benchmarks: the no-op one, snapshot, train and evaluate over a no-op
    trainable (a store under ``tmp``), and the sweep activities. ``trial_seconds``: each training
    activity first waits this long (asleep, outside the training loop: threaded trainings take their
    steps one at a time), so trials last without loading the machine."""
    store = SnapshotStore(tmp)
    trainables = {"noop": NoopTrainable()}
    training = TrainingActivities(trainables=trainables, snapshot_store=store, checkpoint_root=f"{tmp}/ckpt",
                                  max_concurrent_trainings=concurrency)
    train: Any = training.train
    if trial_seconds:
        real = training.train

        @activity.defn(name=TRAIN)
        async def lasting_train(req: TrainRequest) -> TrainOutcome:
            await asyncio.sleep(trial_seconds)
            return await real(req)

        train = lasting_train
    return [
        noop, *SnapshotActivities(store, generators={"tiny": tiny_data}).activities(),
        train, training.predict,
        *EvalActivities(trainables=trainables, snapshot_store=store).activities(),
        *SweepActivities(table_root=table_root).activities(),
    ]


def sweep_input(n: int, concurrency: int, run_id: str, trainable: str, in_training: bool,
                reports: bool = True) -> SweepInput:
    base = TrainConfig(trainable=trainable, max_steps=1, batch_size=4, device="cpu", hparams={"x": 0.0})
    return SweepInput(base=base, space=SearchSpace({"hparams.x": Float(0.0, 1.0)}), searcher=RandomSearcher(),
                      n_trials=n, max_concurrency=concurrency, objective="loss", direction="minimize",
                      dataset=DatasetSource(generator="tiny"), run_id=run_id, progress_every_seconds=60,
                      eval_split="train", evaluate_in_training=in_training, report_progress=reports)


async def time_floor(client: Client, n: int, c: int) -> tuple[float, int]:
    start = time.perf_counter()
    handle = await client.start_workflow(FloorParent.run, args=[n, c], id=f"floor-{uuid.uuid4().hex[:6]}",
                                         task_queue=QUEUE)
    await handle.result()
    wall = time.perf_counter() - start
    return wall, len((await handle.fetch_history()).events)


async def time_sweep(client: Client, workflow_run: Any, n: int, c: int,
                     in_training: bool = False, reports: bool = True) -> tuple[float, int]:
    run_id = f"sweep-{uuid.uuid4().hex[:6]}"
    start = time.perf_counter()
    handle: WorkflowHandle[Any, SweepResult] = await client.start_workflow(
        workflow_run, sweep_input(n, c, run_id, "noop", in_training, reports), id=run_id, task_queue=QUEUE)
    result = await handle.result()
    wall = time.perf_counter() - start
    if result.n_done != n:
        raise SystemExit(f"only {result.n_done} of {n} trials finished: {result.trials[0].row.error}")
    events = 0
    async for wf in client.list_workflows(f'WorkflowId = "{run_id}"'):
        history = await client.get_workflow_handle(run_id, run_id=wf.run_id).fetch_history()
        events += len(history.events)
    return wall, events


def time_optuna(n: int, tmp: str) -> float | None:
    try:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
    except ImportError:
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(Path(tmp) / "optuna.log")))
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    start = time.perf_counter()
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=n)
    return time.perf_counter() - start


def time_ray(n: int, c: int, tmp: str) -> dict[str, float] | None:
    """Ray Tune's ``Tuner.fit`` of ``n`` no-op trials at concurrency ``c`` (in a subprocess), if installed."""
    import importlib.util
    import json
    import subprocess

    if importlib.util.find_spec("ray") is None:
        return None
    script = Path(__file__).with_name("_ray_noop.py")
    out = subprocess.run([sys.executable, str(script), str(n), str(c), f"{tmp}/ray"],
                         capture_output=True, text=True, timeout=3600, check=True)
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


async def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    n, c = args.trials, args.max_concurrency
    rows: list[tuple[str, float, int]] = []
    cpus: dict[int, float] = {}  # CPU seconds of this process (client + worker; not the server)
    with tempfile.TemporaryDirectory(prefix="tml-bench-sweep-") as tmp:
        server = DevServer(port=_free_port(), headless=True, data_dir=f"{tmp}/server")
        await asyncio.to_thread(server.start)
        try:
            client = await connect(server.address)
            activities = bench_activities(tmp, c)
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(create_worker(
                    client, task_queue=QUEUE, workflows=WORKFLOWS, activities=activities,
                    activity_threads=max(8, c)))
                await time_floor(client, 8, 4)  # warm-up
                await time_sweep(client, TrivialSweep.run, 8, 4)
                variants = [
                    ("floor (child + activity)", lambda: time_floor(client, n, c)),
                    ("sweep, trivial children", lambda: time_sweep(client, TrivialSweep.run, n, c)),
                    ("  + evaluate_in_training", lambda: time_sweep(client, TrivialSweep.run, n, c, True)),
                ]
                if not args.no_real:
                    variants += [
                        ("sweep, no-op trainable", lambda: time_sweep(client, NoopSweep.run, n, c)),
                        ("  + evaluate_in_training", lambda: time_sweep(client, NoopSweep.run, n, c, True)),
                        ("    + no progress reports", lambda: time_sweep(client, NoopSweep.run, n, c, True, False)),
                    ]
                best: dict[int, tuple[float, int]] = {}
                for k in range(args.repeats):  # interleaved repeats; the fastest of each is kept
                    for v, (name, measure) in enumerate(variants):
                        print(f"[{k + 1}/{args.repeats}] {name.strip()}: {n} trials at concurrency {c} ...",
                              flush=True)
                        cpu = time.process_time()
                        wall, events = await measure()
                        cpu = time.process_time() - cpu
                        if v not in best or wall < best[v][0]:
                            best[v] = (wall, events)
                        if v not in cpus or cpu < cpus[v]:
                            cpus[v] = cpu
                rows += [(name, *best[v]) for v, (name, _) in enumerate(variants)]
        finally:
            server.stop()
        optuna_wall = time_optuna(n, tmp)
        print(f"ray tune: {args.ray_trials} no-op trials at concurrency {c} ...", flush=True)
        ray = time_ray(args.ray_trials, c, tmp) if args.ray_trials else None
    floor, floor_cpu = rows[0][1], cpus[0]
    print()
    print(f"{n} trials, concurrency {c}, embedded dev server (SQLite); python {sys.version.split()[0]}")
    print(f"{'':<28} {'wall s':>7} {'ms/trial':>9} {'x floor':>8} {'worker cpu ms/trial':>20} "
          f"{'x floor':>8} {'events/trial':>13}")
    for v, (name, wall, events) in enumerate(rows):
        per = f"{events / n:.1f}"
        print(f"{name:<28} {wall:>7.2f} {wall / n * 1000:>9.1f} {wall / floor:>8.2f} "
              f"{cpus[v] / n * 1000:>20.1f} {cpus[v] / floor_cpu:>8.2f} {per:>13}")
    if optuna_wall is not None:
        print(f"{'optuna (journal file)':<28} {optuna_wall:>7.2f} {optuna_wall / n * 1000:>9.1f} "
              f"{optuna_wall / floor:>8.2f} {'-':>13}")
    else:
        print("optuna: not installed")
    if ray is None:
        print("ray tune: not measured (not installed; pip install 'temporal-ml[bench]')")
        return
    per = ray["fit"] / ray["trials"]
    print(f"{'ray tune (Tuner.fit)':<28} {ray['fit']:>7.2f} {per * 1000:>9.1f} {per * n / floor:>8.2f} "
          f"{'-':>20} {'-':>8} {'-':>13}   ({ray['trials']:.0f} trials, {ray['errors']:.0f} errors; "
          f"ray.init {ray['init']:.1f} s not counted)")
    for name, wall, _ in rows:
        if name.startswith("sweep") or "evaluate_in_training" in name:
            print(f"ray tune per trial / {name.strip()} per trial: {per / (wall / n):.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--no-real", action="store_true", help="skip the run through the real training stack")
    parser.add_argument("--ray-trials", type=int, default=50,
                        help="trials for Ray Tune, if installed (slow: about 1-2 s each here; 0 skips it)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="interleaved repeats of every variant; the fastest is reported (default 2)")
    asyncio.run(main(parser.parse_args()))
