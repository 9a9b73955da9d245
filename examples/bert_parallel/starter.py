"""Train and evaluate several BERT configs in parallel (a grid over lr and seed); print a leaderboard.

    python -m examples.bert_parallel.starter --embedded                      # self-contained
    python -m examples.bert_parallel.starter --embedded --configs 3 --max-concurrency 2
    python -m examples.bert_parallel.starter --run-id grid1                  # against running workers
"""

from __future__ import annotations

import argparse
import itertools
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from temporal_ml.errors import ConfigError
from temporal_ml.follow import follow_experiments
from temporal_ml.starting import start_or_attach
from temporal_ml.types import CoordinatorResult, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput

from .._shared import (
    TRAINABLE,
    check_input,
    dataset_source,
    emit,
    environment,
    eval_split_of,
    experiment_summary,
    main_of,
    model_name,
    say,
    starter_parser,
)
from .worker import roles
from .workflows import BertParallel


def _list_of(kind: type, what: str, example: str) -> Callable[[str], list[Any]]:
    """An argparse type: comma-separated values of ``kind``; a bad item is refused naming it (argparse
    prefixes ``argument --lrs: ``)."""

    def parse(value: str) -> list[Any]:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"no values in {value!r} (expected comma-separated {what} "
                                             f"like {example})")
        for item in items:
            try:
                kind(item)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{item!r} is not {'a number' if kind is float else 'an integer'} "
                    f"(expected comma-separated {what} like {example})") from None
        return [kind(item) for item in items]

    return parse


_floats = _list_of(float, "floats", "1e-3,3e-4")
_ints = _list_of(int, "integers", "0,1")

STEPS = 200  # a grid of short runs (the other starters default to 300)

parser = starter_parser(__doc__.splitlines()[0])
parser.set_defaults(steps=STEPS)  # the --steps help shows it
parser.add_argument("--lrs", type=_floats, default=[1e-3, 3e-3],
                    help="comma-separated learning rates of the grid (default 1e-3,3e-3)")
parser.add_argument("--seeds", type=_ints, default=[0, 1], help="comma-separated seeds (default 0,1)")
parser.add_argument("--configs", type=int, default=None,
                    help="run only the first N configs of the grid (lr varies fastest; default: all)")
parser.add_argument("--max-concurrency", type=int, default=2,
                    help="experiments in flight at once, enforced by the coordinator (default 2)")
parser.add_argument("--max-concurrent-trainings", type=int, default=None,
                    help="with --embedded: training threads of the in-process train worker "
                         "(default: --max-concurrency)")
roles.add_queue_options(parser)


def grid(lrs: Sequence[float], seeds: Sequence[int], configs: int | None) -> list[tuple[float, int]]:
    """(lr, seed) pairs, lr varying fastest, truncated to ``configs``."""
    pairs = [(lr, seed) for seed, lr in itertools.product(seeds, lrs)]
    if configs is not None:
        if not 1 <= configs <= len(pairs):
            raise ConfigError(f"--configs must be in 1..{len(pairs)} (the grid of --lrs x --seeds)")
        pairs = pairs[:configs]
    return pairs


def experiments(args: argparse.Namespace) -> list[ExperimentSpec]:
    """One experiment per grid point, named ``lr<lr>-seed<seed>``."""
    return [
        ExperimentSpec(name=f"lr{lr:g}-seed{seed}", config=TrainConfig(
            trainable=TRAINABLE, max_steps=args.steps, batch_size=args.batch_size, seed=seed,
            checkpoint_every_steps=100, hparams={"model": model_name(args.model), "lr": lr},
            metric_sinks=args.metric_sinks))
        for lr, seed in grid(args.lrs, args.seeds, args.configs)
    ]


def leaderboard_table(result: CoordinatorResult) -> str:
    """The leaderboard as a small table."""
    if not result.leaderboard:
        return "leaderboard: empty (no experiment finished)"
    metric = result.leaderboard[0].metric
    rows = [f"leaderboard ({metric}):", f"  {'rank':<5} {'experiment':<20} {metric}"]
    rows += [f"  {e.rank:<5} {e.name:<20} {e.value:.4g}" for e in result.leaderboard]
    return "\n".join(rows)


async def run(args: argparse.Namespace) -> int:
    source = dataset_source(args.dataset, args.train_limit)
    run_id = args.run_id or f"bert-parallel-{uuid.uuid4().hex[:8]}"
    inp = CoordinatorInput(
        experiments=experiments(args), dataset=source, run_id=run_id,
        max_concurrency=args.max_concurrency, eval_split=eval_split_of(source),
        train_task_queue=args.train_queue, eval_task_queue=args.eval_queue,
        progress_every_seconds=2, heartbeat_timeout_seconds=20,
    )
    check_input(args, inp)
    in_process = roles.workers(args, max_concurrent_trainings=args.max_concurrent_trainings or args.max_concurrency)
    async with environment(args, roles.example, in_process) as client:
        handle = await start_or_attach(client, BertParallel.run, inp, id=run_id, task_queue=args.queue, say=say)
        say(f"started {len(inp.experiments)} experiments, at most {args.max_concurrency} at once: "
            f"run {run_id} on {args.queue!r} (training on {args.train_queue!r}, "
            f"evaluation on {args.eval_queue!r}); Web UI: TmlExperiment = \"{run_id}\"")
        result: CoordinatorResult = await follow_experiments(client, handle, BertParallel.status)
    summaries = "\n".join(experiment_summary(e) for e in result.experiments)
    emit(args, result, f"done: run {result.run_id}, snapshot {result.snapshot.id if result.snapshot else '-'}\n"
                       f"{leaderboard_table(result)}\n{summaries}")
    return 0 if all(e.status == "done" for e in result.experiments) else 1


main = main_of(run, parser)

if __name__ == "__main__":
    main()
