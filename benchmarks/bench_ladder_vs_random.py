"""Search quality on real training: an ASHA ladder against random search at equal training steps.

For each seed, ``examples.bert_sweeps`` runs (each on its own embedded dev server, as a user would):

* **ladder**: ``--mode ladder --searcher random``: ``--trials`` trials over rungs ``--min-budget``,
  ``x eta``, ... up to ``--steps`` (promotions continue the same run);
* **random**: ``--mode sweep --searcher random`` with as many trials to ``--steps`` as fit in the
  training steps the ladder actually used (rounded to the nearest whole trial).

Both search the example's space (learning rate on a log scale, warm-up ratio), train a tiny BERT
from a config on GLUE SST-2 (``../shared/data/sst2``) and evaluate on its dev split. Prints per seed
the training steps each spent and the best dev accuracy each reached, then the medians.

    python benchmarks/bench_ladder_vs_random.py [--seeds 0,1,2] [--trials 27] [--min-budget 30] [--steps 270]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SST2 = ROOT.parent / "shared" / "data" / "sst2"


def run(args: argparse.Namespace, *extra: str) -> tuple[dict[str, Any], float]:
    cmd = [sys.executable, "-m", "examples.bert_sweeps.starter", "--embedded", "--json",
           "--dataset", str(args.dataset), "--steps", str(args.steps),
           "--max-concurrency", str(args.max_concurrency), *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout), time.perf_counter() - start


def summary(result: dict[str, Any]) -> tuple[int, float, int]:
    """(training steps spent, best dev accuracy of any trial, trials)."""
    rows = [t["row"] for t in result["trials"]]
    values = [r["value"] for r in rows if r.get("value") is not None]
    return sum(r["step"] for r in rows), max(values), len(rows)


def main(args: argparse.Namespace) -> None:
    if not (args.dataset / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {args.dataset} (train.tsv, dev.tsv): pass --dataset")
    table = []
    for seed in args.seeds:
        print(f"seed {seed}: ladder ({args.trials} trials, rungs from {args.min_budget} to {args.steps}) ...",
              flush=True)
        ladder, t_ladder = run(args, "--mode", "ladder", "--searcher", "random", "--seed", str(seed),
                               "--trials", str(args.trials), "--min-budget", str(args.min_budget),
                               "--eta", str(args.eta))
        l_steps, l_best, l_n = summary(ladder)
        n_random = max(1, round(l_steps / args.steps))
        print(f"seed {seed}: random ({n_random} trials of {args.steps} steps) ...", flush=True)
        rand, t_rand = run(args, "--mode", "sweep", "--searcher", "random", "--seed", str(seed),
                           "--trials", str(n_random))
        r_steps, r_best, r_n = summary(rand)
        table.append((seed, l_n, l_steps, l_best, t_ladder, r_n, r_steps, r_best, t_rand))
    print()
    print(f"SST-2, tiny BERT from a config, {args.steps} steps max, batch 32; best dev accuracy reached")
    print(f"{'seed':>4} | {'ladder trials':>13} {'steps':>6} {'best acc':>8} {'wall s':>7} | "
          f"{'random trials':>13} {'steps':>6} {'best acc':>8} {'wall s':>7} | winner")
    for seed, l_n, l_steps, l_best, t_l, r_n, r_steps, r_best, t_r in table:
        winner = "ladder" if l_best > r_best else "random" if r_best > l_best else "tie"
        print(f"{seed:>4} | {l_n:>13} {l_steps:>6} {l_best:>8.4f} {t_l:>7.0f} | "
              f"{r_n:>13} {r_steps:>6} {r_best:>8.4f} {t_r:>7.0f} | {winner}")
    l_med = statistics.median(t[3] for t in table)
    r_med = statistics.median(t[7] for t in table)
    wins = sum(t[3] > t[7] for t in table)
    print(f"median best accuracy: ladder {l_med:.4f}, random {r_med:.4f}; the ladder won {wins} of {len(table)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=27, help="ladder trials (default 27)")
    parser.add_argument("--min-budget", type=int, default=30)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--steps", type=int, default=270, help="the top rung and every random trial's steps")
    parser.add_argument("--max-concurrency", type=int, default=2)
    parser.add_argument("--dataset", type=Path, default=SST2)
    main(parser.parse_args())
