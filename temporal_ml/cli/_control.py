"""``temporal-ml pause|resume|stop ID`` and ``temporal-ml sweep ...``: steering runs.

* ``pause``/``resume``/``stop`` send the ``pause``/``resume``/``stop_early`` updates of a
  ``TrainingWorkflow``. Given a coordinator (or any run whose children carry ``TmlExperiment``), they
  go to each of its running trainings. A refused request (e.g. resuming a run that is not paused) is
  one line and exit code 1; the run is never disturbed.
  A sweep gets its own ``pause``/``resume``/``stop`` updates.
* ``sweep add-trials|stop-trial|set-concurrency|enqueue`` send a sweep's other updates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

from temporal_ml.cli._common import add_client_options, client_for
from temporal_ml.cli._spec import add_spec_parsers
from temporal_ml.errors import ConfigError, TemporalMLError
from temporal_ml.failures import RunRefused
from temporal_ml.runs import describe_run
from temporal_ml.sweeps import trial_name

__all__ = ["add_control_parsers", "UPDATES"]

#: Command -> update name of ``TrainingWorkflow``.
UPDATES = {"pause": "pause", "resume": "resume", "stop": "stop_early"}
#: Command -> update name of the sweep workflows (``SweepWorkflow``, ``LadderSweepWorkflow``: the same).
SWEEP_UPDATES = {"pause": "pause", "resume": "resume", "stop": "stop"}
SWEEP_KINDS = frozenset({"sweep", "ladder"})
_HELP = {
    "pause": "checkpoint and pause a training (or every training of an experiment)",
    "resume": "resume a paused training from its checkpoint",
    "stop": "stop a training early at a checkpoint of its current step (it returns that as its "
            "result); a sweep: start no new trials, let running ones finish, return its result",
}


def add_control_parsers(sub: Any) -> None:
    """Add ``pause``, ``resume``, ``stop`` and ``sweep`` to the subcommands."""
    for command, update in UPDATES.items():
        parser = sub.add_parser(command, help=_HELP[command], description=_HELP[command] + ".")
        parser.add_argument("id", metavar="ID", help="workflow id of a training, or of a coordinator")
        parser.add_argument("--timeout", type=float, default=120.0,
                            help="seconds to wait for the run to answer (a pause waits for its checkpoint)")
        add_client_options(parser)
        parser.set_defaults(handler=lambda args, u=update: asyncio.run(_control(args, u)))

    retry_help = ("run the failed trials of a sweep, or experiments of a coordinator, again from their "
                  "last checkpoints")
    retry_all = sub.add_parser(
        "retry", help=retry_help,
        description=retry_help.capitalize() + ". A running run takes them at once; a finished one is "
                    "reopened under its own workflow id (a new run that re-runs only them).")
    retry_all.add_argument("id", metavar="ID", help="workflow id of the sweep or coordinator")
    which = retry_all.add_mutually_exclusive_group()
    which.add_argument("--experiment", metavar="NAME", default=None, help="only this experiment (coordinator)")
    which.add_argument("--trial", type=int, default=None, metavar="INDEX", help="only this trial (sweep)")
    retry_all.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for an answer")
    add_client_options(retry_all)
    retry_all.set_defaults(handler=lambda args: asyncio.run(_retry(args)))

    sweep = sub.add_parser("sweep", help="start a sweep from a spec file; steer a running one",
                           description="Start a sweep from a spec file (start, validate) and steer "
                                       "a running one (pause/resume/stop: the top-level commands).")
    commands = sweep.add_subparsers(dest="sweep_command", required=True, metavar="COMMAND")
    add_spec_parsers(commands)
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
    retry = commands.add_parser(
        "retry-failed", help="run failed trials again from their last checkpoints",
        description="Run a sweep's failed trials again (each from its last checkpoint), before any new "
                    "trial: every failed trial it holds (its latest 100), or one with --trial. A "
                    "finished sweep is reopened under its own id to run them (same as `temporal-ml retry`).")
    retry.add_argument("id", metavar="ID", help="workflow id of the sweep")
    retry.add_argument("--trial", type=int, default=None, metavar="INDEX", help="only this trial")
    retry.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for an answer")
    add_client_options(retry)
    retry.set_defaults(handler=lambda args: asyncio.run(_retry(args)), experiment=None)
    audit = commands.add_parser(
        "audit", help="recompute every recorded suggestion with the searcher code installed here",
        description="Recompute every searcher suggestion of a sweep (running or finished) from what it "
                    "saw, and print each that differs from the point the sweep recorded and trained. "
                    "Exit status 1 when any differs (the sweep itself is unaffected: its decisions are "
                    "recorded).")
    audit.add_argument("id", metavar="ID", help="workflow id of the sweep")
    add_client_options(audit)
    audit.set_defaults(handler=lambda args: asyncio.run(_audit(args)))


async def _audit(args: argparse.Namespace) -> int:
    from temporal_ml.audit import audit_sweep

    client = await client_for(args)
    lines = await audit_sweep(client, args.id)
    changed = [line for line in lines if not line.equal]
    for line in changed:
        print(f"trial {line.index}: recorded {json.dumps(line.recorded, sort_keys=True)}, "
              f"recomputed {json.dumps(line.recomputed, sort_keys=True)}")
    if changed:
        print(f"{args.id}: {len(changed)} of {len(lines)} suggestions differ from the searcher code "
              "installed here", file=sys.stderr)
        return 1
    print(f"{args.id}: all {len(lines)} suggestions recompute equal")
    return 0


def _ended(status: str) -> str:
    """``completed`` -> ``finished``; ``failed``, ``terminated``, ... as they are."""
    return {"completed": "finished", "canceled": "been cancelled", "timed_out": "timed out",
            "continued_as_new": "continued as new"}.get(status, status)


def _json_object(text: str) -> dict[str, Any]:
    import json

    from temporal_ml.workflows._requests import MAX_REQUEST_BYTES

    if len(text.encode()) > MAX_REQUEST_BYTES:  # the sweep refuses it; over 2 MB the SDK could not
        raise argparse.ArgumentTypeError(f"too large ({len(text.encode())} bytes; at most "
                                         f"{MAX_REQUEST_BYTES})")
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

    from temporal_ml.failures import one_line

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


async def _retry(args: argparse.Namespace) -> int:
    """``temporal-ml retry`` / ``sweep retry-failed``: ``retry_failed`` to a running sweep or
    coordinator, or reopen a finished one (:mod:`temporal_ml.reopen`)."""
    from temporal_ml.reopen import reopen_coordinator, reopen_ladder, reopen_sweep

    client = await client_for(args)
    info, _ = await describe_run(client, args.id)
    if info.kind == "coordinator":
        if args.trial is not None:
            raise ConfigError("--trial INDEX is for sweeps: name a coordinator's experiment with --experiment NAME")
        if info.running:
            count = await _send(client, info.id, "retry_failed", [args.experiment], args.timeout)
            print(f"{info.id}: {count} failed experiments will run again from their last checkpoints")
        else:
            names = await reopen_coordinator(client, info.id, [args.experiment] if args.experiment else None)
            print(f"{info.id}: reopened; {len(names)} failed experiments run again from their last "
                  f"checkpoints: {', '.join(names)}")
        return 0
    if info.kind not in SWEEP_KINDS:
        raise ConfigError(f"run {info.id!r} is not a sweep or coordinator (kind {info.kind or 'unknown'}): "
                          "a training resumes from its checkpoint with `temporal-ml resume`")
    if args.experiment is not None:
        raise ConfigError("--experiment NAME is for coordinators: name a sweep's trial with --trial INDEX")
    if info.running:
        answer = await _send(client, info.id, "retry_failed", [args.trial], args.timeout)
        print(f"{info.id}: {_describe_answer('retry_failed', answer)}")
    else:
        reopen = reopen_sweep if info.kind == "sweep" else reopen_ladder
        indices = await reopen(client, info.id, args.trial)
        print(f"{info.id}: reopened; {len(indices)} failed trials run again from their last checkpoints: "
              f"{', '.join(str(i) for i in indices)}")
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
        return f"enqueued: it will run as trial {answer} ({trial_name(int(answer))})"
    if update == "retry_failed":
        return f"{answer} failed trials will run again from their last checkpoints"
    return f"{update.replace('_', ' ')}: {answer}"


# -- pause / resume / stop ------------------------------------------------------------------------

async def _coordinator_paused(client: Any, workflow_id: str) -> bool:
    """Whether a coordinator itself is paused (``coordinator_status``; ``False`` on no answer or an
    older coordinator without the query)."""
    try:
        status = await client.get_workflow_handle(workflow_id).query(
            "coordinator_status", rpc_timeout=timedelta(seconds=10))
    except Exception:  # noqa: BLE001 - no worker, or a coordinator without the query
        return False
    return isinstance(status, dict) and status.get("phase") == "paused"


async def _control(args: argparse.Namespace, update: str) -> int:
    from temporalio.client import (
        WorkflowUpdateFailedError,
        WorkflowUpdateRPCTimeoutOrCancelledError,
    )

    from temporal_ml.failures import one_line
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
    if info.kind == "coordinator" and update == "resume" and await _coordinator_paused(client, info.id):
        # paused by an infrastructure error (or its pause update): it resumes, its trainings run on
        answer = await _send(client, info.id, "resume", [], args.timeout)
        print(f"{info.id}: resumed: coordinator {answer['phase']}; failed experiments waiting for it run "
              "again from their last checkpoints")
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
            answer = await handle.execute_update(update, rpc_timeout=timedelta(seconds=args.timeout))
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return workflow_id, (f"no answer in {args.timeout:g}s: is a worker polling the run's task "
                                 "queue? (the request stays queued until one does)"), False
        except (WorkflowUpdateFailedError, TemporalMLError) as exc:
            return workflow_id, one_line(exc), False
        if isinstance(answer, dict) and "phase" in answer:  # a sweep not tagged yet (just started)
            return workflow_id, _describe_answer(update, answer), True
        progress = TrainProgress.model_validate(answer)
        checkpoint = progress.latest_checkpoint
        where = f", checkpoint @ {checkpoint.step}" if checkpoint is not None else ""
        if update == "resume":
            return workflow_id, f"resuming from step {progress.step}/{progress.max_steps}{where}", True
        return workflow_id, f"{progress.state} at step {progress.step}/{progress.max_steps}{where}", True

    outcomes = await asyncio.gather(*(one(t) for t in targets))
    for workflow_id, message, ok in outcomes:
        print(f"{workflow_id}: {message}", file=sys.stdout if ok else sys.stderr, flush=True)
    return 0 if all(ok for _, _, ok in outcomes) else 1
