"""Multi-objective search: our NSGA-II (and random search) against Optuna's on ZDT1 and ZDT2.

    python benchmarks/bench_multi_objective.py                    # 10 seeds, 200 trials, d=6 (about 40 s of CPU)
    python benchmarks/bench_multi_objective.py --seeds 2          # a quick look

Needs the peer: ``pip install -e ".[bench]"`` (Optuna). Prints tables; asserts nothing.

Each method runs ``--trials`` trials per seed on ZDT1 and ZDT2 (Zitzler, Deb and Thiele 2000,
``d`` variables in [0, 1], both objectives minimized); the score is the hypervolume of the front it
found with respect to ``--reference`` (default (1.1, 5.0): at 200 trials no method comes near the
true front, whose points have f2 <= 1, so the usual (1.1, 1.1) leaves most runs at 0). Printed:
each method's median hypervolume and its range over seeds, then the ratios ours / Optuna's
(median, min, max over seeds; above 1 we win). The peers: Optuna's ``NSGAIISampler`` at its default
population (50) and at ours (20), and Optuna's ``TPESampler`` (multi-objective TPE) when the
installed Optuna has it.

Seeds: ``--first-seed`` (default 0) onwards. Our NSGA-II's only default picked by measurement,
``population_size=20``, was chosen on seeds 100-109 (population 10, 20 and 50 compared); seeds 0-99
are held out.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

from temporal_ml.search import (
    Float,
    NSGAIISearcher,
    RandomSearcher,
    SearchSpace,
    Study,
    hypervolume,
)

Objectives = Callable[[list[float]], tuple[float, float]]


def zdt1(x: list[float]) -> tuple[float, float]:
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return x[0], g * (1 - math.sqrt(x[0] / g))


def zdt2(x: list[float]) -> tuple[float, float]:
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return x[0], g * (1 - (x[0] / g) ** 2)


PROBLEMS: dict[str, Objectives] = {"ZDT1": zdt1, "ZDT2": zdt2}


def run_ours(searcher: Any, fn: Objectives, d: int, trials: int, seed: int) -> list[tuple[float, float]]:
    space = SearchSpace({f"x{i}": Float(0.0, 1.0) for i in range(d)})
    study = Study(space, searcher, seed=seed, directions=["minimize", "minimize"])
    front = study.optimize(lambda p: fn([p[f"x{i}"] for i in range(d)]), n_trials=trials)
    return [t.values for t in front]  # type: ignore[misc]


def run_optuna(make_sampler: Callable[[int], Any], fn: Objectives, d: int, trials: int,
               seed: int) -> list[tuple[float, float]]:
    import optuna

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=make_sampler(seed))
    study.optimize(lambda t: fn([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(d)]), n_trials=trials)
    return [tuple(t.values) for t in study.best_trials]  # type: ignore[misc]


def methods() -> dict[str, Callable[[Objectives, int, int, int], list[tuple[float, float]]]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    out: dict[str, Callable[[Objectives, int, int, int], list[tuple[float, float]]]] = {
        "ours nsga2 (pop 20)": lambda fn, d, n, s: run_ours(NSGAIISearcher(), fn, d, n, s),
        "ours random": lambda fn, d, n, s: run_ours(RandomSearcher(), fn, d, n, s),
        "optuna nsga2 (pop 50)": lambda fn, d, n, s: run_optuna(
            lambda seed: optuna.samplers.NSGAIISampler(seed=seed), fn, d, n, s),
        "optuna nsga2 (pop 20)": lambda fn, d, n, s: run_optuna(
            lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=20), fn, d, n, s),
    }
    try:  # multi-objective TPE (MOTPE): TPESampler with several directions, Optuna >= 2.9
        study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1)
        out["optuna motpe"] = lambda fn, d, n, s: run_optuna(
            lambda seed: optuna.samplers.TPESampler(seed=seed), fn, d, n, s)
    except Exception as exc:  # pragma: no cover - an old Optuna
        print(f"(optuna's TPESampler cannot run a multi-objective study here: {exc})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--dims", type=int, default=6)
    parser.add_argument("--reference", type=float, nargs=2, default=(1.1, 5.0))
    args = parser.parse_args()
    import optuna

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(f"optuna {optuna.__version__}; {args.trials} trials, d={args.dims}, seeds {seeds}, "
          f"reference {tuple(args.reference)}; load {os.getloadavg()[0]:.2f}")
    runs = methods()
    for name, fn in PROBLEMS.items():
        hv: dict[str, list[float]] = {}
        seconds: dict[str, float] = {}
        for method, run in runs.items():
            start = time.process_time()
            hv[method] = [hypervolume(run(fn, args.dims, args.trials, s), args.reference) for s in seeds]
            seconds[method] = time.process_time() - start
        print(f"\n{name}: hypervolume (higher is better), median [min, max] over seeds; CPU s per run")
        for method, values in hv.items():
            print(f"  {method:<22} {statistics.median(values):7.3f} [{min(values):.3f}, {max(values):.3f}]"
                  f"  {seconds[method] / len(seeds):6.2f}s   per seed: {', '.join(f'{v:.3f}' for v in values)}")
        print(f"{name}: ratio ours nsga2 / peer, per seed: median [min, max] (> 1: ours is better)")
        ours = hv["ours nsga2 (pop 20)"]
        for method, values in hv.items():
            if not method.startswith("optuna"):
                continue
            ratios = [a / b if b > 0 else math.inf for a, b in zip(ours, values, strict=True)]
            wins = sum(a > b for a, b in zip(ours, values, strict=True))
            print(f"  vs {method:<22} {statistics.median(ratios):6.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"
                  f"  ours better on {wins}/{len(seeds)} seeds; "
                  f"ratio of medians {statistics.median(ours) / statistics.median(values):.3f}")


if __name__ == "__main__":
    main()
