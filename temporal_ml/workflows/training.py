"""``TrainingWorkflow``: snapshot the data, train durably, return a typed :class:`TrainResult`.

Subclass it::

    @workflow.defn
    class FineTune(TrainingWorkflow):
        @workflow.run
        async def run(self, inp: TrainingInput) -> TrainResult:
            return await super().run(inp)

Live control: the ``progress`` and ``latest_checkpoint`` queries; the ``pause``, ``resume`` and
``stop_early`` updates. Pausing cancels the training activity, which checkpoints at the next step
boundary; resuming starts a new one that continues from that checkpoint exactly. Stopping early
ends the run at its latest checkpoint and returns it as the result.

One node's path reads top to bottom here; a gang over several nodes (``TrainingInput.nodes > 1``)
takes ``_train_nodes`` of :mod:`temporal_ml.workflows._multinode`, and the input and the helpers
that start activities live in :mod:`temporal_ml.workflows._training_input`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from temporal_ml._names import check_name
    from temporal_ml._version import __version__
    from temporal_ml.activities.messages import (
        REPORT_SIGNAL,
        TRAIN,
        TrainOutcome,
        TrainRequest,
    )
    from temporal_ml.types import (
        CheckpointRef,
        DatasetSource,
        SnapshotRef,
        TrainConfig,
        TrainProgress,
        TrainResult,
    )
    from temporal_ml.workflows._multinode import MULTINODE_PATCH, MultiNodeTraining
    from temporal_ml.workflows._tags import registered_search_attributes, tag
    from temporal_ml.workflows._training_input import (
        TrainingInput,
        create_snapshot,
        no_worker_timeout,
        parse_report,
        train_retry_policy,
    )

__all__ = ["TrainingWorkflow", "TrainingInput", "create_snapshot", "train_retry_policy", "parse_report",
           "no_worker_timeout", "MULTINODE_PATCH"]


#: Run control as a state machine. The phase of a run (derived from what was requested, see
#: ``TrainingWorkflow._phase``) decides which control requests its update validators admit; any other
#: request is refused with a message naming the phase, and never disturbs the run. Admitted requests
#: are idempotent (pausing a paused run, stopping a stopping run: no-ops).
#:
#: ============  ==========================================  =====================================
#: phase         states                                      admits
#: ============  ==========================================  =====================================
#: ``running``   pending, snapshotting, training             pause, stop_early
#: ``paused``    pausing (checkpointing), paused             pause, resume, stop_early
#: ``stopping``  stopping (ending at a checkpoint)           stop_early
#: ``done``      done                                        nothing
#: ``failed``    failed                                      nothing
#: ============  ==========================================  =====================================
CONTROL: dict[str, frozenset[str]] = {
    "pause": frozenset({"running", "paused"}),
    "resume": frozenset({"paused"}),
    "stop_early": frozenset({"running", "paused", "stopping"}),
}
_WHY = {
    "running": "it is not paused", "paused": "it is paused", "stopping": "it is stopping early",
    "done": "it has finished", "failed": "it has failed",
}
#: ``workflow.patched`` id of the run-control state machine. Histories recorded before it (no marker)
#: replay with the previous behaviour: interruption judged by the requested flags, stop without a
#: checkpoint by cancelling a just-started activity, updates returning as soon as the activity ended.
CONTROL_PATCH = "tml-run-control-v2"

#: ``workflow.patched`` id of the fix for a pause or stop that arrives in the same workflow task
#: that starts the training activity: the activity is cancelled before it is ever scheduled, its
#: handle raises a bare ``asyncio.CancelledError`` and (before the fix) the run failed as cancelled.
#: Now the run treats it like any activity it interrupted. Histories recorded before it replay as
#: they ran.
UNSCHEDULED_CANCEL_PATCH = "tml-unscheduled-cancel-v1"
#: ``workflow.patched`` id: a stop that was requested while the training activity finished its last
#: steps on its own (the activity learns of a cancel only when it heartbeats) still counts, and the
#: run is reported as stopped early: a sweep records the trial stopped and never promotes it.
#: Histories recorded before it replay as they ran.
STOP_WINS_PATCH = "tml-stop-wins-v1"



class TrainingWorkflow(MultiNodeTraining):
    """Base of training workflows; see the module docstring."""

    def __init__(self) -> None:
        self._progress = TrainProgress()
        self._paused = False
        self._stop_requested = False
        self._activity: workflow.ActivityHandle[TrainOutcome] | None = None
        self._cancelled = False  # this workflow asked the current activity to stop
        self._stopping_activity = False  # the current activity stops by itself at its first step
        self._rollover = False
        self._finished = False
        self._started = False  # run() has read its input (a continued run: its carried state)
        self._v2: bool | None = None
        self._gang: list[workflow.ActivityHandle[TrainOutcome]] = []  # the node activities
        self._gangs = 0  # gangs started over several nodes (their ids)
        self._gang_failures = 0
        self._gang_failed = False  # the last gang of this workflow run failed (the next one recovers)
        self._endpoints: dict[str, str] = {}  # gang id -> endpoint node 0 published (rendezvous auto)

    def _control_v2(self) -> bool:
        if self._v2 is None:
            self._v2 = workflow.patched(CONTROL_PATCH)
        return self._v2

    # -- the run -----------------------------------------------------------------------------------

    async def run(self, inp: TrainingInput) -> TrainResult:
        """Snapshot (if needed), train until done or stopped early, return the result."""
        v2 = self._control_v2()
        run_id = inp.run_id or workflow.info().workflow_id
        try:  # the default run id (the workflow id) becomes a storage path component too
            check_name(run_id, "run id")
        except ValueError as exc:
            raise ApplicationError(f"{exc}; pass a valid run_id", type="ConfigError",
                                   non_retryable=True) from None
        if inp.carried is not None:
            self._progress, self._paused = inp.carried, inp.carried_paused
            self._set_state("pending")
        elif inp.continue_from is not None:  # the first activity continues from it (not a resume)
            self._progress = self._progress.model_copy(update={"latest_checkpoint": inp.continue_from,
                                                               "step": inp.continue_from.step})
        self._started = True  # control requests that came with the first task are judged now
        snapshot = inp.snapshot or await self.snapshot(inp.dataset)  # type: ignore[arg-type]
        registered = (frozenset(inp.search_attributes) if inp.search_attributes is not None
                      else await registered_search_attributes())  # a parent that knows saves a round trip
        self._tag(run_id, snapshot, inp.config, registered)
        self._progress = self._progress.model_copy(update={"max_steps": inp.config.max_steps})
        outcome: TrainOutcome | None = None
        while outcome is None:
            if self._paused and not self._stop_requested:
                self._set_state("paused")
            await workflow.wait_condition(lambda: not self._paused or self._stop_requested)
            if self._stop_requested and self._progress.latest_checkpoint is not None:
                break
            outcome = await self._train_once(inp, run_id, snapshot)
            if outcome is None and self._rollover and not self._stop_requested:
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() or (v2 and self._stop_requested))
                if not self._stop_requested:
                    workflow.continue_as_new(inp.model_copy(update={
                        "run_id": run_id, "snapshot": snapshot, "dataset": None,
                        "carried": self._progress, "carried_paused": self._paused,
                    }))
        result = self._result(run_id, snapshot, inp.config, outcome)
        self._finished = True
        if v2:  # let a stop_early that waits for this result answer before the run closes
            await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def snapshot(self, source: DatasetSource) -> SnapshotRef:
        """Snapshot the dataset (an activity). Override to change timeouts or the queue."""
        self._set_state("snapshotting")
        return await create_snapshot(source)

    async def _train_once(self, inp: TrainingInput, run_id: str, snapshot: SnapshotRef) -> TrainOutcome | None:
        """One training activity; ``None`` if this workflow interrupted it (pause, stop, rollover).

        A stop requested before the run has any checkpoint starts the activity in stop mode: it
        resumes (or sets up) and checkpoints at its first step boundary, and that is the result.
        """
        if inp.nodes > 1 and workflow.patched(MULTINODE_PATCH):
            return await self._train_nodes(inp, run_id, snapshot)
        v2 = self._control_v2()
        stop_now = v2 and self._stop_requested
        self._set_state("stopping" if stop_now else "training")
        request = TrainRequest(
            run_id=run_id, config=inp.config, snapshot=snapshot,
            resume_from=self._progress.latest_checkpoint, resumes=self._progress.resumes,
            progress_every_seconds=inp.progress_every_seconds, report_to=inp.report_to,
            stop_at_start=stop_now, init_from=inp.init_from,
        )
        self._activity = workflow.start_activity(
            TRAIN, request, result_type=TrainOutcome,
            task_queue=inp.task_queue,
            start_to_close_timeout=timedelta(days=30), schedule_to_start_timeout=no_worker_timeout(inp),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=train_retry_policy(inp.max_attempts),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        self._cancelled, self._stopping_activity = False, stop_now
        if self._paused or self._stop_requested or self._rollover:  # requested while starting
            self._interrupt()
        try:
            outcome = await self._activity
        except asyncio.CancelledError:
            # Interrupted in the same workflow task that started it: never scheduled, nothing ran.
            if (self._cancelled and self._activity.cancelled()
                    and workflow.patched(UNSCHEDULED_CANCEL_PATCH)):
                self._interrupted()
                return None
            raise
        except ActivityError as err:
            ours = self._cancelled if v2 else (self._paused or self._stop_requested or self._rollover)
            if isinstance(err.cause, CancelledError) and ours:
                self._interrupted()
                return None
            self._set_state("failed")
            raise
        finally:
            self._activity = None
            self._cancelled = self._stopping_activity = False
        self._record(TrainProgress(step=outcome.step, latest_checkpoint=outcome.checkpoint,
                                   resumes=outcome.resumes, loss=outcome.metrics.get("loss")))
        return outcome

    def _interrupt(self) -> None:
        """Ask the running activity (every node's, in a gang over several nodes) to checkpoint and
        stop (once; not one that stops by itself)."""
        if self._activity is not None and not self._cancelled and not self._stopping_activity:
            self._cancelled = True
            for handle in self._gang or [self._activity]:
                handle.cancel()

    def _result(self, run_id: str, snapshot: SnapshotRef, config: TrainConfig,
                outcome: TrainOutcome | None) -> TrainResult:
        ckpt = outcome.checkpoint if outcome else self._progress.latest_checkpoint
        assert ckpt is not None
        self._set_state("done")
        metrics = outcome.metrics if outcome else dict(ckpt.metrics)
        stopped = outcome is None or outcome.stopped or ckpt.step < config.max_steps
        if not stopped and self._stop_requested:  # asked to stop while it finished by itself
            stopped = workflow.patched(STOP_WINS_PATCH)
        return TrainResult(
            run_id=run_id, snapshot=snapshot, checkpoint=ckpt, steps=ckpt.step, metrics=metrics,
            resumes=self._progress.resumes, pauses=self._progress.pauses,
            stopped_early=stopped, config_hash=config.config_hash(),
        )

    # -- bookkeeping -------------------------------------------------------------------------------

    def _interrupted(self) -> None:
        """The training activity ended because this workflow asked it to: stopping, paused (one
        more pause counted) or rolling over."""
        if self._paused and not self._stop_requested:
            self._progress = self._progress.model_copy(update={"pauses": self._progress.pauses + 1})
        self._set_state("stopping" if self._stop_requested else "paused" if self._paused else "training")

    def _set_state(self, state: str) -> None:
        self._progress = self._progress.model_copy(update={"state": state})

    def _record(self, report: TrainProgress) -> None:
        """Merge a report, never moving the latest checkpoint backwards."""
        current = self._progress.latest_checkpoint
        new = report.latest_checkpoint
        latest = new if new is not None and (current is None or new.step >= current.step) else current
        self._progress = self._progress.model_copy(update={
            "step": report.step,
            "epoch": report.epoch, "loss": report.loss if report.loss is not None else self._progress.loss,
            "samples_per_second": report.samples_per_second or self._progress.samples_per_second,
            "latest_checkpoint": latest, "resumes": max(report.resumes, self._progress.resumes),
            "eval_rows": report.eval_rows,
        })

    def _tag(self, run_id: str, snapshot: SnapshotRef, config: TrainConfig,
             registered: frozenset[str] | None) -> None:
        """Search attributes (those the namespace defines) and memo, so runs can be found in the
        Web UI (e.g. by snapshot)."""
        tag(registered, [
            SearchAttributeKey.for_keyword("TmlKind").value_set("train"),
            SearchAttributeKey.for_keyword("TmlRunId").value_set(run_id),
            SearchAttributeKey.for_keyword("TmlSnapshotId").value_set(snapshot.id),
            SearchAttributeKey.for_keyword("TmlConfigHash").value_set(config.config_hash()),
        ], {"snapshot": snapshot.id, "trainable": config.trainable,
            "max_steps": config.max_steps, "temporal_ml": __version__})

    # -- handlers ----------------------------------------------------------------------------------

    @workflow.signal(name=REPORT_SIGNAL)
    def _on_report(self, *args: Any) -> None:
        report = parse_report(args)
        if report is None:
            return
        self._record(report)
        if workflow.info().is_continue_as_new_suggested() and not self._rollover:
            # The history is getting long (e.g. a multi-day run): checkpoint the run like a pause,
            # then continue as a new run of this workflow that resumes from that checkpoint.
            self._rollover = True
            self._interrupt()

    @workflow.query
    def progress(self) -> TrainProgress:
        """Step, epoch, loss, throughput, latest checkpoint, resumes and state of the run."""
        return self._progress

    @workflow.query
    def latest_checkpoint(self) -> CheckpointRef | None:
        """The newest committed checkpoint the workflow knows of."""
        return self._progress.latest_checkpoint

    def _phase(self) -> str:
        """The run-control phase (see :data:`CONTROL`)."""
        if self._finished or self._progress.state in ("done", "failed"):
            return "failed" if self._progress.state == "failed" else "done"
        if self._stop_requested:
            return "stopping"
        return "paused" if self._paused else "running"

    async def _admitted(self, request: str) -> None:
        """In a handler: a request that came before run() had read its input (the first workflow
        task of a run, e.g. one continued as new while paused) was admitted by its validator
        unjudged; judge it now, and refuse it by failing the update (the run is unharmed)."""
        if not self._started:
            await workflow.wait_condition(lambda: self._started)
            self._admit(request)

    def _validate(self, request: str) -> None:
        if self._started:  # before that the phase is unknown: the handler decides (_admitted)
            self._admit(request)

    def _admit(self, request: str) -> None:
        phase = self._phase()
        if phase not in CONTROL[request]:
            raise ApplicationError(
                f"cannot {request.replace('_', ' ')} run {workflow.info().workflow_id!r}: "
                f"{_WHY[phase]} (state {self._progress.state})",
                type="RunControlRefused", non_retryable=True,
            )

    @workflow.update
    async def pause(self) -> TrainProgress:
        """Checkpoint and pause training (no-op if already paused).

        Returns once the training activity has checkpointed and stopped (or at once if none runs),
        or when a ``resume`` or ``stop_early`` overtakes the pause.
        """
        await self._admitted("pause")
        self._paused = True
        if self._activity is not None:
            if self._control_v2():
                self._set_state("pausing")
            self._interrupt()
            if self._control_v2():
                await workflow.wait_condition(
                    lambda: self._activity is None or not self._paused or self._stop_requested)
            else:
                await workflow.wait_condition(lambda: self._activity is None)
        return self._progress

    @pause.validator
    def _validate_pause(self) -> None:
        self._validate("pause")

    @workflow.update
    async def resume(self) -> TrainProgress:
        """Continue a paused run from its checkpoint (also while the pause is still checkpointing)."""
        await self._admitted("resume")
        self._paused = False
        return self._progress

    @resume.validator
    def _validate_resume(self) -> None:
        self._validate("resume")

    @workflow.update
    async def stop_early(self) -> TrainProgress:
        """End the run at a checkpoint of its current step; the workflow returns it as the result.

        Returns the run's final progress: its ``latest_checkpoint`` is the result's checkpoint.
        """
        await self._admitted("stop_early")
        self._stop_requested = True
        self._interrupt()
        if self._control_v2():
            await workflow.wait_condition(lambda: self._finished)
        elif self._activity is not None:
            await workflow.wait_condition(lambda: self._activity is None)
        return self._progress

    @stop_early.validator
    def _validate_stop_early(self) -> None:
        self._validate("stop_early")
