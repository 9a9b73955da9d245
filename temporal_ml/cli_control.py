"""``temporal-ml pause|resume|stop ID``, ``temporal-ml replay ID`` and ``temporal-ml setup``.

* ``pause``/``resume``/``stop`` send the ``pause``/``resume``/``stop_early`` updates of a
  ``TrainingWorkflow``. Given a coordinator (or any run whose children carry ``TmlExperiment``), they
  go to each of its running trainings. A refused request (e.g. resuming a run that is not paused) is
  one line and exit code 1; the run is never disturbed.
* ``replay`` replays a run's history against the installed workflow code (``--workflows
  module:Class``, as for ``temporal-ml worker``): the determinism check to run before deploying a
  change. ``--query`` replays every run a visibility query matches.
* ``setup`` registers our search attributes on a namespace of a self-hosted cluster (idempotent);
  on Temporal Cloud it prints the ``tcld`` commands to run instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from datetime import timedelta
from typing import Any

from temporal_ml.cli_common import add_client_options, client_for, describe_run
from temporal_ml.cli_errors import RunRefused
from temporal_ml.errors import ConfigError, TemporalMLError

__all__ = ["add_control_parsers", "UPDATES"]

#: Command -> update name of ``TrainingWorkflow``.
UPDATES = {"pause": "pause", "resume": "resume", "stop": "stop_early"}
#: Command -> update name of the sweep workflows (``SweepWorkflow``; ``LadderSweepWorkflow``: stop).
SWEEP_UPDATES = {"pause": "pause", "resume": "resume", "stop": "stop"}
SWEEP_KINDS = frozenset({"sweep", "ladder"})
_HELP = {
    "pause": "checkpoint and pause a training (or every training of an experiment)",
    "resume": "resume a paused training from its checkpoint",
    "stop": "stop a training early at a checkpoint of its current step (it returns that as its "
            "result); a sweep: start no new trials, let running ones finish, return its result",
}


def add_control_parsers(sub: Any) -> None:
    """Add ``pause``, ``resume``, ``stop``, ``replay`` and ``setup`` to the subcommands."""
    for command, update in UPDATES.items():
        parser = sub.add_parser(command, help=_HELP[command], description=_HELP[command] + ".")
        parser.add_argument("id", metavar="ID", help="workflow id of a training, or of a coordinator")
        parser.add_argument("--timeout", type=float, default=120.0,
                            help="seconds to wait for the run to answer (a pause waits for its checkpoint)")
        add_client_options(parser)
        parser.set_defaults(handler=lambda args, u=update: asyncio.run(_control(args, u)))

    replay = sub.add_parser(
        "replay", help="replay a run's history against the installed workflow code",
        description="Replay workflow histories against the installed code (a determinism check before "
                    "deploying). Pass the workflow classes as for `temporal-ml worker`.")
    replay.add_argument("id", metavar="ID", nargs="?", help="workflow id (its latest run)")
    replay.add_argument("--workflows", action="append", default=[], metavar="MODULE:CLASS",
                        help="@workflow.defn class to replay with (repeatable; required)")
    replay.add_argument("--query", metavar="VISIBILITY_QUERY",
                        help="replay every closed or running run this query matches instead of ID")
    replay.add_argument("--limit", type=int, default=100, help="at most this many runs for --query")
    add_client_options(replay)
    replay.set_defaults(handler=lambda args: asyncio.run(_replay(args)))

    setup = sub.add_parser(
        "setup", help="register the temporal-ml search attributes on a namespace",
        description="Register TmlKind, TmlRunId, TmlExperiment, TmlSnapshotId, TmlConfigHash and "
                    "TmlMetric on the namespace (idempotent). The embedded server has them already.")
    setup.add_argument("--cloud", action="store_true",
                       help="Temporal Cloud: print the tcld commands instead (Cloud namespaces are "
                            "managed through tcld or the Cloud UI)")
    add_client_options(setup)
    setup.set_defaults(handler=_setup)

    sweep = sub.add_parser("sweep", help="steer a running sweep (add trials, stop a trial, ...)",
                           description="Live control of a SweepWorkflow (pause/resume/stop: the "
                                       "top-level commands).")
    commands = sweep.add_subparsers(dest="sweep_command", required=True, metavar="COMMAND")
    for name, update, arg, help_ in (
        ("add-trials", "add_trials", ("n", int, "N", "how many trials to add"), "add N trials"),
        ("stop-trial", "stop_trial", ("index", int, "INDEX", "the trial's index (see `results`)"),
         "stop one running trial (it keeps its checkpoint; its result is 'stopped')"),
        ("set-concurrency", "set_max_concurrency", ("n", int, "N", "trials at once"),
         "change how many trials run at once"),
        ("enqueue", "enqueue", ("params", _json_object, "JSON", 'a config, e.g. \'{"hparams.lr": 0.01}\''),
         "run this point of the space next"),
    ):
        parser = commands.add_parser(name, help=help_, description=help_ + ".")
        parser.add_argument("id", metavar="ID", help="workflow id of the sweep")
        parser.add_argument(arg[0], type=arg[1], metavar=arg[2], help=arg[3])
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for an answer")
        add_client_options(parser)
        parser.set_defaults(handler=lambda args, u=update, a=arg[0]: asyncio.run(_sweep(args, u, a)))


def _ended(status: str) -> str:
    """``completed`` -> ``finished``; ``failed``, ``terminated``, ... as they are."""
    return {"completed": "finished", "canceled": "been cancelled", "timed_out": "timed out",
            "continued_as_new": "continued as new"}.get(status, status)


def _json_object(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"hparams.lr\": 0.01}'")
    return value


async def _send(client: Any, workflow_id: str, update: str, args: list[Any], timeout: float,
                result_type: type | None = None) -> Any:
    """Execute an update; a refusal or no answer in ``timeout`` raises a one-line error."""
    from temporalio.client import (
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
    )

    from temporal_ml.cli_errors import one_line

    try:
        return await client.get_workflow_handle(workflow_id).execute_update(
            update, args=args, result_type=result_type, rpc_timeout=timedelta(seconds=timeout))
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise RunRefused(f"{workflow_id}: no answer in {timeout:g}s: is a worker polling the run's "
                              "task queue? (the request stays queued until one does)") from exc
    except WorkflowUpdateFailedError as exc:
        raise RunRefused(f"{workflow_id}: {one_line(exc)}") from exc


async def _sweep(args: argparse.Namespace, update: str, arg: str) -> int:
    client = await client_for(args)
    info, _ = await describe_run(client, args.id)
    if info.kind not in SWEEP_KINDS:
        raise ConfigError(f"run {info.id!r} is not a sweep (kind {info.kind or 'unknown'})")
    if not info.running:
        raise RunRefused(f"cannot change sweep {info.id!r}: it has {_ended(info.status)}")
    answer = await _send(client, info.id, update, [getattr(args, arg)], args.timeout)
    print(f"{info.id}: {_describe_answer(update, answer)}")
    return 0


def _describe_answer(update: str, answer: Any) -> str:
    if isinstance(answer, dict) and "phase" in answer:  # a SweepStatus
        return (f"{update.replace('_', ' ')}: sweep {answer['phase']}, {answer.get('running', '?')} "
                f"running, {answer.get('n_trials', '?')} trials")
    if isinstance(answer, dict) and "index" in answer:  # a TrialRow
        return f"trial {answer['index']} {answer.get('state', '')} at step {answer.get('step', '?')}"
    if update == "add_trials":
        return f"added: {answer} trials in all"
    if update == "enqueue":
        return f"enqueued as trial {answer}"
    return f"{update.replace('_', ' ')}: {answer}"


# -- pause / resume / stop ------------------------------------------------------------------------

async def _control(args: argparse.Namespace, update: str) -> int:
    from temporalio.client import (
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
    )

    from temporal_ml.cli_errors import one_line
    from temporal_ml.types import TrainProgress

    client = await client_for(args)
    info, _ = await describe_run(client, args.id)
    command = next(c for c, u in UPDATES.items() if u == update)
    if not info.running:
        raise RunRefused(f"cannot {command} run {info.id!r}: it has {_ended(info.status)}")
    if info.kind in SWEEP_KINDS:
        answer = await _send(client, info.id, SWEEP_UPDATES[command], [], args.timeout)
        print(f"{info.id}: {_describe_answer(SWEEP_UPDATES[command], answer)}")
        return 0
    if info.kind == "train" or not info.kind:
        targets = [info.id]
    else:
        query = (f"TmlExperiment = '{info.experiment or info.id}' AND TmlKind = 'train' "
                 "AND ExecutionStatus = 'Running'")
        targets = [w.id async for w in client.list_workflows(query)]
        if not targets:
            raise TemporalMLError(f"run {info.id!r} ({info.kind}, {info.status}) has no running "
                                  f"training to {update.replace('_', ' ')}")

    async def one(workflow_id: str) -> tuple[str, str, bool]:
        handle = client.get_workflow_handle(workflow_id)
        try:
            progress = await handle.execute_update(update, result_type=TrainProgress,
                                                   rpc_timeout=timedelta(seconds=args.timeout))
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return workflow_id, (f"no answer in {args.timeout:g}s: is a worker polling the run's task "
                                 "queue? (the request stays queued until one does)"), False
        except (WorkflowUpdateFailedError, TemporalMLError) as exc:
            return workflow_id, one_line(exc), False
        checkpoint = progress.latest_checkpoint
        where = f", checkpoint @ {checkpoint.step}" if checkpoint is not None else ""
        if update == "resume":
            return workflow_id, f"resuming from step {progress.step}/{progress.max_steps}{where}", True
        return workflow_id, f"{progress.state} at step {progress.step}/{progress.max_steps}{where}", True

    outcomes = await asyncio.gather(*(one(t) for t in targets))
    for workflow_id, message, ok in outcomes:
        print(f"{workflow_id}: {message}", file=sys.stdout if ok else sys.stderr, flush=True)
    return 0 if all(ok for _, _, ok in outcomes) else 1


# -- replay ---------------------------------------------------------------------------------------

async def _replay(args: argparse.Namespace) -> int:
    from temporalio.worker import Replayer

    from temporal_ml.plugin import TemporalMLPlugin
    from temporal_ml.roles import load_workflow

    if (args.id is None) == (args.query is None):
        raise ConfigError("pass a workflow ID or --query (one of the two)")
    if not args.workflows:
        raise ConfigError("--workflows MODULE:CLASS is required: the workflow code to replay against")
    if os.getcwd() not in sys.path:  # like `python -m`: the user's modules are importable
        sys.path.insert(0, os.getcwd())
    workflows = []
    for ref in args.workflows:
        try:
            workflows.append(load_workflow(ref))
        except ConfigError as exc:
            raise ConfigError(f"--workflows: {exc}") from exc
    client = await client_for(args)
    if not args.verbose:  # the one-line verdicts below say it all; the SDK's own logs only repeat it
        logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    replayer = Replayer(workflows=workflows, plugins=[TemporalMLPlugin()], runtime=_quiet_runtime(args))
    if args.id is not None:
        await describe_run(client, args.id)  # a one-line "no run with id" first
        history = await client.get_workflow_handle(args.id).fetch_history()
        histories = [history]
    else:
        histories = [h async for h in client.list_workflows(args.query, limit=args.limit).map_histories()]
        if not histories:
            raise TemporalMLError(f"no runs match {args.query}")
    names = {_workflow_name(cls) for cls in workflows}
    failures = 0
    for history in histories:
        kind = history.events[0].workflow_execution_started_event_attributes.workflow_type.name
        if kind not in names:
            failures += 1
            print(f"{history.workflow_id}: is a {kind} run: pass its class with --workflows "
                  f"(given: {', '.join(sorted(names))})", file=sys.stderr, flush=True)
    histories = [h for h in histories
                 if h.events[0].workflow_execution_started_event_attributes.workflow_type.name in names]
    async with replayer.workflow_replay_iterator(_aiter(histories)) as results:
        async for result in results:
            events = len(result.history.events)
            if result.replay_failure is None:
                print(f"{result.history.workflow_id}: replayed {events} events: deterministic", flush=True)
            else:
                failures += 1
                print(f"{result.history.workflow_id}: NOT deterministic against the installed code: "
                      f"{_failure_message(result.replay_failure)}", file=sys.stderr, flush=True)
    return 1 if failures else 0


def _workflow_name(cls: type) -> str:
    from temporalio import workflow

    return str(workflow._Definition.must_from_class(cls).name)


def _quiet_runtime(args: argparse.Namespace) -> Any:
    """A runtime whose core logs only errors (all of them with ``--verbose``)."""
    from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    level = "INFO" if args.verbose else "ERROR"
    filter_ = TelemetryFilter(core_level=level, other_level=level)
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=filter_)))


def _failure_message(exc: BaseException) -> str:
    """The workflow-task failure's own message (the SDK wraps it in a long debug rendering)."""
    from temporal_ml.cli_errors import one_line

    found = re.search(r'message: "((?:[^"\\]|\\.)*)"', str(exc))
    return found.group(1) if found else one_line(exc)


async def _aiter(items: list[Any]) -> Any:
    for item in items:
        yield item


# -- setup ----------------------------------------------------------------------------------------

def _setup(args: argparse.Namespace) -> int:
    from temporal_ml.devserver import SEARCH_ATTRIBUTES

    if args.cloud:
        namespace = args.namespace or os.environ.get("TEMPORAL_NAMESPACE") or "<namespace>.<account>"
        for name, kind in SEARCH_ATTRIBUTES.items():
            print(f"tcld namespace search-attributes add --namespace {namespace} "
                  f"--search-attribute '{name}={kind}'")
        return 0
    return asyncio.run(_register(args, SEARCH_ATTRIBUTES))


async def _register(args: argparse.Namespace, wanted: dict[str, str] | Any) -> int:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    client = await client_for(args)
    namespace = client.namespace
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace))
    known = {**dict(existing.system_attributes), **dict(existing.custom_attributes)}
    missing: dict[str, Any] = {}
    for name, kind in wanted.items():
        value = IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        if name not in known:
            missing[name] = value
        elif known[name] != value:
            have = IndexedValueType.Name(known[name]).removeprefix("INDEXED_VALUE_TYPE_").title()
            raise TemporalMLError(f"search attribute {name} exists on namespace {namespace!r} as {have}, "
                                  f"temporal-ml needs {kind}: remove it or use another namespace")
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
        print(f"registered {', '.join(missing)} on namespace {namespace!r}")
    present = [n for n in wanted if n not in missing]
    if present:
        print(f"already registered on namespace {namespace!r}: {', '.join(present)}")
    return 0
