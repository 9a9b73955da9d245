"""Search on real training: an ASHA ladder against random search, at equal training steps and at equal
wall time, on SST-2.

For each seed, ``examples.bert_sweeps`` runs (each on its own embedded dev server and its own fresh
store, as a user would; a run pays its own tokenizing once):

* **ladder**: ``--mode ladder --searcher random``: ``--trials`` trials over rungs ``--min-budget``,
  ``x eta``, ... up to ``--steps`` (promotions continue the same run from its rung checkpoint);
* **random, equal steps**: ``--mode sweep --searcher random`` with as many trials to ``--steps`` as fit
  in the training steps the ladder used (rounded to the nearest whole trial): the wall-time ratio
  ladder / random (goal: at most 1.2);
* **random, equal wall time**: the same random search with more trials, cut at the ladder's sweep time:
  its best dev accuracy among the trials that finished within the ladder's sweep time (first trial
  started to last trial finished, from the workflows' own times) against the ladder's best (goal: the
  ladder wins on at least 2 of 3 seeds).

Both search the example's space (learning rate on a log scale, warm-up ratio), train a tiny BERT from a
config on GLUE SST-2 (``../shared/data/sst2``) and evaluate on its dev split. Besides the table it prints
what one run (a rung, or a random trial) costs besides training: the trainable's setup, evaluating and
loading measured in this process without and with the worker's setup cache, and, from each sweep, the
trainings' slot time outside their training loops per run (from the runs' ``metrics.jsonl``).

    python benchmarks/bench_ladder_vs_random.py [--seeds 0,1,2] [--trials 27] [--min-budget 30] [--steps 270]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def run(args: argparse.Namespace, store: Path, *extra: str) -> tuple[dict[str, Any], float]:
    """One starter run on a fresh embedded server and store: (its JSON result, wall seconds)."""
    cmd = [sys.executable, "-m", "examples.bert_sweeps.starter", "--embedded", "--json",
           "--dataset", str(args.dataset), "--steps", str(args.steps),
           "--max-concurrency", str(args.max_concurrency), *extra]
    env = {**os.environ, "TEMPORAL_ML_STORE": str(store)}
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout), time.perf_counter() - start


def _time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [t["row"] for t in result["trials"]]


def span(result: dict[str, Any]) -> float:
    """Sweep time: the first trial's start to the last one's finish (the workflows' own times)."""
    r = rows(result)
    return max(_time(x["finished"]) for x in r if x.get("finished")) - min(_time(x["started"]) for x in r)


def best_within(result: dict[str, Any], seconds: float) -> tuple[float | None, int]:
    """Best value among the trials finished within ``seconds`` of the first start, and how many."""
    r = rows(result)
    t0 = min(_time(x["started"]) for x in r)
    done = [x for x in r if x.get("finished") and x.get("value") is not None
            and _time(x["finished"]) - t0 <= seconds]
    return (max(x["value"] for x in done) if done else None), len(done)


def eval_seconds(result: dict[str, Any]) -> float:
    """Median time from a trial's last training end to its result: the evaluation child workflow and
    its activity (set-up, evaluating) and the sweep recording it."""
    r = [x for x in rows(result) if x.get("trained") and x.get("finished")]
    return statistics.median(_time(x["finished"]) - _time(x["trained"]) for x in r) if r else float("nan")


def summary(result: dict[str, Any]) -> tuple[int, float, int]:
    """(training steps spent, best dev accuracy of any trial, trials)."""
    r = rows(result)
    values = [x["value"] for x in r if x.get("value") is not None]
    return sum(x["step"] for x in r), max(values), len(r)


def loop_time(store: Path) -> tuple[int, float]:
    """(training runs, seconds inside their training loops): each run's ``start``/``continue``
    record (written once set up and restored) to its ``end`` record (trained, evaluated when
    evaluating in training, final checkpoint written), from every ``metrics.jsonl`` of the store."""
    runs, seconds = 0, 0.0
    for path in (store / "metrics").glob("*/metrics.jsonl"):
        began = None
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["event"] in ("start", "continue", "resume"):
                began = rec["time"]
            elif rec["event"] == "end" and began is not None:
                runs, seconds, began = runs + 1, seconds + rec["time"] - began, None
    return runs, seconds


def breakdown(args: argparse.Namespace) -> None:
    """What one run costs besides training, measured in this process on SST-2: loading the snapshot,
    the trainable's setup, the evaluation's setup and evaluating, without and with the setup cache."""
    import torch

    from temporal_ml.hf import TextClassificationTrainable
    from temporal_ml.storage.snapshots import SnapshotStore
    from temporal_ml.training.rng import seed_everything
    from temporal_ml.training.setup_cache import SetupCache, WorkerCache, cached_snapshot
    from temporal_ml.training.trainable import TrainContext

    torch.set_num_threads(1)
    trainable = TextClassificationTrainable()
    with tempfile.TemporaryDirectory() as tmp:
        store = SnapshotStore(tmp)
        ref = store.put_files({"train": args.dataset / "train.tsv", "dev": args.dataset / "dev.tsv"})

        def timed(fn: Any) -> tuple[Any, float]:
            start = time.perf_counter()
            value = fn()
            return value, time.perf_counter() - start

        def setup(cache: SetupCache | None) -> tuple[Any, float]:
            data = store.load(ref)
            seed_everything(0)
            ctx = TrainContext(run_id="r", hparams={"model": "tiny-bert"}, seed=0, data=data,
                               device=torch.device("cpu"), batch_size=32, total_steps=args.steps,
                               snapshot_id=ref.id, cache=cache)
            return timed(lambda: trainable.setup(ctx))

        store.load(ref)  # imports and the page cache, as on a worker that has run before
        _, load_s = timed(lambda: store.load(ref))
        memory = WorkerCache()
        cached_snapshot(memory, store, ref)
        _, warm_load_s = timed(lambda: cached_snapshot(memory, store, ref))
        _, plain_s = setup(None)
        cache = SetupCache(WorkerCache(), store.array_cache())
        _, cold_s = setup(cache)  # tokenizes and writes the store's entries
        _, store_s = setup(SetupCache(WorkerCache(), store.array_cache()))  # another worker
        built, warm_s = setup(cache)
        dev = store.load(ref, "dev")
        _, eval_s = timed(lambda: trainable.evaluate(built, dev))
        steps = 30
        gen = torch.Generator().manual_seed(0)

        def train() -> None:
            for _ in range(steps):
                idx = torch.randint(0, built.train_size, (32,), generator=gen).tolist()
                loss = trainable.train_step(built, built.make_batch(idx))
                loss.backward()
                built.optimizer.step()
                built.optimizer.zero_grad(set_to_none=True)

        _, train_s = timed(train)
    print("what one run costs besides training (SST-2, tiny BERT, one thread, this process):")
    print(f"  load the snapshot (verified)                  {load_s:6.3f} s  (kept per worker: {warm_load_s:.4f} s)")
    print(f"  setup, no cache (before)                      {plain_s:6.3f} s  (tokenizer built, 67k texts tokenized)")
    print(f"  setup, cold cache (tokenizes, writes store)   {cold_s:6.3f} s")
    print(f"  setup, from the store (a new worker)          {store_s:6.3f} s")
    print(f"  setup, warm worker (after)                    {warm_s:6.3f} s")
    print(f"  evaluate on dev ({dev.num_rows} rows)                   {eval_s:6.3f} s")
    print(f"  training: {steps} steps                            {train_s:6.3f} s  ({train_s / steps * 1000:.0f} ms a step)")
    before = 2 * (load_s + plain_s) + eval_s  # the training's setup and the evaluation's setup
    after = 2 * (warm_load_s + warm_s) + eval_s
    print(f"  a rung's training + evaluation setup, evaluating: before {before:.2f} s, after {after:.2f} s")
    print()


def main(args: argparse.Namespace) -> None:
    if not (args.dataset / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {args.dataset} (train.tsv, dev.tsv): pass --dataset")
    load_start = os.getloadavg()
    print(f"seeds {args.seeds}; load average at start {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f} ({os.cpu_count()} CPUs)", flush=True)
    if args.breakdown:
        breakdown(args)
    table = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {name: Path(tmp) / name for name in ("ladder", "random", "wall")}
            print(f"seed {seed}: ladder ({args.trials} trials, rungs from {args.min_budget} to {args.steps}) ...",
                  flush=True)
            ladder, t_ladder = run(args, stores["ladder"], "--mode", "ladder", "--searcher", "random",
                                   "--seed", str(seed), "--trials", str(args.trials),
                                   "--min-budget", str(args.min_budget), "--eta", str(args.eta))
            l_steps, l_best, l_n = summary(ladder)
            l_span = span(ladder)
            l_runs, l_loop = loop_time(stores["ladder"])
            n_random = max(1, round(l_steps / args.steps))
            print(f"seed {seed}: random, equal steps ({n_random} trials of {args.steps} steps) ...", flush=True)
            rand, t_rand = run(args, stores["random"], "--mode", "sweep", "--searcher", "random",
                               "--seed", str(seed), "--trials", str(n_random))
            r_steps, r_best, r_n = summary(rand)
            r_span = span(rand)
            r_runs, r_loop = loop_time(stores["random"])
            n_wall = max(n_random + 1, math.ceil(n_random * l_span / r_span) + 1)
            print(f"seed {seed}: random, equal wall time ({n_wall} trials, cut at {l_span:.0f} s) ...", flush=True)
            wall, t_wall = run(args, stores["wall"], "--mode", "sweep", "--searcher", "random",
                               "--seed", str(seed), "--trials", str(n_wall))
            w_best, w_n = best_within(wall, l_span)
            table.append(dict(seed=seed, l_n=l_n, l_steps=l_steps, l_best=l_best, t_l=t_ladder, l_span=l_span,
                              l_runs=l_runs, l_loop=l_loop, l_eval=eval_seconds(ladder), r_eval=eval_seconds(rand),
                              r_n=r_n, r_steps=r_steps, r_best=r_best, t_r=t_rand,
                              r_span=r_span, r_runs=r_runs, r_loop=r_loop, w_n=w_n, w_best=w_best,
                              w_span=span(wall), w_all=len(rows(wall))))
            t = table[-1]
            print(f"seed {seed}: ladder {t['t_l']:.0f} s, best {t['l_best']:.4f}; random (equal steps) "
                  f"{t['t_r']:.0f} s, best {t['r_best']:.4f}; random within the ladder's {t['l_span']:.0f} s: "
                  f"{t['w_n']} trials, best {t['w_best']}", flush=True)
            if args.dump is not None:
                args.dump.write_text(json.dumps(table, indent=1))
    print()
    print(f"SST-2, tiny BERT from a config, {args.steps} steps max, batch 32, {args.max_concurrency} trials "
          "at once; best dev accuracy")
    print("1. equal training steps: wall time (the starter process: server, snapshot, sweep)")
    print(f"{'seed':>4} | {'ladder trials':>13} {'runs':>4} {'steps':>6} {'best acc':>8} {'wall s':>7} | "
          f"{'random trials':>13} {'steps':>6} {'best acc':>8} {'wall s':>7} | {'ratio':>5} {'sweep-time ratio':>16}")
    for t in table:
        print(f"{t['seed']:>4} | {t['l_n']:>13} {t['l_runs']:>4} {t['l_steps']:>6} {t['l_best']:>8.4f} "
              f"{t['t_l']:>7.0f} | {t['r_n']:>13} {t['r_steps']:>6} {t['r_best']:>8.4f} {t['t_r']:>7.0f} | "
              f"{t['t_l'] / t['t_r']:>5.2f} {t['l_span'] / t['r_span']:>16.2f}")
    ratios = [t["t_l"] / t["t_r"] for t in table]
    print(f"wall-time ratio ladder/random: median {statistics.median(ratios):.2f} (max {max(ratios):.2f}); "
          f"goal <= 1.2: {'met' if max(ratios) <= 1.2 else 'MISSED'}")
    print()
    print("2. equal wall time: random search given the ladder's sweep time")
    print(f"{'seed':>4} | {'ladder sweep s':>14} {'best acc':>8} | {'random trials done in it':>24} "
          f"{'(of run)':>8} {'best acc':>8} | winner")
    wins = 0
    for t in table:
        w = t["w_best"]
        winner = "ladder" if w is None or t["l_best"] > w else "random" if w > t["l_best"] else "tie"
        wins += winner == "ladder"
        shown = f"{w:.4f}" if w is not None else "none"
        print(f"{t['seed']:>4} | {t['l_span']:>14.0f} {t['l_best']:>8.4f} | {t['w_n']:>24} {t['w_all']:>8} "
              f"{shown:>8} | {winner}")
    print(f"the ladder won {wins} of {len(table)} at equal wall time; goal >= 2 of 3: "
          f"{'met' if wins >= min(2, len(table)) and len(table) >= 3 else 'MISSED' if len(table) >= 3 else 'n/a (fewer than 3 seeds)'}")
    print()
    print("3. slot time outside the training loops, per run (sweep time x trials at once - loop time) / runs:")
    for t in table:
        l_other = (t["l_span"] * args.max_concurrency - t["l_loop"]) / max(1, t["l_runs"])
        r_other = (t["r_span"] * args.max_concurrency - t["r_loop"]) / max(1, t["r_runs"])
        print(f"  seed {t['seed']}: ladder {l_other:.2f} s over {t['l_runs']} runs (loops {t['l_loop']:.0f} s); "
              f"random {r_other:.2f} s over {t['r_runs']} runs (loops {t['r_loop']:.0f} s); of it, "
              f"training end to result (the evaluation child), median: ladder {t['l_eval']:.2f} s, "
              f"random {t['r_eval']:.2f} s")
    load_end = os.getloadavg()
    print(f"load average at end {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=27, help="ladder trials (default 27)")
    parser.add_argument("--min-budget", type=int, default=30)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--steps", type=int, default=270, help="the top rung and every random trial's steps")
    parser.add_argument("--max-concurrency", type=int, default=2)
    parser.add_argument("--dataset", type=Path, default=SST2)
    parser.add_argument("--dump", type=Path, default=None, help="also write the per-seed figures to this JSON file")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the in-process measurement of a run's setup costs")
    main(parser.parse_args())
