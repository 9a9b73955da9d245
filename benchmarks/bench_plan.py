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
import hashlib
import random
import tempfile
import time
from pathlib import Path

from pydantic_core import to_json

from temporal_ml.activities.plan import PlanRequest, PlanRow, plan_next
from temporal_ml.search import AshaScheduler, Float, RandomSearcher, SearchSpace
from temporal_ml.sweeps import TrialRow

PART_ROWS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--max-concurrency", type=int, default=100)
    parser.add_argument("--every", type=int, default=50, help="compare with a rebuild every N calls")
    args = parser.parse_args()
    space = SearchSpace({"hparams.lr": Float(0.01, 0.1)})
    sched = AshaScheduler(min_budget=1, max_budget=9, eta=3)
    root = Path(tempfile.mkdtemp(prefix="tml-bench-plan-"))
    parts: list[str] = []
    written: dict[int, TrialRow] = {}
    held: dict[int, TrialRow] = {}
    running: list[int] = []
    rng = random.Random(0)
    seq = started = calls = compared = 0
    indexed_s = compared_indexed_s = rebuilt_s = 0.0
    t0 = time.perf_counter()
    while True:
        slots = args.max_concurrency - len(running)
        if slots:
            common = dict(scheduler=sched, searcher=RandomSearcher(), space=space, seed=0, direction="maximize",
                          next_index=started, max_trials=args.trials, slots=min(slots, 64), results_seen=seq,
                          delete_unpromotable=False)
            req = PlanRequest(rows=[PlanRow.of(r) for r in held.values()], table_uri=str(root) if parts else None,
                              table_parts=list(parts), **common)  # type: ignore[arg-type]
            t = time.perf_counter()
            got = plan_next(req)
            took = time.perf_counter() - t
            indexed_s += took
            calls += 1
            if calls % args.every == 0:
                every_row = [PlanRow.of(r) for r in (written | held).values()]
                t = time.perf_counter()
                again = plan_next(PlanRequest(rows=every_row, **common))  # type: ignore[arg-type]
                rebuilt_s += time.perf_counter() - t
                compared_indexed_s += took
                compared += 1
                assert [(a.action, a.index, a.params) for a in again.actions] == [
                    (a.action, a.index, a.params) for a in got.actions], "the index answers otherwise"
            for a in got.actions:
                if a.action == "start":
                    row = held[a.index] = TrialRow(index=a.index, params=a.params, bracket=a.bracket, rung=0)
                    started += 1
                else:
                    row = held.get(a.index) or written[a.index].model_copy(deep=True)
                    held[a.index] = row
                    row.state = "training"
                row.rung, row.max_steps = a.rung, a.budget
                running.append(a.index)
            if got.done:
                break
        index = running.pop(rng.randrange(len(running)))
        row = held[index]
        value = random.Random(f"{index}/{row.rung}").random()
        row.state, row.value, row.step, row.result_seq = "done", value, row.max_steps, seq
        row.checkpoint_uri, row.model_sha256 = "file:///ckpt", "ab" * 32
        row.rung_values.append(value)
        row.rung_seqs.append(seq)
        seq += 1
        finished = [r for r in held.values() if r.state == "done"][:PART_ROWS]
        if len(finished) == PART_ROWS:  # the sweep writes a part of its finished rows
            data = to_json([r.model_dump(mode="json") for r in finished], inf_nan_mode="strings")
            (root / f"part-{len(parts):05d}.json").write_bytes(data)
            parts.append(hashlib.sha256(data).hexdigest())
            for r in finished:
                written[r.index] = held.pop(r.index)
    per_indexed = compared_indexed_s / max(compared, 1) * 1000
    per_rebuilt = rebuilt_s / max(compared, 1) * 1000
    print(f"{args.trials} trials, {args.max_concurrency} at once: {calls} plans, {seq} rung trainings, "
          f"{time.perf_counter() - t0:.1f} s in all")
    print(f"plan: {indexed_s:.1f} s in all, {indexed_s / calls * 1000:.2f} ms a call with the worker's index")
    print(f"at {compared} sampled calls: indexed {per_indexed:.2f} ms, rebuilt from every row {per_rebuilt:.2f} ms, "
          f"ratio {per_indexed / per_rebuilt:.2f} (same answers)")


if __name__ == "__main__":
    main()
