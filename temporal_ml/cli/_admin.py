"""``temporal-ml replay ID`` and ``temporal-ml setup``: checks and set-up around a deployment.

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
from typing import Any

from temporal_ml.cli._common import add_client_options, client_for
from temporal_ml.errors import ConfigError, TemporalMLError
from temporal_ml.runs import describe_run

__all__ = ["add_admin_parsers"]


def add_admin_parsers(sub: Any) -> None:
    """Add ``replay`` and ``setup`` to the subcommands."""
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
    from temporal_ml.failures import one_line

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
