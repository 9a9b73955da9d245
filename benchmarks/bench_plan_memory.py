"""A worker's memory over a simulated ASHA sweep's plans (no Temporal): does it grow with N?

    python benchmarks/bench_plan_memory.py                  # 10,000 trials, 100 at once, rungs 1/3/9
    python benchmarks/bench_plan_memory.py --glibc-defaults # malloc as glibc sets it

Drives ``plan_next`` as a scheduled sweep does, in this process, which holds nothing else that
grows: free slots ask for a plan, trials end in a random order with a checkpoint each, the sweep
deletes what the plan names (bringing a written row back, as the sweep does), and every 100
finished rows go to a results table part. The process limits malloc as an orchestration worker
does (:func:`~temporal_ml.worker.limit_malloc_arenas`) unless ``--glibc-defaults``.

Prints the RSS, glibc malloc's memory in use and free, and the rows the rung index holds at N/10,
N/2 and N trials started; then the RSS slope over the second half and the growth from N/10 to the
end, against what the rung index's rows account for (tracemalloc's bytes a row, measured in the same
run on a copy of the rows). A minute or two at 10,000 trials. Asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc

from _plan_sim import SimulatedSweep, current_rss_mb, malloc_mb

from temporal_ml.activities._rung_index import RungIndex, rows_held
from temporal_ml.activities.plan import WrittenRow, plan_next
from temporal_ml.search import AshaScheduler, Float, RandomSearcher, SearchSpace
from temporal_ml.sweeps import TrialRow
from temporal_ml.worker import limit_malloc_arenas


def _index_bytes_a_row(parts: list[bytes], scheduler: AshaScheduler) -> tuple[float, int]:
    """What a rung index keeps a row, as tracemalloc counts it, and its rows: the rows of
    ``parts`` (a table's parts as written) read and put as a worker does, all inside the count."""
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot()
        index = RungIndex(scheduler, "maximize")
        for k, data in enumerate(parts):
            index.put_all([WrittenRow.of(TrialRow.model_validate(raw), k) for raw in json.loads(data)])
        gc.collect()
        kept = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(start, "filename"))
    finally:
        tracemalloc.stop()
    return kept / max(len(index.rows), 1), len(index.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--max-concurrency", type=int, default=100)
    parser.add_argument("--glibc-defaults", action="store_true", help="leave malloc's arenas and threshold as set")
    args = parser.parse_args()
    if not args.glibc_defaults:
        limit_malloc_arenas()
    space = SearchSpace({"hparams.lr": Float(0.01, 0.1)})
    sched = AshaScheduler(min_budget=1, max_budget=9, eta=3)
    sim = SimulatedSweep()
    calls = 0
    plan_s = 0.0
    marks = {args.trials // 10: "N/10", args.trials // 2: "N/2", args.trials: "N"}
    seen: dict[int, float] = {}
    t0 = time.perf_counter()
    while True:
        slots = sim.slots(args.max_concurrency)
        if slots:
            req = sim.request(scheduler=sched, searcher=RandomSearcher(), space=space, seed=0, direction="maximize",
                              max_trials=args.trials, slots=min(slots, 64))
            t = time.perf_counter()
            got = plan_next(req)
            plan_s += time.perf_counter() - t
            calls += 1
            if not sim.apply(got):
                break
        sim.finish_one()
        for mark, label in marks.items():
            if sim.started >= mark and mark not in seen:
                gc.collect()
                seen[mark] = current_rss_mb()
                used, free = malloc_mb()
                print(f"{label}: {sim.started} trials started, RSS {seen[mark]:.1f} MB, malloc in use {used:.1f} MB, "
                      f"free {free:.1f} MB, rung index {rows_held()} rows, {plan_s / calls * 1000:.2f} ms a plan",
                      flush=True)
    end = current_rss_mb()
    half, tenth = seen[args.trials // 2], seen[args.trials // 10]
    per_row, written = _index_bytes_a_row([sim.part_path(k).read_bytes() for k in range(len(sim.parts))], sched)
    print(f"{args.trials} trials, {args.max_concurrency} at once: {calls} plans ({plan_s / calls * 1000:.2f} ms a "
          f"plan), {time.perf_counter() - t0:.0f} s in all")
    print(f"RSS {end - half:+.1f} MB over the second half ({(end - half) / (args.trials / 2) * 1000:+.2f} MB per 1,000 "
          f"trials), {end - tenth:+.1f} MB from N/10 to the end; the rung index keeps {per_row:.0f} B a row, "
          f"{per_row * written / 2**20:.1f} MB for the {written} rows written")

if __name__ == "__main__":
    main()
