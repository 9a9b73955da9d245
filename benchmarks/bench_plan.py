"""The ``PLAN`` activity's cost over a simulated ASHA sweep: a worker's rung index against a rebuild.

    python benchmarks/bench_plan.py                  # 10,000 trials, 100 at once, rungs 1/3/9
    python benchmarks/bench_plan.py --trials 3000

Drives ``plan_next`` as a scheduled sweep does (no Temporal): free slots ask for a plan, trials end
in a random order, every 100 finished rows go to a results table part. Each call is timed as the
sweep makes it (the worker's index of the written parts, warm), and every ``--every``-th call is
also answered the way the plan worked before the index: the rung table rebuilt from every row (all
rows in the request, no index), in the same process on the same state. Prints both, their ratio,
and the answers' equality. Asserts nothing.
"""

from __future__ import annotations

import argparse
import time

from _plan_sim import SimulatedSweep

from temporal_ml.activities.plan import PlanRequest, PlanRow, plan_next
from temporal_ml.search import AshaScheduler, Float, RandomSearcher, SearchSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--max-concurrency", type=int, default=100)
    parser.add_argument("--every", type=int, default=50, help="compare with a rebuild every N calls")
    args = parser.parse_args()
    space = SearchSpace({"hparams.lr": Float(0.01, 0.1)})
    sched = AshaScheduler(min_budget=1, max_budget=9, eta=3)
    sim = SimulatedSweep(keep_written=True)
    assert sim.written is not None
    calls = compared = 0
    indexed_s = compared_indexed_s = rebuilt_s = 0.0
    t0 = time.perf_counter()
    while True:
        slots = sim.slots(args.max_concurrency)
        if slots:
            common = dict(scheduler=sched, searcher=RandomSearcher(), space=space, seed=0, direction="maximize",
                          max_trials=args.trials, slots=min(slots, 64), delete_unpromotable=False)
            req = sim.request(**common)
            t = time.perf_counter()
            got = plan_next(req)
            took = time.perf_counter() - t
            indexed_s += took
            calls += 1
            if calls % args.every == 0:
                every_row = [PlanRow.of(r) for r in (sim.written | sim.held).values()]
                t = time.perf_counter()
                again = plan_next(PlanRequest(rows=every_row, next_index=sim.started, results_seen=sim.seq,
                                              **common))  # type: ignore[arg-type]
                rebuilt_s += time.perf_counter() - t
                compared_indexed_s += took
                compared += 1
                assert [(a.action, a.index, a.params) for a in again.actions] == [
                    (a.action, a.index, a.params) for a in got.actions], "the index answers otherwise"
            if not sim.apply(got):
                break
        sim.finish_one()
    seq = sim.seq
    per_indexed = compared_indexed_s / max(compared, 1) * 1000
    per_rebuilt = rebuilt_s / max(compared, 1) * 1000
    print(f"{args.trials} trials, {args.max_concurrency} at once: {calls} plans, {seq} rung trainings, "
          f"{time.perf_counter() - t0:.1f} s in all")
    print(f"plan: {indexed_s:.1f} s in all, {indexed_s / calls * 1000:.2f} ms a call with the worker's index")
    print(f"at {compared} sampled calls: indexed {per_indexed:.2f} ms, rebuilt from every row {per_rebuilt:.2f} ms, "
          f"ratio {per_indexed / per_rebuilt:.2f} (same answers)")


if __name__ == "__main__":
    main()
