"""Section 3 of ``bench_search.py``: multi-fidelity search at equal total budget.

The problem is Hartmann-6 as a learning curve: at budget ``b`` (of ``B = 81``) a config scores
``F(x) + s(x) * (sqrt(B / b) - 1)``, where ``s`` makes some configs learn slowly, so early ranks are
noisy. Every method gets the same total budget in training steps (a promoted trial continues from
its rung, it does not retrain); the score is the regret of the true full-budget value of the
method's pick (the best result at the highest rung reached).

Methods: our schedulers (ASHA with one bracket, asynchronous Hyperband with every bracket) with
random search, with TPE told each trial's value at the highest rung it reached (budgets mixed in
one good/bad split: the old "BOHB-like" search), and with BOHB (a density on the largest budget
with d + 1 results); Optuna's ``TPESampler`` with its ``HyperbandPruner``; and random search with
every trial trained to the full budget.
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Any

from bench_search import PROBLEMS, _optuna_params, _quartiles, hartmann6

from temporal_ml.search import (
    AshaScheduler,
    BOHBSearcher,
    RandomSearcher,
    Searcher,
    SearchSpace,
    TPESearcher,
    TrialRecord,
)
from temporal_ml.sweeps import rung_record

SPACE: SearchSpace = PROBLEMS["hartmann6"][0]
OPTIMUM: float = PROBLEMS["hartmann6"][2]
MIN_BUDGET, MAX_BUDGET, ETA = 1, 81, 3


def curve(p: dict[str, Any], budget: int, max_budget: int = MAX_BUDGET) -> float:
    """Hartmann-6 at the full budget; earlier, a config-dependent learning-curve gap."""
    x = [p[f"x{i}"] for i in range(6)]
    speed_gap = 0.3 * (1 + math.sin(5 * x[0] + 3 * x[1]))  # some configs learn slowly
    return hartmann6(p) + speed_gap * (math.sqrt(max_budget / budget) - 1)


def run_ladder(seed: int, total: int, sched: AshaScheduler, searcher: Searcher) -> float:
    """A simulated sweep with a scheduler: each new trial's point from ``searcher``, told every
    trial as a sweep tells it (``rung_record``: the highest rung's value and each rung's by level)."""
    table = sched.new_table()
    params: dict[str, dict[str, Any]] = {}
    records: dict[str, TrialRecord] = {}
    spent = 0

    def report(tid: str, rung: int, budget: int) -> None:
        table.report(tid, rung, curve(params[tid], budget, sched.max_budget))
        bracket = table.trial_bracket[tid]
        values = [r.results[tid] for r in table.brackets[bracket].rungs if tid in r.results]
        records[tid] = rung_record(int(tid[1:]), params[tid], values, running=False, bracket=bracket)

    while True:
        decision = sched.next(table)
        if decision.action == "start":
            if spent + decision.budget > total:
                break
            tid = f"t{table.n_trials}"
            history = list(records.values()) if searcher.uses_history else []
            params[tid] = dict(searcher.suggest(SPACE, history, seed=seed, index=table.n_trials))
            table.start(tid, decision.bracket)
            spent += decision.budget
            report(tid, 0, decision.budget)
        elif decision.action == "promote":
            assert decision.trial_id is not None
            rungs = table.rungs_of(decision.trial_id)
            cost = decision.budget - rungs[decision.rung - 1].budget  # continue, don't retrain
            if spent + cost > total:
                break
            table.promote(decision.trial_id, decision.rung - 1)
            spent += cost
            report(decision.trial_id, decision.rung, decision.budget)
        else:
            break
    best = table.best()
    assert best is not None
    return hartmann6(params[best[0]])  # the true final value of the pick


def run_random_full(seed: int, total: int) -> float:
    n = total // MAX_BUDGET
    return min(hartmann6(RandomSearcher().suggest(SPACE, [], seed=seed, index=i)) for i in range(n))


def run_optuna_hyperband(seed: int, total: int, budgets: list[int]) -> float:
    """Optuna's TPESampler (defaults) with its HyperbandPruner over the same rungs and budget: each
    trial reports at every rung budget and stops when pruned; its steps count against the total."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.HyperbandPruner(min_resource=budgets[0], max_resource=budgets[-1],
                                            reduction_factor=ETA)
    sampler = optuna.samplers.TPESampler(seed=seed)  # its defaults (multivariate since Optuna 5.0)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner,
                                study_name=f"mf-{seed}")  # (brackets follow a crc32 of the name)
    spent = 0

    def objective(trial: Any) -> float:
        nonlocal spent
        p = _optuna_params(trial, SPACE)
        trial.set_user_attr("params", p)
        done = 0
        for b in budgets:
            if spent + b - done > total:  # out of budget: this trial ends unfinished, the study stops
                trial.study.stop()
                raise optuna.TrialPruned()
            spent += b - done
            done = b
            value = curve(p, b, budgets[-1])
            if b == budgets[-1]:
                return value
            trial.report(value, b)
            if trial.should_prune():
                raise optuna.TrialPruned()
        raise AssertionError("unreachable")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=10**6)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if complete:
        pick = min(complete, key=lambda t: t.value)
    else:  # nothing reached the full budget: the best at the highest step reported
        pick = max((t for t in study.trials if t.intermediate_values),
                   key=lambda t: (max(t.intermediate_values), -t.intermediate_values[max(t.intermediate_values)]))
    return hartmann6(pick.user_attrs["params"])


ASHA = AshaScheduler(min_budget=MIN_BUDGET, max_budget=MAX_BUDGET, eta=ETA)
HYPERBAND = AshaScheduler(min_budget=MIN_BUDGET, max_budget=MAX_BUDGET, eta=ETA,
                          brackets=len(ASHA.budgets()) - 1)
METHODS: dict[str, str] = {
    "asha-random": "ASHA (1 bracket) + random",
    "hb-random": f"Hyperband ({HYPERBAND.brackets} async brackets) + random",
    "asha-tpe": "ASHA (1 bracket) + TPE on highest-rung values",
    "hb-tpe": f"Hyperband ({HYPERBAND.brackets} brackets) + TPE on highest-rung values",
    "bohb": f"BOHB: Hyperband ({HYPERBAND.brackets} brackets) + BOHBSearcher",
    "optuna-hb": "Optuna TPESampler() + HyperbandPruner",
    "random-full": "random, every trial to the full budget",
}


def regret(task: tuple[str, int, int]) -> float:
    """One run: (method, seed, total budget) -> regret of the pick at full budget."""
    method, seed, total = task
    if method == "random-full":
        best = run_random_full(seed, total)
    elif method == "optuna-hb":
        best = run_optuna_hyperband(seed, total, ASHA.budgets())
    else:
        sched = HYPERBAND if method.startswith("hb") or method == "bohb" else ASHA
        searcher: Searcher = {"random": RandomSearcher(), "tpe": TPESearcher(),
                              "bohb": BOHBSearcher()}[method.split("-")[-1]]
        best = run_ladder(seed, total, sched, searcher)
    return max(best - OPTIMUM, 0.0)


def multi_fidelity(seeds: list[int], budgets_of_max: int, jobs: int, only: list[str] | None) -> None:
    total = budgets_of_max * MAX_BUDGET
    methods = [m for m in METHODS if not only or m in only]
    tasks = [(m, s, total) for m in methods for s in seeds]
    if jobs > 1:
        from multiprocessing import Pool

        with Pool(jobs) as pool:  # every run is seeded: the same table whatever the job count
            flat = pool.map(regret, tasks, chunksize=1)
    else:
        flat = [regret(t) for t in tasks]
    runs = {m: flat[i * len(seeds):(i + 1) * len(seeds)] for i, m in enumerate(methods)}
    print(f"\n## Multi-fidelity: learning-curve Hartmann-6, equal total budget ({budgets_of_max} x "
          f"max budget {MAX_BUDGET} = {total} steps, rungs {ASHA.budgets()}, eta {ETA}); seeds "
          f"{seeds[0]}-{seeds[-1]} (held out: no default was tuned on them); regret of each pick's "
          "true full-budget value\n")
    peer = runs.get("optuna-hb")
    print("| method | median [q1, q3] | median / Optuna TPE+Hyperband | better than it on |")
    print("|---|---|---|---|")
    for m in methods:
        q1, med, q3 = _quartiles(runs[m])
        ratio = wins = "-"
        if peer is not None and m != "optuna-hb":
            ratio = f"{med / statistics.median(peer):.2f}"
            wins = f"{sum(a < b for a, b in zip(runs[m], peer, strict=True))} / {len(seeds)} seeds"
        print(f"| {METHODS[m]} | {med:.3g} [{q1:.3g}, {q3:.3g}] | {ratio} | {wins} |", flush=True)
