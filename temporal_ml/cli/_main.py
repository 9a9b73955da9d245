"""The ``temporal-ml`` command line.

Subcommands (reference: ``docs/cli.md``):
    server   run the embedded Temporal dev server (persistent, Web UI, our search attributes)
    worker   run workers for chosen roles (orchestration, train, eval), each on its own task queue
    example  list and run the bundled examples (``example list``, ``example run NAME [ARGS...]``,
             ``example worker NAME [ARGS...]``)
    runs     list trainings, experiments and sweeps (filters: kind, state, snapshot, config hash)
    status   one run, live with ``--follow``
    results  a run's results as a table, CSV, JSON or Parquet
    plot, report   a run's plots as PNG, a self-contained HTML report
    pause, resume, stop   steer a training (or every training of an experiment)
    replay   replay histories against the installed workflow code (determinism check)
    setup    register the temporal-ml search attributes on a namespace
    version  print the library version (also ``--version``)

Every error is one line on stderr (``--verbose``: with the traceback) and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from temporal_ml._version import __version__
from temporal_ml.cli._admin import add_admin_parsers
from temporal_ml.cli._control import add_control_parsers
from temporal_ml.cli._dashboard import add_dashboard_parser
from temporal_ml.cli._examples import add_example_parser
from temporal_ml.cli._plot import add_plot_parsers
from temporal_ml.cli._results import add_results_parser
from temporal_ml.cli._runs import add_runs_parsers
from temporal_ml.errors import ConfigError
from temporal_ml.failures import OneLineArgumentParser, report

if TYPE_CHECKING:  # pragma: no cover
    from temporal_ml.roles import Role, WorkerSpec

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``temporal-ml`` (exposed for documentation and tests)."""
    parser = OneLineArgumentParser(
        prog="temporal-ml", description="Durable ML training, evaluation and sweeps on Temporal."
    )
    parser.add_argument("--version", action="version", version=f"temporal-ml {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    server = sub.add_parser("server", help="run the embedded Temporal dev server until Ctrl-C")
    server.add_argument("--port", type=int, default=7233, help="gRPC frontend port (default 7233)")
    server.add_argument("--ui-port", type=int, default=None, help="Web UI port (default: port + 1000)")
    server.add_argument(
        "--data-dir", default=None,
        help="directory of the server database (default $TEMPORAL_ML_HOME/server or ~/.temporal-ml/server)",
    )
    server.add_argument("--ip", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    server.add_argument("--headless", action="store_true", help="do not serve the Web UI")
    server.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for start-up")
    server.set_defaults(handler=_run_server)

    _add_worker_parser(sub)
    add_example_parser(sub)
    add_runs_parsers(sub)
    add_results_parser(sub)
    add_plot_parsers(sub)
    add_control_parsers(sub)
    add_admin_parsers(sub)
    add_dashboard_parser(sub)

    version = sub.add_parser("version", help="print the temporal-ml version")
    version.set_defaults(handler=lambda _args: print(__version__) or 0)
    return parser


def _run_server(args: argparse.Namespace) -> int:
    from temporal_ml.devserver import DevServer

    server = DevServer(
        port=args.port, ui_port=args.ui_port, data_dir=args.data_dir, ip=args.ip, headless=args.headless
    )

    def _terminate(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C stops it even when started in the background of a script, whose jobs inherit SIGINT
    # ignored (as `temporal-ml worker` does with its own handlers)
    signal.signal(signal.SIGINT, _terminate)
    print(f"starting Temporal dev server (data in {server.data_dir}) ...", flush=True)
    server.start(timeout=args.timeout)
    try:
        print(f"Temporal server ready at {server.address}", flush=True)
        if server.ui_url:
            print(f"Web UI: {server.ui_url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        code = server.wait()
        print(f"server exited with code {code}; log: {server.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping Temporal server ...", flush=True)
        server.stop()
        print("stopped", flush=True)
        return 0


def _add_worker_parser(sub: Any) -> None:
    worker = sub.add_parser(
        "worker", help="run workers for chosen roles until Ctrl-C",
        description="Run one worker per role, each on its own task queue, in this process. "
                    "Connects like temporal_ml.connect() (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, "
                    "API key); module:attr references are imported with the current directory on "
                    "the path.",
    )
    add = worker.add_argument
    add("--role", action="append", required=True, metavar="ROLE",
        help="orchestration, train or eval (repeatable: one worker per role)")
    add("--task-queue", action="append", default=[], metavar="ROLE=NAME",
        help="task queue of a role (repeatable; default $TEMPORAL_ML_<ROLE>_QUEUE, else "
             "temporal-ml, temporal-ml-train, temporal-ml-eval)")
    add("--workflows", action="append", default=[], metavar="MODULE:CLASS",
        help="@workflow.defn class for the orchestration role (repeatable); the built-in sweep "
             "workflows of `temporal-ml sweep start` (TmlSweep, TmlLadder, ...) are always registered")
    add("--trainable", action="append", default=[], metavar="NAME=MODULE:ATTR",
        help="Trainable instance or class (built with no arguments) for the train/eval roles "
             "(repeatable); 'text-classification' alone is the built-in one (needs the hf extra)")
    add("--generator", action="append", default=[], metavar="NAME=MODULE:ATTR",
        help="data generator for DatasetSource(generator=NAME), orchestration role (repeatable)")
    add("--store", default=None, metavar="URL",
        help="fsspec root: URL/snapshots, URL/checkpoints (default $TEMPORAL_ML_STORE, else "
             "$TEMPORAL_ML_HOME/store or ~/.temporal-ml/store)")
    add("--metrics-dir", default=None, metavar="PATH",
        help="per-run metrics.jsonl files (default <store>/metrics for a local store, else none)")
    add("--max-concurrent-trainings", type=int, default=None, metavar="N",
        help="train role: trainings at once, e.g. the number of GPUs (default 1)")
    add("--trainings-in-processes", action="store_true",
        help="train role: run every training in child processes (one per rank), so concurrent "
             "trainings run truly in parallel (TrainConfig.threads_per_rank threads each)")
    add("--max-concurrent-activities", type=int, default=None, metavar="N",
        help="eval role (default 1) and orchestration role (default: the SDK's)")
    worker.set_defaults(handler=_run_worker)


def _run_worker(args: argparse.Namespace) -> int:
    if os.getcwd() not in sys.path:  # like `python -m`: the user's modules are importable
        sys.path.insert(0, os.getcwd())
    spec = _worker_spec(args)
    return asyncio.run(_serve(spec))


def _worker_spec(args: argparse.Namespace) -> WorkerSpec:
    """The spec of ``temporal-ml worker``; :class:`ConfigError` (exit 2) for bad arguments."""
    from temporal_ml.roles import (
        Role,
        WorkerSpec,
        default_store,
        load_generator,
        load_trainable,
        load_workflow,
    )

    roles = [Role.parse(role) for role in args.role]
    workflows = [_option("--workflows", load_workflow, ref) for ref in args.workflows]
    generators = _named("--generator", args.generator, str, load_generator)
    if Role.ORCHESTRATION in roles:  # what a spec-file sweep (`temporal-ml sweep start`) needs
        from temporal_ml.hf.synthetic import sentiment_dataset
        from temporal_ml.sources import SYNTHETIC
        from temporal_ml.workflows.builtin import BUILTIN_WORKFLOWS

        names = {_workflow_name(w) for w in workflows}
        workflows += [w for w in BUILTIN_WORKFLOWS if _workflow_name(w) not in names]
        generators.setdefault(SYNTHETIC, sentiment_dataset)
    trainables = [_BUILTIN_TRAINABLES.get(text, text) for text in args.trainable]
    if args.max_concurrent_trainings is not None and Role.TRAIN not in roles:
        raise ConfigError("--max-concurrent-trainings applies only to the train role")
    if args.trainings_in_processes and Role.TRAIN not in roles:
        raise ConfigError("--trainings-in-processes applies only to the train role")
    return WorkerSpec(
        roles=roles,
        task_queues=_named("--task-queue", args.task_queue, Role.parse, str),
        store=args.store or default_store(),
        workflows=workflows, generators=generators,
        trainables=_named("--trainable", trainables, str, load_trainable),
        metrics_dir=args.metrics_dir, max_concurrent_trainings=_or(args.max_concurrent_trainings, 1),
        trainings_in_processes=args.trainings_in_processes,
        max_concurrent_activities=args.max_concurrent_activities,
    )


#: ``--trainable NAME`` shorthands for the trainables the library ships
_BUILTIN_TRAINABLES = {"text-classification": "text-classification=temporal_ml.hf:TextClassificationTrainable"}


def _workflow_name(cls: type) -> str:
    return str(getattr(cls, "__temporal_workflow_definition").name)


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _option(option: str, fn: Callable[[str], Any], value: str) -> Any:
    """``fn(value)``, with the option named in the message of a :class:`ConfigError`."""
    try:
        return fn(value)
    except ConfigError as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def _named(option: str, values: Sequence[str], key: Callable[[str], Any],
           load: Callable[[str], Any]) -> dict[Any, Any]:
    """``NAME=VALUE`` options -> ``{key(NAME): load(VALUE)}``; a name may be given once."""
    result: dict[Any, Any] = {}
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"{option}: expected NAME=VALUE, got {text!r}")
        name = _option(option, key, name.strip())
        if name in result:
            raise ConfigError(f"{option}: {text!r}: that name is given twice")
        result[name] = _option(option, load, value.strip())
    return result


def _describe(spec: WorkerSpec, role: Role) -> str:
    """``role=train queue=temporal-ml-train trainables=[mlp] max_concurrent=1``."""
    from temporal_ml.roles import Role

    parts = [f"role={role.value}", f"queue={spec.task_queues[role]}"]
    if role is Role.ORCHESTRATION:
        parts.append(f"workflows=[{','.join(w.__name__ for w in spec.workflows)}]")
        parts.append(f"generators=[{','.join(sorted(spec.generators))}]")
    else:
        parts.append(f"trainables=[{','.join(sorted(spec.trainables))}]")
    parts.append(f"max_concurrent={spec.max_concurrent(role) or 'default'}")
    return " ".join(parts)


async def _serve(spec: WorkerSpec) -> int:
    """Connect, run the spec's workers until SIGINT/SIGTERM (or a fatal worker error), shut down."""
    from temporal_ml.failures import connect_or_explain, one_line
    from temporal_ml.roles import Role, build_workers
    from temporal_ml.worker import limit_malloc_arenas, serve

    if set(spec.roles) == {Role.ORCHESTRATION}:  # many activity threads, little computation: bounded RSS
        limit_malloc_arenas(2)
    try:
        client = await connect_or_explain()
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad TLS settings, ...
        print(f"temporal-ml: error: cannot connect to Temporal: {one_line(exc)}", file=sys.stderr)
        return 1
    workers = build_workers(client, spec)

    def ready() -> None:
        for role in spec.roles:
            print(f"worker ready: {_describe(spec, role)}", flush=True)

    return await serve(workers, on_ready=ready)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``temporal-ml``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args) or 0)
    except BrokenPipeError:  # `temporal-ml runs | head`: the reader has all it wants
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more to write
        code = 0
    except (Exception, KeyboardInterrupt) as exc:  # one line; the traceback too with --verbose
        code = report(exc, prog="temporal-ml", verbose=bool(getattr(args, "verbose", False)))
    if argv is None and args.command in _CLIENT_COMMANDS:
        # A Temporal client or worker process can crash in interpreter finalization (the SDK's
        # Rust runtime threads outlive it, temporalio/sdk-python#300): leave without finalizing.
        from temporal_ml.worker import exit_process

        exit_process(code)
    return code


_CLIENT_COMMANDS = frozenset({"runs", "status", "results", "plot", "report", "pause", "resume", "stop",
                              "replay", "setup", "sweep", "retry", "dashboard", "worker"})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
