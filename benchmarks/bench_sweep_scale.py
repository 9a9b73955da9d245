"""A sweep at the size people run it: N no-op trials through the real training stack, against the floor.

On an embedded dev server (SQLite, headless, temporary data directory) with an in-process worker:

* **floor**: one parent workflow running children that each run one no-op activity, C at a time (the
  least a durable trial costs on Temporal), measured on ``min(N, 2000)`` trials (one parent's history
  cannot hold 10,000 children: the floor is a per-trial cost).
* **sweep**: ``SweepWorkflow`` (random searcher; ``--scheduler asha``: with the ASHA scheduler,
  rungs 1/3/9) running N trials at ``max_concurrency`` C through the real ``TrainingWorkflow`` and
  ``train`` activity over a one-parameter model, evaluated inside training, no progress reports.

It checks every trial ran exactly once (every index once in the results; as many training runs as
trials, or as rung runs for ASHA), measures the largest event of the sweep's histories (an upper bound
of its largest payload), the sweep's runs (continue-as-new) and this process's peak RSS (client and
worker), and prints as its last line::

    scale: N trials, C at once, scheduler S: X ms/trial, floor F ms/trial, ratio R, largest payload B bytes, runs K, worker peak RSS M MB (during the sweep: A MB at N/10 trials, H MB at N/2, Z MB at N: the slope over the
    second half; rows the scheduler's rung index holds)

With ASHA a trial trains once per rung it reaches, and the floor is one child per trial: the ratio is
then per training run (the line also gives the trainings and the ms per training run).

    python benchmarks/bench_sweep_scale.py [--trials 10000] [--max-concurrency 100] [--scheduler none|asha]

The worker limits glibc malloc as an orchestration-only ``temporal-ml worker`` does
(:func:`~temporal_ml.worker.limit_malloc_arenas`), unless ``--glibc-defaults``.
``--trace-memory`` also prints where the Python heap grew from N/10 trials to the end, by file
(tracemalloc slows everything: its timings are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from typing import Any

import torch
from _plan_sim import Heaps, current_rss_mb, peak_rss_mb
from _sweep_bench_workflows import WORKFLOWS, FloorParent, NoopSweep
from bench_sweep import _free_port, bench_activities
from temporalio.client import Client
from temporalio.service import RPCError

from temporal_ml.activities._rung_index import rows_held
from temporal_ml.activities.plan import PLAN
from temporal_ml.activities.sweep import read_sweep_table
from temporal_ml.client import connect
from temporal_ml.devserver import DevServer
from temporal_ml.search import AshaScheduler, Float, RandomSearcher, SearchSpace
from temporal_ml.sweeps import SweepInput
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.worker import limit_malloc_arenas

QUEUE = "bench-scale"
FLOOR_MAX = 2000


async def _floor(client: Client, n: int, c: int) -> float:
    start = time.perf_counter()
    await client.execute_workflow(FloorParent.run, args=[n, c], id=f"floor-{uuid.uuid4().hex[:6]}",
                                  task_queue=QUEUE)
    return (time.perf_counter() - start) / n * 1000


def _inputs(n: int, c: int, scheduler: str, run_id: str, tables: str) -> SweepInput:
    base = TrainConfig(trainable="noop", max_steps=1, batch_size=4, device="cpu", hparams={"x": 0.0},
                       eval_split="train", checkpoint_every_steps=1, async_checkpoints=False)
    common: dict[str, Any] = dict(
        base=base, space=SearchSpace({"hparams.x": Float(0.0, 1.0)}), searcher=RandomSearcher(),
        n_trials=n, max_concurrency=c, objective="loss", direction="minimize",
        dataset=DatasetSource(generator="tiny"), run_id=run_id, progress_every_seconds=600,
        heartbeat_timeout_seconds=120, table_root=tables)
    asha = AshaScheduler(min_budget=1, max_budget=9, eta=3) if scheduler == "asha" else None
    return SweepInput(**common, evaluate_in_training=True, report_progress=False, scheduler=asha,
                      delete_unpromotable=False)


async def _sweep(client: Client, n: int, c: int, scheduler: str, tables: str,
                 trace_memory: bool = False) -> dict[str, Any]:
    run_id = f"scale-{uuid.uuid4().hex[:6]}"
    inp = _inputs(n, c, scheduler, run_id, tables)
    samples: list[tuple[int, float]] = []  # (trials started, worker RSS now) every 30 s
    heaps: list[Heaps] = []  # the allocators and threads at each sample
    early: tuple[tracemalloc.Snapshot, Counter[str]] | None = None  # --trace-memory: at N/10 trials
    start = time.perf_counter()
    handle = await client.start_workflow(NoopSweep.run, inp, id=run_id, task_queue=QUEUE)
    while True:  # progress every 30 s
        try:
            result = await asyncio.wait_for(asyncio.shield(handle.result()), timeout=30)
            break
        except asyncio.TimeoutError:
            try:
                status = await handle.query("sweep_status", args=[0, 0])
            except RPCError as e:  # a busy worker (--trace-memory slows it) may miss a query: ask again later
                print(f"  {time.perf_counter() - start:7.0f} s: status query unanswered ({e.message})", flush=True)
                continue
            rss, h = current_rss_mb(), Heaps.now()
            samples.append((status.get("started") or 0, rss))
            heaps.append(h)
            if trace_memory and early is None and samples[-1][0] >= n / 10:
                early = tracemalloc.take_snapshot(), _objects()
            print(f"  {time.perf_counter() - start:7.0f} s: {status.get('started')} started, "
                  f"{status.get('running')} running, {status.get('written')} in the table, "
                  f"run {status.get('runs')}, RSS {rss:.0f} MB (peak {peak_rss_mb():.0f}; malloc {h.malloc_used:.0f} MB in use, "
                  f"{h.malloc_free:.0f} MB free; pymalloc {h.pymalloc_arenas:.0f} MB of arenas, "
                  f"{h.pymalloc_held:.0f} MB held; {h.threads} threads)",
                  flush=True)
    wall = time.perf_counter() - start
    samples.append((n, current_rss_mb()))  # before the checks below read the table and histories
    heaps.append(Heaps.now())
    if trace_memory and early is not None:
        _heap_growth(early, (tracemalloc.take_snapshot(), _objects()), samples, n)
    # exactly once: every index once in the results, and as many training runs as trainings (with
    # ASHA: a run per rung a trial reported at, or failed toward)
    rows = read_sweep_table(result.table_uri) if result.table_uri else [t.row.model_dump() for t in result.trials]
    indices = [r["index"] for r in rows]
    trainings = n if scheduler == "none" else sum(
        len(r.get("rung_values", [])) + (r["state"] in ("failed", "stopped")) for r in rows)
    if sorted(indices) != list(range(n)):
        raise SystemExit(f"trials missing or repeated: {len(indices)} rows, {len(set(indices))} distinct of {n}")
    runs = await client.count_workflows(f'TmlExperiment = "{run_id}" AND TmlKind = "train"')
    for _ in range(60):  # visibility is eventually consistent
        if runs.count >= trainings:
            break
        await asyncio.sleep(1)
        runs = await client.count_workflows(f'TmlExperiment = "{run_id}" AND TmlKind = "train"')
    if runs.count != trainings:
        raise SystemExit(f"{runs.count} training runs for {trainings} trainings: not exactly once")
    from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause

    largest, sweep_runs, unhandled, plans, events = 0, 0, 0, 0, 0
    by_type: dict[str, int] = {}  # the sweep's history bytes by event type
    rollovers: list[float] = []  # when each run after the first started
    async for wf in client.list_workflows(f'WorkflowId = "{run_id}"'):
        sweep_runs += 1
        rollovers.append(wf.start_time.timestamp())
        async for event in client.get_workflow_handle(run_id, run_id=wf.run_id).fetch_history_events():
            largest = max(largest, event.ByteSize())
            events += 1
            name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
            by_type[name] = by_type.get(name, 0) + event.ByteSize()
            plans += (event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                      and event.activity_task_scheduled_event_attributes.activity_type.name == PLAN)
            # a task whose commands (e.g. continue-as-new) came with new events pending: done again
            unhandled += (event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                          and event.workflow_task_failed_event_attributes.cause
                          == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND)
    failed = getattr(result, "n_failed", 0)
    if scheduler == "none":
        print(_occupancy(rows, c, sorted(rollovers)[1:]), flush=True)
    return {"ms": wall / n * 1000, "largest": largest, "runs": sweep_runs, "failed": failed,
            "trainings": trainings, "unhandled": unhandled, "rss": samples, "heaps": heaps, "plans": plans, "events": events,
            "by_type": by_type}


async def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    if not args.glibc_defaults:  # as an orchestration-only `temporal-ml worker` does
        print(f"malloc: two arenas, blocks of 128 KB and more mapped on their own "
              f"({'set' if limit_malloc_arenas() else 'left as the environment sets them'})", flush=True)
    n, c = args.trials, args.max_concurrency
    with tempfile.TemporaryDirectory(prefix="tml-bench-scale-") as tmp:
        server = DevServer(port=_free_port(), headless=True, data_dir=f"{tmp}/server")
        await asyncio.to_thread(server.start)
        try:
            client = await connect(server.address)
            activities = bench_activities(tmp, c, table_root=f"{tmp}/tables", trial_seconds=args.trial_seconds)
            from temporal_ml.worker import create_worker

            async with create_worker(client, task_queue=QUEUE, workflows=WORKFLOWS, activities=activities,
                                     activity_threads=max(8, c)):
                await _floor(client, 8, 4)  # warm-up
                await _sweep(client, 8, 4, args.scheduler, f"{tmp}/tables")
                rss_warm = peak_rss_mb()
                floor_n = min(n, FLOOR_MAX)
                print(f"floor: {floor_n} children at concurrency {c} ...", flush=True)
                floor = await _floor(client, floor_n, c)
                print(f"sweep: {n} trials at concurrency {c}, scheduler {args.scheduler} ...", flush=True)
                if args.trace_memory:
                    tracemalloc.start()
                got = await _sweep(client, n, c, args.scheduler, f"{tmp}/tables", args.trace_memory)
        finally:
            server.stop()
    per_training = got["ms"] * n / got["trainings"]  # = ms/trial without a scheduler
    ratio = per_training / floor
    print(f"worker peak RSS after warm-up {rss_warm:.0f} MB; {got['trainings']} trainings, "
          f"{got['failed']} failed; {got['unhandled']} sweep workflow tasks redone for new events "
          "(UnhandledCommand: a continue-as-new waits for a task with no new event); "
          f"{got['plans']} plans, {got['events']} sweep history events ({got['events'] / got['trainings']:.1f} "
          "a training)")
    total = sum(got["by_type"].values())
    print(f"sweep history: {total / 2**20:.1f} MB over {got['runs']} runs; by event type: " + ", ".join(
        f"{name} {size / 2**20:.1f} MB" for name, size in sorted(got["by_type"].items(), key=lambda kv: -kv[1])[:6]))
    print(f"scale: {n} trials, {c} at once, scheduler {args.scheduler}: {got['ms']:.1f} ms/trial, "
          + (f"({got['trainings']} trainings: {per_training:.1f} ms each), " if args.scheduler != "none" else "")
          + f"floor {floor:.1f} ms/trial, ratio {ratio:.2f}, largest payload {got['largest']} bytes, "
          f"runs {got['runs']}, worker peak RSS {peak_rss_mb():.0f} MB ({_growth(got['rss'], got['heaps'], n)})")


def _occupancy(rows: list[dict[str, Any]], c: int, rollovers: list[float]) -> str:
    """How full the slots stayed, from each trial's start and finish (the sweep's own times): the
    mean number running, and the share of the time fewer than half the slots were taken, from the
    first start to the last (the ramp-down after it is left out); and across each rollover (the
    start of each run after the first), the mean number running from 3 s before it to 3 s after."""
    import datetime as dt

    def at(value: str | dt.datetime) -> float:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value.timestamp()

    spans = [(at(r["started"]), at(r["finished"])) for r in rows if r.get("started") and r.get("finished")]
    if not spans:
        return "slots: no trial times"
    edges = sorted([(s, 1) for s, _ in spans] + [(f, -1) for _, f in spans])
    first, last_start = min(s for s, _ in spans), max(s for s, _ in spans)
    running, prev, area, low = 0, first, 0.0, 0.0
    for t, step in edges:
        if t > last_start:
            break
        if t > prev:
            area += running * (t - prev)
            low += (t - prev) if running < c / 2 else 0.0
        running, prev = running + step, t
    span = max(last_start - first, 1e-9)
    around = [sum(max(0.0, min(f, t + 3) - max(s, t - 3)) for s, f in spans) / 6
              for t in rollovers if first + 3 <= t <= last_start - 3]
    starts = sorted(s for s, _ in spans)
    gaps = []  # per rollover: seconds from the last trial started before it, and to the first after
    for t in rollovers:
        at = bisect.bisect_left(starts, t)
        if 0 < at < len(starts):
            gaps.append(f"{t - starts[at - 1]:.1f}+{starts[at] - t:.1f}")
    across = (f"; across the {len(around)} rollovers mid-sweep (3 s either side): {min(around):.1f} to "
              f"{max(around):.1f} running, mean {sum(around) / len(around):.1f}; no trial started for "
              f"(before+after each rollover, s) {', '.join(gaps)}" if around else "")
    return (f"slots (first start to last start, {span:.0f} s): {area / span:.1f} of {c} running on average, "
            f"fewer than {c // 2} running {100 * low / span:.1f}% of the time" + across)


def _objects() -> Counter[str]:
    """Live objects the garbage collector tracks (containers), by type."""
    gc.collect()
    return Counter(type(o).__name__ for o in gc.get_objects())


def _heap_growth(early: tuple[tracemalloc.Snapshot, Counter[str]], late: tuple[tracemalloc.Snapshot, Counter[str]],
                 samples: list[tuple[int, float]], n: int) -> None:
    """Where the Python heap grew from N/10 trials to the end (``--trace-memory``): by file
    (tracemalloc, started when the sweep starts: frames of one line), and the live objects by type,
    against the RSS growth over the same trials (the rest is outside Python's allocator: the SDK's
    core, fragmentation)."""
    rss_early = next(rss for started, rss in samples if started >= n / 10)
    stats = late[0].compare_to(early[0], "filename")
    grown = sum(s.size_diff for s in stats)
    print(f"memory from {n // 10} trials to {n}: RSS +{samples[-1][1] - rss_early:.1f} MB, "
          f"Python heap (tracemalloc) {grown / 2**20:+.1f} MB; largest growth by file:")
    for stat in stats[:10]:
        print(f"  {stat.size_diff / 2**20:+7.2f} MB  {stat.count_diff:+8d} blocks  {stat.traceback[0].filename}")
    objects = late[1].copy()
    objects.subtract(early[1])
    print("  live objects grown by type: " + ", ".join(f"{name} {k:+d}" for name, k in objects.most_common(10)))


def _growth(samples: list[tuple[int, float]], heaps: list[Heaps], n: int) -> str:
    """The worker's RSS during the sweep: after a tenth of its trials started, at half, and at its
    end, with the slope over the second half (the first trials warm the worker's caches up; the
    peak also counts the checks after the sweep, which read the whole table and the histories);
    glibc malloc's memory in use and free over the same half (:func:`_plan_sim.malloc_mb`), and
    pymalloc's arenas and the bytes its objects hold (:func:`_plan_sim.pymalloc_mb`), and the
    process's threads (each with its stack; activity threads are made up to ``activity_threads`` as
    the activities running at once peak); and what the
    plan's index of written rows holds at the end (:func:`rows_held`: rows the worker keeps for the
    scheduler, at most ``ROWS_MAX``)."""
    def at(k: float) -> int:
        return next((i for i, (started, _) in enumerate(samples) if started >= k), len(samples) - 1)

    early, half, end = at(n / 10), at(n / 2), len(samples) - 1
    span = samples[end][0] - samples[half][0]
    h, e = heaps[half], heaps[end]
    slope = (f"{(samples[end][1] - samples[half][1]) * 1000 / span:+.1f} MB per 1000 trials over the second half"
             if span >= n / 4 else "too short to sample the second half")
    return (f"during the sweep: {samples[early][1]:.0f} MB at {n // 10} trials, {samples[half][1]:.0f} MB at "
            f"{samples[half][0]}, {samples[end][1]:.0f} MB at {n}: {slope} (malloc in use {h.malloc_used:.0f} to "
            f"{e.malloc_used:.0f} MB, free {h.malloc_free:.0f} to {e.malloc_free:.0f} MB; pymalloc arenas "
            f"{h.pymalloc_arenas:.0f} to {e.pymalloc_arenas:.0f} MB holding {h.pymalloc_held:.0f} to "
            f"{e.pymalloc_held:.0f} MB; threads {h.threads} to {e.threads}); rung index {rows_held()} rows")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--max-concurrency", type=int, default=100)
    parser.add_argument("--scheduler", choices=["none", "asha"], default="none")
    parser.add_argument("--trial-seconds", type=float, default=0.0,
                        help="each training first sleeps this long (trials that last: how full the slots stay "
                             "across rollovers when the server is not the bottleneck; the floor stays no-op)")
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="leave glibc malloc's arenas and mmap threshold at their defaults (by default the "
                             "worker limits them as an orchestration-only `temporal-ml worker` does)")
    parser.add_argument("--trace-memory", action="store_true",
                        help="attribute the worker's memory growth (tracemalloc: slow, not for timing)")
    asyncio.run(main(parser.parse_args()))
