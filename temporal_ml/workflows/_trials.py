"""The one trial engine of the coordinator, the sweep and the ladder: train, then evaluate.

A trial is a training child workflow followed by an evaluation child (or an evaluation inside the
training activity, ``evaluate_in_training``), both tagged with the parent's experiment through the
conditional search-attribute helper (:mod:`temporal_ml.workflows._tags`), with a child's failure
mapped to one line (the innermost cause's message). Progress reports of the running trainings reach
the parent as ``REPORT_SIGNAL`` signals; :class:`ReportRouter` tells which trial each one belongs to.

Workflow code only (deterministic): the parent keeps the state, this module issues the commands::

    call = TrialCall(training_workflow="MyTraining", eval_workflow="MyEval", config=config,
                     snapshot=snapshot, train_id=f"{run_id}--t0003--train",
                     eval_id=f"{run_id}--t0003--eval", settings=settings,
                     tags=trial_tags(registered, run_id))
    outcome = await run_trial(call, on_trained=lambda train: ...)
    if outcome.error: ...   # one line: why the training or the evaluation failed
    else: outcome.metrics   # the evaluation's metrics (non-finite values included)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.sweep import (
        AWAIT_CHILD,
        CHILD_NOT_STARTED,
        AwaitChildRequest,
        AwaitedChild,
    )
    from temporal_ml.errors import NO_WORKER_ERROR, root_message, root_type
    from temporal_ml.types import (
        CheckpointRef,
        EvalResult,
        SnapshotRef,
        TrainConfig,
        TrainProgress,
        TrainResult,
    )
    from temporal_ml.workflows._tags import child_search_attributes
    from temporal_ml.workflows.evaluation import EvalInput
    from temporal_ml.workflows.training import TrainingInput, parse_report

__all__ = [
    "EXPERIMENT",
    "TrialSettings",
    "TrialCall",
    "TrialOutcome",
    "ReportRouter",
    "run_trial",
    "trial_tags",
    "root_message",
    "root_type",
    "Liveness",
    "StartGate",
]

#: The search attribute every child of a coordinator or sweep carries: the parent's run id.
EXPERIMENT = SearchAttributeKey.for_keyword("TmlExperiment")

K = TypeVar("K")


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of one parent shares (from the parent's input)."""

    train_task_queue: str | None = None
    eval_task_queue: str | None = None
    heartbeat_timeout_seconds: float = 30.0
    max_attempts: int = 5
    progress_every_seconds: float = 10.0
    eval_split: str = "dev"
    #: also give the evaluation the heartbeat timeout (the coordinator does; sweeps keep the default)
    eval_heartbeat: bool = False
    #: evaluate inside the training activity (the ``eval_*`` metrics of its result)
    evaluate_in_training: bool = False
    #: a training or evaluation activity no worker takes from its queue for this long fails the
    #: trial with ``NoWorkerError`` (``None``: it waits for a worker forever)
    no_worker_timeout_seconds: float | None = None


@dataclass
class TrialCall:
    """One trial to run: its config, data, child ids and the parent's settings.

    ``run_id`` is the training's run id (its checkpoint directory): the training child's workflow id
    unless set (a ladder's rungs share one run id, each with its own child).
    """

    training_workflow: str | type
    eval_workflow: str | type
    config: TrainConfig
    snapshot: SnapshotRef
    train_id: str
    eval_id: str
    settings: TrialSettings
    tags: TypedSearchAttributes | None = None
    run_id: str | None = None
    report_to: list[str] = field(default_factory=list)
    #: the parent's :class:`Liveness` (``ReportRouter.alive``): a child no worker took while the
    #: workers served other trials lately goes back into the queue (``None``: it fails the trial)
    alive: Liveness | None = None
    #: the children outlive the parent's run (``ParentClosePolicy.ABANDON``): it continues as new
    #: without waiting for them, and the next run waits for them (``rejoin``)
    abandon: bool = False
    #: an earlier run of the parent started this trial: wait for its training (``train``) or its
    #: evaluation (``eval``) instead of starting them
    rejoin: Literal["train", "eval"] | None = None
    #: counts the children being started (the parent continues as new once none is)
    gate: StartGate = field(default_factory=lambda: StartGate())
    #: our search attributes the namespace defines, as the parent found them: its children tag
    #: themselves without asking again (``None``: unknown, they ask)
    registered: frozenset[str] | None = None
    #: the run's checkpoint the training goes on from (a scheduler's next rung: not a resume)
    continue_from: CheckpointRef | None = None


@dataclass
class TrialOutcome:
    """What a trial came to: its training result (if training ended), the evaluation's metrics
    (``None`` when it failed) and, when it failed, why in one line."""

    train: TrainResult | None = None
    metrics: dict[str, float] | None = None
    evaluation: EvalResult | None = None
    error: str | None = None
    #: the innermost cause's error type (e.g. ``StorageError``: the store could not be written)
    error_type: str | None = None


def trial_tags(registered: frozenset[str] | None, run_id: str) -> TypedSearchAttributes | None:
    """The search attributes of a trial's children on this namespace (none on a bare one)."""
    return child_search_attributes(registered, [SearchAttributePair(EXPERIMENT, run_id)])


async def run_trial(call: TrialCall, *,
                    on_started: Callable[[workflow.ChildWorkflowHandle[Any, TrainResult] | None], None] | None = None,
                    on_trained: Callable[[TrainResult], None] | None = None) -> TrialOutcome:
    """Train, then evaluate; a child's failure becomes ``TrialOutcome.error`` (never raised).

    ``on_started`` gets the training child's handle once it started (to stop it early; ``None`` for a
    training an earlier run started, ``call.rejoin``) and ``on_trained`` the training result before
    the evaluation starts (to show the trial evaluating).
    """
    s = call.settings
    config = call.config
    if s.evaluate_in_training:
        config = config.model_copy(update={"eval_split": s.eval_split})
    outcome = TrialOutcome()
    alive = call.alive
    policy = workflow.ParentClosePolicy.ABANDON if call.abandon else workflow.ParentClosePolicy.TERMINATE
    try:
        train: TrainResult | None = None
        if call.rejoin is not None:  # started by an earlier run of the parent: wait for it
            if on_started is not None:
                on_started(None)
            awaited = await _await_child(call.train_id, "train", alive, s)
            train = None if awaited is None else TrainResult.model_validate(awaited)
        while train is None:
            try:
                with call.gate:
                    handle = await workflow.start_child_workflow(
                        call.training_workflow,  # type: ignore[arg-type]  # a name or a workflow class
                        TrainingInput(
                            config=config, snapshot=call.snapshot, run_id=call.run_id or call.train_id,
                            task_queue=s.train_task_queue, heartbeat_timeout_seconds=s.heartbeat_timeout_seconds,
                            max_attempts=s.max_attempts, progress_every_seconds=s.progress_every_seconds,
                            report_to=call.report_to, continue_from=call.continue_from, **_no_worker(s),
                            **_known(call),
                        ),
                        id=call.train_id, result_type=TrainResult, search_attributes=call.tags,
                        **_policy(policy),
                    )
                if on_started is not None:
                    on_started(handle)
                train = await handle
            except ChildWorkflowError as err:
                if not _workers_busy(root_type(err), alive, "train", s):
                    raise
                workflow.logger.warning("%s waits for a busy training worker: queued again", call.train_id)
        outcome.train = train
        if alive is not None:
            alive.saw("train")
        if on_trained is not None and call.rejoin != "eval":
            on_trained(train)
        if s.evaluate_in_training:
            outcome.metrics = {k[len("eval_"):]: v for k, v in train.metrics.items() if k.startswith("eval_")}
            return outcome
        heartbeat = {"heartbeat_timeout_seconds": s.heartbeat_timeout_seconds} if s.eval_heartbeat else {}
        evaluation: EvalResult | None = None
        if call.rejoin == "eval":
            awaited = await _await_child(call.eval_id, "eval", alive, s)
            evaluation = None if awaited is None else EvalResult.model_validate(awaited)
        while evaluation is None:
            try:
                with call.gate:
                    eval_handle = await workflow.start_child_workflow(
                        call.eval_workflow,  # type: ignore[arg-type]  # a name or a workflow class
                        EvalInput.from_result(config, train, s.eval_split, task_queue=s.eval_task_queue,
                                              **heartbeat, **_no_worker(s)).model_copy(update=_known(call)),
                        id=call.eval_id, result_type=EvalResult, search_attributes=call.tags,
                        **_policy(policy),
                    )
                evaluation = await eval_handle
            except ChildWorkflowError as err:
                if not _workers_busy(root_type(err), alive, "eval", s):
                    raise
                workflow.logger.warning("%s waits for a busy evaluation worker: queued again", call.eval_id)
        outcome.evaluation = evaluation
        if alive is not None:
            alive.saw("eval")
        outcome.metrics = dict(evaluation.metrics)
    except ChildWorkflowError as err:
        outcome.error, outcome.error_type = root_message(err), root_type(err)
    except _ChildFailed as failed:
        outcome.error, outcome.error_type = failed.message, failed.error_type
    if outcome.error_type == NO_WORKER_ERROR:
        queue = s.train_task_queue if outcome.train is None else s.eval_task_queue
        what = "training" if outcome.train is None else "evaluation"
        where = f"task queue {queue!r}" if queue else "the parent's task queue"
        outcome.error = (f"no worker took the {what} from {where} in {s.no_worker_timeout_seconds:g}s: "
                         "start one, then resume")
    return outcome


class _ChildFailed(Exception):
    """A child an earlier run started failed (read by :data:`AWAIT_CHILD`)."""

    def __init__(self, message: str, error_type: str | None) -> None:
        super().__init__(message)
        self.message, self.error_type = message, error_type


async def _await_child(workflow_id: str, kind: str, alive: Liveness | None, s: TrialSettings) -> dict[str, Any] | None:
    """The result (JSON) of a child an earlier run of the parent started; ``None`` when it was never
    started, or no worker took it while workers of its kind were busy (start it now); raises
    :class:`_ChildFailed`."""
    awaited: AwaitedChild = await workflow.execute_activity(
        AWAIT_CHILD, AwaitChildRequest(workflow_id=workflow_id), result_type=AwaitedChild,
        start_to_close_timeout=timedelta(days=365), heartbeat_timeout=timedelta(seconds=60),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
    )
    if awaited.error is not None:
        if awaited.error_type == CHILD_NOT_STARTED or _workers_busy(awaited.error_type, alive, kind, s):
            return None
        raise _ChildFailed(awaited.error, awaited.error_type)
    return awaited.result


def _policy(policy: workflow.ParentClosePolicy) -> dict[str, Any]:
    """The parent close policy of a trial's children: left out when it is the default (TERMINATE),
    so the commands of runs recorded before children were abandoned stay the same."""
    return {} if policy == workflow.ParentClosePolicy.TERMINATE else {"parent_close_policy": policy}


class StartGate:
    """Counts the trial children being started: a parent continues as new only once every running
    trial's child has started (its id is then the trial's to wait for in the next run)."""

    def __init__(self) -> None:
        self.starting = 0

    def __enter__(self) -> StartGate:
        self.starting += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self.starting -= 1


def _workers_busy(error_type: str | None, alive: Liveness | None, kind: str, s: TrialSettings) -> bool:
    """A child failed for want of a worker while workers of its kind served this parent lately:
    they are busy (every slot taken), not gone, so the child goes back into the queue."""
    return (alive is not None and s.no_worker_timeout_seconds is not None and error_type == NO_WORKER_ERROR
            and alive.recent(kind, s.no_worker_timeout_seconds))


class Liveness:
    """When a parent last saw a worker of each kind (``train``, ``eval``) at work for it: a progress
    report, a finished training or evaluation. Workflow code (``workflow.now()``), not carried
    through continue-as-new.

    It tells a queue whose workers are busy from one with no worker: a trial that no worker took in
    ``no_worker_timeout_seconds`` while another trial's training reported progress within that time
    waits in the queue again instead of pausing the parent.
    """

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}

    def saw(self, kind: str) -> None:
        """A worker of ``kind`` did work for this parent now."""
        self._seen[kind] = workflow.now()

    def recent(self, kind: str, seconds: float) -> bool:
        """Whether a worker of ``kind`` did work for this parent in the last ``seconds``."""
        seen = self._seen.get(kind)
        return seen is not None and (workflow.now() - seen).total_seconds() < seconds


def _no_worker(s: TrialSettings) -> dict[str, Any]:
    """The no-worker timeout of a child's input, when set (left out: inputs of earlier runs replay)."""
    return {} if s.no_worker_timeout_seconds is None else {"no_worker_timeout_seconds": s.no_worker_timeout_seconds}


def _known(call: TrialCall) -> dict[str, Any]:
    """The search attributes the parent found, for a child's input (left out when unknown)."""
    return {} if call.registered is None else {"search_attributes": sorted(call.registered)}


class ReportRouter(Generic[K]):
    """Which trial a training's progress report (``REPORT_SIGNAL``) belongs to, by run id."""

    def __init__(self) -> None:
        self._by_run_id: dict[str, K] = {}
        #: when a training worker last reported progress for this parent (and other signs of life)
        self.alive = Liveness()

    def add(self, run_id: str, key: K) -> None:
        """Route reports of training run ``run_id`` to ``key``."""
        self._by_run_id[run_id] = key

    def route(self, args: tuple[Any, ...]) -> tuple[K, TrainProgress] | None:
        """The trial key and the report of a signal's arguments; ``None`` for a stray or bad one."""
        report = parse_report(args)
        if report is None:
            return None
        key = self._by_run_id.get(report.run_id or "")
        if key is None:
            return None
        self.alive.saw("train")
        return key, report
