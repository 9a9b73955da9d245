"""``temporal-ml sweep start SPEC`` and ``temporal-ml sweep validate SPEC``: a sweep from a spec file.

``validate`` checks the file, the model and the data (the evaluation split, the labels) and prints
what would run; ``start`` does the same, starts the sweep (``--embedded``: on a server and workers
of its own, gone when it ends) and follows it on stderr until its result, printed on stdout (``--json``:
the typed result alone). See :mod:`temporal_ml.spec` for the file format.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from temporal_ml.errors import ConfigError

__all__ = ["add_spec_parsers"]


def add_spec_parsers(commands: Any) -> None:
    """Add ``start`` and ``validate`` to the ``sweep`` subcommands."""
    start = commands.add_parser(
        "start", help="start a sweep described by a spec file (YAML or TOML)",
        description="Check a sweep spec (data, model, search space, searcher, scheduler), start it and "
                    "follow it until its result. Progress goes to stderr; the result to stdout.")
    start.add_argument("spec", metavar="SPEC", help="the spec file (.yaml, .yml or .toml)")
    start.add_argument("--embedded", action="store_true",
                       help="run on an embedded Temporal server with in-process workers (self-contained)")
    start.add_argument("--json", action="store_true", help="print only the typed result as JSON")
    start.add_argument("--run-id", default=None, metavar="ID",
                       help="workflow id of the sweep (default: the spec's name and 8 random hex digits)")
    start.add_argument("--store", default=None, metavar="URL",
                       help="--embedded: where the workers keep snapshots, checkpoints and metrics "
                            "(default $TEMPORAL_ML_STORE, else ~/.temporal-ml/store)")
    start.add_argument("--detach", action="store_true",
                       help="start the sweep and return (not with --embedded); follow it with "
                            "`temporal-ml status ID --follow`")
    start.add_argument("--verbose", action="store_true", help="tracebacks with errors")
    start.set_defaults(handler=lambda args: asyncio.run(_start(args)))
    validate = commands.add_parser(
        "validate", help="check a sweep spec file without starting anything",
        description="Check a sweep spec: every key, the search space, the model and a local dataset "
                    "(the evaluation split exists, labels are readable). Prints what would run.")
    validate.add_argument("spec", metavar="SPEC", help="the spec file (.yaml, .yml or .toml)")
    validate.add_argument("--verbose", action="store_true", help="tracebacks with errors")
    validate.set_defaults(handler=_validate)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _describe(spec: Any, inp: Any, summary: Any) -> list[str]:
    lines = [f"sweep {inp.run_id}: {spec.trials} trials of {spec.trainable} ({spec.model}), at most "
             f"{spec.max_concurrency} at once, {spec.searcher.get('type', 'random')} searcher"
             + _schedule(inp, spec.max_steps),
             (f"  objectives: {', '.join(f'{d} {o}' for o, d in zip(inp.objectives, inp.directions or (), strict=False))} "
              f"on {inp.eval_split!r} (the result is their Pareto front)" if inp.objectives is not None else
              f"  objective: {inp.direction} {inp.objective} on {inp.eval_split!r}"),
             "  space: " + "; ".join(f"{k} {_param(p)}" for k, p in inp.space.params.items())]
    if summary is not None:
        lines.append(f"  dataset: {summary.line()}")
    return lines


def _schedule(inp: Any, max_steps: int) -> str:
    steps = ", ".join(str(b) for b in inp.scheduler.budgets()) if inp.scheduler is not None else ""
    if inp.scheduler is None:
        return f", {max_steps} steps each"
    if inp.scheduler.kind == "pbt":
        return f", population-based training in rounds to {steps} steps"
    return f", ASHA rungs {steps} steps"


def _param(param: Any) -> str:
    if param.kind in ("float", "int"):
        return f"{param.low:g}..{param.high:g}{' log' if param.log else ''}"
    if param.kind == "categorical":
        return "{" + ", ".join(str(c) for c in param.choices) + "}"
    return f"= {param.value}"


def _validate(args: argparse.Namespace) -> int:
    from temporal_ml.spec import spec_input

    spec, inp, summary = spec_input(args.spec)
    for line in _describe(spec, inp, summary):
        print(line)
    print(f"{args.spec}: valid")
    return 0


async def _start(args: argparse.Namespace) -> int:
    from temporal_ml.spec import spec_input

    if args.detach and args.embedded:
        raise ConfigError("--detach needs a server that outlives this command; drop --embedded")
    spec, inp, summary = spec_input(args.spec, args.run_id)
    for line in _describe(spec, inp, summary):
        _err(line)
    if args.embedded:
        from temporal_ml.embedded import embedded_run

        async with embedded_run(lambda client: _workers(client, spec, args.store), say=_err,
                                verbose=args.verbose) as client:
            result = await _run(client, spec, inp, args)
    else:
        from temporal_ml.failures import connect_or_explain

        client = await connect_or_explain(embedded_hint=True)
        result = await _run(client, spec, inp, args)
    if result is None:
        return 0
    print(result.model_dump_json(indent=2) if args.json else _summary(result), flush=True)
    return 0 if result.leaderboard else 1


def _workers(client: Any, spec: Any, store: str | None) -> list[Any]:
    """The orchestration, train and eval workers of an embedded run, on the spec's queues."""
    from temporal_ml.hf import sentiment_dataset
    from temporal_ml.roles import Role, WorkerSpec, build_workers, default_store
    from temporal_ml.sources import SYNTHETIC
    from temporal_ml.workflows.builtin import BUILTIN_WORKFLOWS

    worker_spec = WorkerSpec(
        roles=[Role.ORCHESTRATION, Role.TRAIN, Role.EVAL], store=store or default_store(),
        task_queues={Role.ORCHESTRATION: spec.task_queue, Role.TRAIN: spec.train_task_queue,
                     Role.EVAL: spec.eval_task_queue},
        workflows=BUILTIN_WORKFLOWS, generators={SYNTHETIC: sentiment_dataset},
        trainables={spec.trainable: _trainable(spec.trainable)},
        max_concurrent_trainings=spec.max_concurrency,
    )
    _err(f"storage in {worker_spec.store} (snapshots, checkpoints, metrics; --store or "
         "TEMPORAL_ML_STORE to change)")
    return build_workers(client, worker_spec)


def _trainable(name: str) -> Any:
    from temporal_ml.spec import TEXT_CLASSIFICATION

    if name == TEXT_CLASSIFICATION:
        from temporal_ml.hf import TextClassificationTrainable

        return TextClassificationTrainable()
    if ":" not in name:
        raise ConfigError(f"trainable {name!r}: an embedded run knows {TEXT_CLASSIFICATION!r} or a "
                          "'module:attr' reference to a Trainable")
    from temporal_ml.roles import load_trainable

    return load_trainable(name)


async def _run(client: Any, spec: Any, inp: Any, args: argparse.Namespace) -> Any:
    from temporal_ml.follow import follow_sweep
    from temporal_ml.starting import start_or_attach
    from temporal_ml.workflows.builtin import TmlSweep

    handle = await start_or_attach(client, TmlSweep.run, inp, id=inp.run_id, task_queue=spec.task_queue,
                                   say=_err)
    _err(f"started {inp.run_id} on {spec.task_queue!r} (trainings on {spec.train_task_queue!r}, "
         f"evaluations on {spec.eval_task_queue!r}); `temporal-ml status {inp.run_id}` shows it")
    if args.detach:
        print(inp.run_id, flush=True)
        return None
    return await follow_sweep(handle, say=_err)


def _stopped(result: Any) -> int:
    """Trials stopped by a user (a sweep counts them; a ladder's rows say so)."""
    if hasattr(result, "n_stopped"):
        return int(result.n_stopped)
    return sum(t.row.state == "stopped" for t in result.trials)


def _summary(result: Any) -> str:
    """The human summary of a sweep's result: leaderboard (with budgets) and the best trial."""
    lines = [f"done: sweep {result.run_id}, {len(result.leaderboard)} ranked, snapshot {result.snapshot.short_id}"]
    if getattr(result, "stop_reason", None):
        lines.append(f"stopped: {result.stop_reason}")
    lines.append(f"leaderboard ({result.objective}, {result.direction}):")
    lines += [f"  {e.rank:<3} {e.name}  {e.value:.4g}" + (f"  at {e.budget} steps" if e.budget else "")
              for e in result.leaderboard[:10]]
    stopped = _stopped(result)
    if stopped:
        lines.append(f"not ranked: {stopped} stopped before their budget (`temporal-ml results {result.run_id}` "
                     "lists them with the step they reached)")
    best = result.best
    if best is not None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in sorted(best.row.params.items()))
        lines.append(f"best: {best.name} {result.objective} {best.row.value:.4g} after {best.row.step} steps "
                     f"({params}); weights sha256 {best.row.model_sha256}")
    return "\n".join(lines)
