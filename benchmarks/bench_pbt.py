"""Population-based training against ASHA and random search at equal training steps, on SST-2.

For each seed, ``examples.bert_sweeps`` runs three searches of the example's space (learning rate on a
log scale, warm-up ratio) over a tiny BERT from a config, each on its own embedded dev server and fresh
store, as a user would:

* **ASHA**: ``--mode ladder --searcher random``: ``--trials`` trials over rungs ``--min-budget``,
  ``x eta``, ... up to ``--steps``;
* **PBT**: ``--mode pbt``: as many members trained to ``--steps`` as fit in the training steps ASHA
  used (rounded to the nearest whole member), in rounds of ``--interval`` steps; after each round the
  worst quarter exploit the best quarter;
* **random**: ``--mode sweep --searcher random`` with as many trials to ``--steps``.

It prints each search's best dev accuracy, its training steps, its wall time, and PBT's exploits, and
which search won each seed. Accuracy at equal steps is the comparison; wall times are the starter
process's (server, snapshot, sweep) and vary with the machine's load (printed).

    python benchmarks/bench_pbt.py [--seeds 0,1,2] [--trials 27] [--min-budget 30] [--steps 270] [--interval 90]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ladder_vs_random import SST2, run, summary  # noqa: E402


def exploits(result: dict[str, Any]) -> int:
    decisions = (result.get("scheduled") or {}).get("decisions") or []
    return sum(" exploits " in line for line in decisions)


def main(args: argparse.Namespace) -> None:
    if not (args.dataset / "train.tsv").is_file():
        raise SystemExit(f"SST-2 not found at {args.dataset} (train.tsv, dev.tsv): pass --dataset")
    load = os.getloadavg()
    print(f"seeds {args.seeds}; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} CPUs)", flush=True)
    table = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp)
            print(f"seed {seed}: ASHA ({args.trials} trials, rungs from {args.min_budget} to {args.steps}) ...",
                  flush=True)
            asha, t_asha = run(args, store / "asha", "--mode", "ladder", "--searcher", "random", "--seed", str(seed),
                               "--trials", str(args.trials), "--min-budget", str(args.min_budget),
                               "--eta", str(args.eta))
            a_steps, a_best, a_n = summary(asha)
            n = max(2, round(a_steps / args.steps))
            print(f"seed {seed}: PBT ({n} members, rounds of {args.interval} steps) ...", flush=True)
            pbt, t_pbt = run(args, store / "pbt", "--mode", "pbt", "--seed", str(seed), "--trials", str(n),
                             "--interval", str(args.interval))
            p_steps, p_best, _ = summary(pbt)
            print(f"seed {seed}: random ({n} trials of {args.steps} steps) ...", flush=True)
            rand, t_rand = run(args, store / "random", "--mode", "sweep", "--searcher", "random",
                               "--seed", str(seed), "--trials", str(n))
            r_steps, r_best, _ = summary(rand)
            row = dict(seed=seed, n=n, a_n=a_n, a_steps=a_steps, a_best=a_best, t_asha=t_asha,
                       p_steps=p_steps, p_best=p_best, t_pbt=t_pbt, exploits=exploits(pbt),
                       r_steps=r_steps, r_best=r_best, t_rand=t_rand)
            table.append(row)
            print(f"seed {seed}: ASHA best {a_best:.4f} ({t_asha:.0f} s), PBT best {p_best:.4f} ({t_pbt:.0f} s, "
                  f"{row['exploits']} exploits), random best {r_best:.4f} ({t_rand:.0f} s)", flush=True)
            if args.dump is not None:
                args.dump.write_text(json.dumps(table, indent=1))
    print()
    print(f"SST-2, tiny BERT from a config, {args.steps} steps max, {args.max_concurrency} trials at once; "
          "best dev accuracy at equal training steps")
    print(f"{'seed':>4} | {'ASHA trials':>11} {'steps':>6} {'best':>7} {'wall s':>6} | {'PBT members':>11} "
          f"{'steps':>6} {'best':>7} {'exploits':>8} {'wall s':>6} | {'random':>6} {'steps':>6} {'best':>7} "
          f"{'wall s':>6} | winner")
    wins = {"ASHA": 0, "PBT": 0, "random": 0}
    for t in table:
        scores = {"ASHA": t["a_best"], "PBT": t["p_best"], "random": t["r_best"]}
        top = max(scores.values())
        winners = [k for k, v in scores.items() if v == top]
        for k in winners:
            wins[k] += 1
        print(f"{t['seed']:>4} | {t['a_n']:>11} {t['a_steps']:>6} {t['a_best']:>7.4f} {t['t_asha']:>6.0f} | "
              f"{t['n']:>11} {t['p_steps']:>6} {t['p_best']:>7.4f} {t['exploits']:>8} {t['t_pbt']:>6.0f} | "
              f"{t['n']:>6} {t['r_steps']:>6} {t['r_best']:>7.4f} {t['t_rand']:>6.0f} | {'/'.join(winners)}")
    for name, key in (("ASHA", "a_best"), ("PBT", "p_best"), ("random", "r_best")):
        print(f"{name:>6}: median best {statistics.median(t[key] for t in table):.4f}, won {wins[name]} "
              f"of {len(table)} (ties count for each)")
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=27, help="ASHA trials (default 27)")
    parser.add_argument("--min-budget", type=int, default=30)
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument("--steps", type=int, default=270, help="the top rung, and every PBT member's and random trial's steps")
    parser.add_argument("--interval", type=int, default=90, help="PBT's steps per round (default 90)")
    parser.add_argument("--max-concurrency", type=int, default=2)
    parser.add_argument("--dataset", type=Path, default=SST2)
    parser.add_argument("--dump", type=Path, default=None, help="also write the per-seed figures to this JSON file")
    main(parser.parse_args())
