"""A durable hyperparameter search over BERT fine-tuning: a sweep with ASHA (default), PBT, or neither.

    python -m examples.bert_sweeps.starter --embedded                         # ASHA ladder, 9 trials
    python -m examples.bert_sweeps.starter --embedded --mode sweep --searcher tpe --trials 8
    python -m examples.bert_sweeps.starter --embedded --mode pbt --trials 8   # population-based training
    python -m examples.bert_sweeps.starter --run-id ladder1                   # against running workers
    python -m examples.bert_sweeps.starter --embedded --spec my-sweep.yaml    # a whole sweep from a file

The default search space is the one in ``spec.yaml`` beside this file (the example's default sweep as
a spec file; ``temporal-ml sweep start`` runs such files without the example). Progress goes to
stderr, the result to stdout (``--json``: the typed result alone).
"""

from __future__ import annotations

import argparse
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from temporal_ml.errors import ConfigError
from temporal_ml.follow import follow_trials
from temporal_ml.search import (
    AshaScheduler,
    Categorical,
    GridSearcher,
    PbtScheduler,
    RandomSearcher,
    SearchSpace,
    TPESearcher,
)
from temporal_ml.spec import load_spec, spec_input
from temporal_ml.starting import start_or_attach
from temporal_ml.sweeps import SweepInput, SweepResult
from temporal_ml.types import TrainConfig

from .._shared import (
    TRAINABLE,
    check_input,
    dataset_source,
    emit,
    environment,
    eval_split_of,
    main_of,
    model_name,
    say,
    starter_parser,
)
from .worker import roles
from .workflows import BertSweep

parser = starter_parser(__doc__.splitlines()[0])
parser.set_defaults(steps=270)
parser.add_argument("--mode", choices=["ladder", "sweep", "pbt"], default="ladder",
                    help="ladder: ASHA over --min-budget..--steps (default); sweep: every trial to --steps; "
                         "pbt: population-based training, --trials members, rounds of --interval steps")
parser.add_argument("--searcher", choices=["random", "tpe", "grid"], default=None,
                    help="how new trials are chosen (default: random for the ladder, tpe for a sweep)")
parser.add_argument("--trials", type=int, default=9, help="trials to start (default 9)")
parser.add_argument("--max-concurrency", type=int, default=2, help="trials in flight at once (default 2)")
parser.add_argument("--min-budget", type=int, default=30, help="ladder: steps of the first rung (default 30)")
parser.add_argument("--eta", type=int, default=3, help="ladder: 1/eta of each rung goes on (default 3)")
parser.add_argument("--interval", type=int, default=None,
                    help="pbt: steps per round, after which the worst quarter copy the best (default --steps / 3)")
parser.add_argument("--seed", type=int, default=0, help="seed of the searcher (default 0)")
parser.add_argument("--spec", default=None, metavar="FILE",
                    help="a sweep spec file (YAML/TOML, see spec.yaml beside this starter): its data, model, "
                         "space, searcher, scheduler and budget replace the other flags (given with it, they are refused)")
roles.add_queue_options(parser)

#: The example's default sweep as a spec file (its search space is the starter's default).
DEFAULT_SPEC = Path(__file__).with_name("spec.yaml")


def space_for(searcher: str) -> SearchSpace:
    """Learning rate and warm-up: continuous for random/TPE (the space of ``spec.yaml``), a small grid
    for grid search."""
    if searcher == "grid":
        return SearchSpace({"hparams.lr": Categorical([3e-4, 1e-3, 3e-3]),
                            "hparams.warmup_ratio": Categorical([0.0, 0.1])})
    return load_spec(DEFAULT_SPEC).search_space()


#: Flags a spec file replaces: given with ``--spec``, they are refused rather than ignored.
SPEC_REPLACES = ("mode", "searcher", "trials", "max_concurrency", "min_budget", "eta", "interval", "seed", "steps",
                 "model", "dataset", "batch_size", "train_limit", "eval_split", "metric_sinks")


def from_spec(args: argparse.Namespace, run_id: str) -> SweepInput:
    """The input a spec file describes, on this example's queues."""
    given = [{"metric_sinks": "--metric-sink"}.get(name, f"--{name.replace('_', '-')}") for name in SPEC_REPLACES
             if getattr(args, name) != parser.get_default(name)]
    if given:
        raise ConfigError(f"--spec replaces {', '.join(given)}: set them in the spec file, or leave them out")
    _spec, inp, _summary = spec_input(args.spec, run_id)
    return inp.model_copy(update={"train_task_queue": args.train_queue, "eval_task_queue": args.eval_queue,
                                  "heartbeat_timeout_seconds": 20})


def build_input(args: argparse.Namespace, run_id: str) -> SweepInput:
    """The typed workflow input (validated here, before anything starts)."""
    if args.spec:
        return from_spec(args, run_id)
    if args.mode == "ladder" and args.min_budget >= args.steps:
        raise ConfigError(f"--min-budget ({args.min_budget}) must be less than --steps ({args.steps}), "
                          "the top rung")
    kind = args.searcher or ("random" if args.mode == "ladder" else "tpe")
    searcher: Any = {"random": RandomSearcher(), "tpe": TPESearcher(n_startup=max(2, args.trials // 3)),
                     "grid": GridSearcher()}[kind]
    source = dataset_source(args.dataset, args.train_limit)
    base = TrainConfig(trainable=TRAINABLE, max_steps=args.steps, batch_size=args.batch_size,
                       checkpoint_every_steps=max(1, min(50, args.min_budget)),
                       hparams={"model": model_name(args.model)}, metric_sinks=args.metric_sinks)
    common: dict[str, Any] = dict(
        base=base, space=space_for(kind), searcher=searcher, n_trials=args.trials,
        max_concurrency=args.max_concurrency, objective="accuracy", direction="maximize", seed=args.seed,
        dataset=source, run_id=run_id, eval_split=eval_split_of(source, args.eval_split), train_task_queue=args.train_queue,
        eval_task_queue=args.eval_queue, heartbeat_timeout_seconds=20, progress_every_seconds=5,
    )
    if args.mode == "sweep":
        return SweepInput(**common)
    if args.mode == "pbt":
        interval = args.interval or max(1, args.steps // 3)
        if interval >= args.steps:
            raise ConfigError(f"--interval ({interval}) must be less than --steps ({args.steps}): PBT needs two rounds")
        return SweepInput(**common, scheduler=PbtScheduler(perturbation_interval=interval, max_budget=args.steps))
    return SweepInput(**common, scheduler=AshaScheduler(min_budget=args.min_budget, max_budget=args.steps,
                                                        eta=args.eta))


def summary(result: SweepResult) -> str:
    lines = [f"done: run {result.run_id}, snapshot {result.snapshot.short_id}"]
    if result.scheduled is not None and "exploits" in " ".join(result.scheduled.decisions):  # PBT
        rounds = [r for r in result.scheduled.rungs if r.bracket == 0]
        lines.append("rounds: " + ", ".join(f"{r.budget} steps: {r.results} trials" for r in rounds))
        lines += ["exploits (latest):"] + [f"  {line}" for line in result.scheduled.decisions if "exploits" in line][-6:]
    elif result.scheduled is not None:
        rungs = [r for r in result.scheduled.rungs if r.bracket == 0]
        lines.append("rungs: " + ", ".join(f"{r.budget} steps: {r.results} trials" for r in rungs))
        lines.append(f"checkpoints deleted for {result.scheduled.deleted} trials that could not go on "
                     f"({result.scheduled.freed_bytes / 1e6:.1f} MB)")
    lines.append(f"leaderboard ({result.objective}):")
    lines += [f"  {e.rank:<3} {e.name} {e.value:.4g}" + (f"  at {e.budget} steps" if e.budget else "")
              for e in result.leaderboard[:10]]
    if result.best is not None:
        best = result.best
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.row.params.items())
        lines.append(f"best: {best.name} ({params}) accuracy {best.row.value:.4g} after {best.row.step} "
                     f"steps, weights sha256 {best.row.model_sha256}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> int:
    run_id = args.run_id or f"bert-{args.mode}-{uuid.uuid4().hex[:8]}"
    try:
        inp = build_input(args, run_id)
    except ValueError as exc:  # a ValidationError is reported in one line by main_of
        if isinstance(exc, ValidationError):
            raise
        raise ConfigError(str(exc).splitlines()[0]) from None
    check_input(args, inp)
    in_process = roles.workers(args, max_concurrent_trainings=args.max_concurrency)
    async with environment(args, roles.example, in_process) as client:
        handle = await start_or_attach(client, BertSweep.run, inp, id=run_id, task_queue=args.queue, say=say)
        mode = {None: "sweep", "asha": "ladder", "pbt": "population-based training"}[
            inp.scheduler.kind if inp.scheduler is not None else None]
        say(f"started {mode} {run_id}: {inp.n_trials} trials, at most {inp.max_concurrency} at once "
            f"on {args.queue!r}; Web UI: TmlExperiment = \"{run_id}\"")
        result = await follow_trials(client, handle, objective=inp.objective)
    emit(args, result, summary(result))
    return 0 if result.leaderboard else 1


main = main_of(run, parser)

if __name__ == "__main__":
    main()
