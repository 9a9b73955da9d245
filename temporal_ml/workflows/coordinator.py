"""``CoordinatorWorkflow``: many experiments (train + evaluate each) as one durable unit.

Each experiment runs as two child workflows with deterministic, readable ids derived from the
coordinator's canonical run id: ``<run_id>--<name>--train`` and ``<run_id>--<name>--eval``. The
coordinator snapshots the data once (every experiment trains and evaluates on the same snapshot),
enforces ``max_concurrency`` itself, keeps going when an experiment fails (its result says why), and
returns an :class:`ExperimentResult` per config plus a leaderboard. The ``status`` query reports
every experiment's state and latest progress (training activities report to the coordinator too).

An experiment that fails because the infrastructure did (``infrastructure_errors``: a full or
refused store, no worker on a task queue for ``no_worker_timeout_seconds``) is not a result: the
coordinator **pauses** (``coordinator_status`` says why; no experiment starts) and runs it again
from its last checkpoint on the ``resume`` update (``temporal-ml resume ID``). The
``retry_failed`` update (``temporal-ml retry ID [--experiment NAME]``) runs failed experiments
again; :func:`temporal_ml.reopen.reopen_coordinator` does it for a finished coordinator, under its
own workflow id.

Subclass it and name the child workflow types::

    @workflow.defn
    class Sweep(CoordinatorWorkflow):
        training_workflow = "BertFineTune"   # a TrainingWorkflow subclass registered on the worker
        eval_workflow = "BertEval"           # an EvalWorkflow subclass

        @workflow.run
        async def run(self, inp: CoordinatorInput) -> CoordinatorResult:
            return await super().run(inp)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, ClassVar, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from temporal_ml._version import __version__
    from temporal_ml.activities.messages import REPORT_SIGNAL
    from temporal_ml.activities.sweep import WRITE_TABLE_PART, TablePartRequest
    from temporal_ml.types import (
        CoordinatorResult,
        EvalResult,
        ExperimentResult,
        ExperimentSpec,
        ExperimentStatus,
        LeaderboardEntry,
        Lineage,
        SnapshotRef,
        TrainResult,
    )
    from temporal_ml.workflows._coordinator_input import (
        CoordinatorCarry,
        CoordinatorInput,
        CoordinatorStatus,
        check_child_ids,
        child_id,
        read_coordinator_table,
    )
    from temporal_ml.workflows._requests import MISSING, check_arity, refuse, shown
    from temporal_ml.workflows._tags import registered_search_attributes, tag
    from temporal_ml.workflows._trials import (
        EXPERIMENT,
        ReportRouter,
        StartGate,
        TrialCall,
        TrialSettings,
        run_trial,
        trial_tags,
    )
    from temporal_ml.workflows.training import create_snapshot

__all__ = ["CoordinatorWorkflow", "CoordinatorInput", "CoordinatorCarry", "CoordinatorStatus",
           "read_coordinator_table", "child_id", "check_child_ids"]

#: ``workflow.patched`` id of the coordinator's failure policy: an experiment that fails for an
#: infrastructure error pauses the coordinator and runs again on ``resume``. Histories recorded
#: before it record such an experiment as failed, as they did.
INFRA_PAUSE_PATCH = "tml-coordinator-infra-pause-v1"
#: ``workflow.patched`` id: no drain at continue-as-new. A coordinator's running experiments' children
#: are abandoned by a run that continues as new (``ParentClosePolicy.ABANDON``) and the next run
#: waits for them (the ``AWAIT_CHILD`` activity, which ``create_worker`` registers on every worker
#: with workflows), so its slots stay busy across a rollover. Runs recorded before it drain.
NO_DRAIN_PATCH = "tml-coordinator-no-drain-v1"


class CoordinatorWorkflow:
    """Base of coordinators; see the module docstring. Subclasses set the child workflow types."""

    #: The training child workflow (a registered ``TrainingWorkflow`` subclass: name or class).
    training_workflow: ClassVar[str | type] = ""
    #: The evaluation child workflow (a registered ``EvalWorkflow`` subclass: name or class).
    eval_workflow: ClassVar[str | type] = ""

    def __init__(self) -> None:
        self._status: dict[str, ExperimentStatus] = {}
        self._reports: ReportRouter[str] = ReportRouter()
        self._running = 0
        self._registered: frozenset[str] | None = None
        self._carry = CoordinatorCarry()
        self._results: dict[str, ExperimentResult] = {}  # finished in this run
        self._started_here = 0
        self._inp: CoordinatorInput | None = None
        self._respawn: list[str] = []  # failed experiments retry_failed asked to run again
        self._done = False
        self._no_drain = False  # experiments outlive a run that continues as new (NO_DRAIN_PATCH)
        self._gate = StartGate()  # experiments' children being started

    async def run(self, inp: CoordinatorInput) -> CoordinatorResult:
        """Run every experiment (at most ``max_concurrency`` at once) and rank the results.

        When the history grows long (Temporal suggests continue-as-new) the coordinator stops
        starting experiments, waits until the running ones' children have started, and continues as
        a new run that carries the finished ones' names and scores (their results: in the table, or
        carried inline) and the running ones' names: their children run on, and the next run waits
        for them. Cancelling or terminating a coordinator therefore leaves its running trainings
        running (``pause`` it, or stop them).
        """
        run_id = inp.run_id or workflow.info().workflow_id
        try:  # the default run id (the workflow id) is only known here: check what derives from it
            check_child_ids(run_id, [spec.name for spec in inp.experiments])
        except ValueError as exc:
            raise ApplicationError(f"{exc} (pass a valid run_id)", type="ConfigError",
                                   non_retryable=True) from None
        reopened = inp.carried is not None and inp.carried.reopened
        if inp.carried is not None:
            self._carry = inp.carried.model_copy(update={"runs": inp.carried.runs + 1, "reopened": False})
        self._inp = inp
        for spec in inp.experiments:
            self._status[spec.name] = ExperimentStatus(name=spec.name, max_steps=spec.config.max_steps,
                                                       state=self._carry.finished.get(spec.name, "pending"))
            self._reports.add(self._child_id(run_id, spec.name, "train"), spec.name)
        snapshot = inp.snapshot or await create_snapshot(inp.dataset)  # type: ignore[arg-type]
        self._registered = await registered_search_attributes()
        if inp.carried is None or reopened:
            tag(self._registered, [
                SearchAttributeKey.for_keyword("TmlKind").value_set("coordinator"),
                EXPERIMENT.value_set(run_id),
                SearchAttributeKey.for_keyword("TmlSnapshotId").value_set(snapshot.id),
            ])
        # running experiments outlive a run: it continues as new without waiting for them (runs
        # recorded before wait for every running experiment first)
        self._no_drain = workflow.patched(NO_DRAIN_PATCH)
        rejoin, self._carry.running = self._carry.running, {}
        tasks = [asyncio.create_task(self._slot(inp, run_id, spec, snapshot, rejoin.get(spec.name)))
                 for spec in inp.experiments if spec.name not in self._carry.finished]
        while True:
            await workflow.wait_condition(
                lambda: all(t.done() for t in tasks) or self._table_part_due(inp)
                or (self._draining() and (self._running == 0 or (self._no_drain and self._gate.starting == 0)))
                or bool(self._respawn))
            if self._respawn:  # failed experiments to run again (retry_failed)
                again, self._respawn = set(self._respawn), []
                tasks.extend(asyncio.create_task(self._slot(inp, run_id, spec, snapshot))
                             for spec in inp.experiments if spec.name in again)
            elif self._table_part_due(inp):
                await self._write_table_part(inp, run_id)
            elif all(t.done() for t in tasks):
                self._done = True
                break
            else:  # drained (or, without draining, every running child started): hand over to a new run
                await workflow.wait_condition(workflow.all_handlers_finished)
                running = {name: ("train" if st.state == "training" else "eval")
                           for name, st in self._status.items() if st.state in ("training", "evaluating")}
                carry = self._carry.model_copy(update={
                    "unwritten": [*self._carry.unwritten, *self._results.values()], "running": running})
                workflow.continue_as_new(inp.model_copy(update={
                    "run_id": run_id, "snapshot": snapshot, "dataset": None, "carried": carry}))
        for task in tasks:
            task.result()  # re-raise a bug in an experiment's bookkeeping, if any
        return await self._final_result(inp, run_id, snapshot)

    def _draining(self) -> bool:
        """Time to continue as new: stop starting experiments (at least one started in this run)."""
        return self._started_here > 0 and workflow.info().is_continue_as_new_suggested()

    def _table_part_due(self, inp: CoordinatorInput) -> bool:
        return (inp.table_root is not None
                and len(self._carry.unwritten) + len(self._results) >= inp.max_inline_results)

    async def _write_table_part(self, inp: CoordinatorInput, run_id: str) -> None:
        """Write the finished results not yet in the table as its next part, then forget them."""
        assert inp.table_root is not None
        index = {spec.name: i for i, spec in enumerate(inp.experiments)}
        rows = [*self._carry.unwritten, *self._results.values()]
        self._carry = self._carry.model_copy(update={"unwritten": []})
        self._results = {}
        await workflow.execute_activity(
            WRITE_TABLE_PART,
            TablePartRequest(uri=self._table_uri(inp, run_id), index=self._carry.parts,
                             rows=[{"index": index[r.name], "result": r.model_dump(mode="json")} for r in rows]),
            start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        self._carry.parts += 1

    @staticmethod
    def _table_uri(inp: CoordinatorInput, run_id: str) -> str:
        assert inp.table_root is not None
        return f"{inp.table_root.rstrip('/')}/{run_id}"

    async def _final_result(self, inp: CoordinatorInput, run_id: str, snapshot: SnapshotRef) -> CoordinatorResult:
        leaderboard = self._leaderboard(inp, self._carry.scores)
        if self._carry.parts == 0 and not self._carry.unwritten:  # all of them ran in this run
            return CoordinatorResult(
                run_id=run_id, snapshot=snapshot, leaderboard=leaderboard, runs=self._carry.runs,
                experiments=[self._results[spec.name] for spec in inp.experiments])
        if inp.table_root is None:  # carried across runs, and few enough to return inline
            done = {r.name: r for r in [*self._carry.unwritten, *self._results.values()]}
            return CoordinatorResult(
                run_id=run_id, snapshot=snapshot, leaderboard=leaderboard, runs=self._carry.runs,
                experiments=[done[spec.name] for spec in inp.experiments])
        if self._carry.unwritten or self._results:
            await self._write_table_part(inp, run_id)
        return CoordinatorResult(
            run_id=run_id, snapshot=snapshot, leaderboard=leaderboard, runs=self._carry.runs,
            experiments=[], table_uri=self._table_uri(inp, run_id), results_omitted=len(inp.experiments))

    async def _slot(self, inp: CoordinatorInput, run_id: str, spec: ExperimentSpec,
                    snapshot: SnapshotRef, rejoin: Literal["train", "eval"] | None = None) -> None:
        """Wait for a free slot (re-checked after every wake-up), then run the experiment; none
        starts once the run drains for a continue-as-new, or while paused. An experiment that
        failed for an infrastructure error pauses the coordinator and runs again on ``resume``.
        ``rejoin``: it ran on when the run before continued as new: wait for its child first."""
        while True:
            while rejoin is None and (self._running >= inp.max_concurrency or self._draining()
                                      or self._carry.paused):
                await workflow.wait_condition(
                    lambda: self._running < inp.max_concurrency and not self._draining()
                    and not self._carry.paused)
            self._running += 1
            self._started_here += 1
            try:
                result, error_type = await self._experiment(inp, run_id, spec, snapshot, rejoin)
            finally:
                self._running -= 1
                rejoin = None
            if not (result.error is not None and error_type in inp.infrastructure_errors
                    and workflow.patched(INFRA_PAUSE_PATCH)):
                break
            self._carry.paused, self._carry.pause_reason = True, f"{spec.name}: {result.error}"
            self._update(spec.name, state="pending")  # keeps the error: why it waits
            workflow.logger.error("coordinator %s paused: %s", run_id, self._carry.pause_reason)
        self._results[spec.name] = result
        self._carry.finished[spec.name] = result.status
        metric = result.eval.metrics.get(inp.leaderboard_metric) if result.eval is not None else None
        if metric is not None:
            self._carry.scores[spec.name] = metric

    async def _experiment(self, inp: CoordinatorInput, run_id: str, spec: ExperimentSpec, snapshot: SnapshotRef,
                          rejoin: Literal["train", "eval"] | None = None) -> tuple[ExperimentResult, str | None]:
        """Run one experiment (or wait for the children an earlier run started: ``rejoin``): its
        result, and the error type when it failed."""
        train_id, eval_id = (self._child_id(run_id, spec.name, k) for k in ("train", "eval"))
        self._update(spec.name, state="evaluating" if rejoin == "eval" else "training")
        outcome = await run_trial(
            TrialCall(training_workflow=self.training_workflow, eval_workflow=self.eval_workflow,
                      config=spec.config, snapshot=snapshot, train_id=train_id, eval_id=eval_id,
                      settings=TrialSettings(
                          train_task_queue=inp.train_task_queue, eval_task_queue=inp.eval_task_queue,
                          heartbeat_timeout_seconds=inp.heartbeat_timeout_seconds,
                          max_attempts=inp.max_attempts, progress_every_seconds=inp.progress_every_seconds,
                          eval_split=inp.eval_split, eval_heartbeat=True,
                          no_worker_timeout_seconds=inp.no_worker_timeout_seconds),
                      tags=trial_tags(self._registered, run_id), report_to=[workflow.info().workflow_id],
                      alive=self._reports.alive, registered=self._registered, abandon=self._no_drain,
                      rejoin=rejoin, gate=self._gate),
            on_trained=lambda train: self._update(spec.name, state="evaluating", step=train.steps,
                                                  latest_checkpoint=train.checkpoint,
                                                  loss=train.metrics.get("loss", self._status[spec.name].loss)))
        if outcome.error is not None:
            self._update(spec.name, state="failed", error=outcome.error)
        else:
            self._update(spec.name, state="done", error=None)
        result = self._result(spec, train_id, eval_id, snapshot, outcome.train, outcome.evaluation, outcome.error)
        return result, outcome.error_type

    @staticmethod
    def _child_id(run_id: str, name: str, kind: str) -> str:
        return child_id(run_id, name, kind)

    @staticmethod
    def _result(spec: ExperimentSpec, train_id: str, eval_id: str, snapshot: SnapshotRef,
                train: TrainResult | None, evaluation: EvalResult | None, error: str | None) -> ExperimentResult:
        lineage = Lineage(
            config=spec.config, config_hash=spec.config.config_hash(), seed=spec.config.seed,
            snapshot_id=snapshot.id, checkpoint_sha256=train.checkpoint.model_sha256 if train else None,
            library_version=__version__,
        )
        return ExperimentResult(
            name=spec.name, status="failed" if error else "done", train_workflow_id=train_id,
            eval_workflow_id=eval_id, train=train, eval=evaluation, error=error, lineage=lineage,
        )

    @staticmethod
    def _leaderboard(inp: CoordinatorInput, scores: dict[str, float]) -> list[LeaderboardEntry]:
        metric = inp.leaderboard_metric
        scored = [(scores[spec.name], i, spec.name) for i, spec in enumerate(inp.experiments)
                  if spec.name in scores]
        sign = -1.0 if inp.leaderboard_mode == "max" else 1.0
        scored.sort(key=lambda t: (sign * t[0], t[1]))
        return [LeaderboardEntry(rank=k + 1, name=name, metric=metric, value=value)
                for k, (value, _, name) in enumerate(scored)]

    def _update(self, name: str, **changes: object) -> None:
        self._status[name] = self._status[name].model_copy(update=changes)

    @workflow.signal(name=REPORT_SIGNAL)
    def _on_report(self, *args: Any) -> None:
        routed = self._reports.route(args)
        if routed is None:
            return
        name, report = routed
        if self._status[name].state == "training":
            self._update(name, step=report.step, loss=report.loss,
                         latest_checkpoint=report.latest_checkpoint)

    @workflow.query
    def status(self) -> list[ExperimentStatus]:
        """State (pending/training/evaluating/done/failed) and latest progress of every experiment."""
        return list(self._status.values())

    @workflow.query
    def coordinator_status(self) -> CoordinatorStatus:
        """The coordinator's phase (``paused`` with the reason) and its experiments' counts."""
        counts: dict[str, int] = {}
        for status in self._status.values():
            counts[status.state] = counts.get(status.state, 0) + 1
        phase: Any = ("done" if self._done else "starting" if self._inp is None else "paused" if self._carry.paused
                 else "draining" if self._draining() else "running")
        return CoordinatorStatus(phase=phase, pause_reason=self._carry.pause_reason, counts=counts)

    # -- control ---------------------------------------------------------------------------------

    def _refuse_unless_running(self, what: str) -> None:
        if self._inp is None:
            raise refuse(f"cannot {what} yet: the coordinator is starting (try again in a moment)")
        if self._done:
            raise refuse(f"cannot {what}: the coordinator has finished (temporal-ml retry reopens it)")

    @workflow.update
    def pause(self, *extra: Any) -> CoordinatorStatus:
        """Start no experiment until ``resume`` (running ones go on)."""
        self._carry.paused = True
        return self.coordinator_status()

    @pause.validator
    def _validate_pause(self, *extra: Any) -> None:
        check_arity("pause", MISSING, extra, takes=0)
        self._refuse_unless_running("pause")

    @workflow.update
    def resume(self, *extra: Any) -> CoordinatorStatus:
        """Start experiments again; one that an infrastructure error stopped runs again from its
        last checkpoint."""
        self._carry.paused, self._carry.pause_reason = False, None
        return self.coordinator_status()

    @resume.validator
    def _validate_resume(self, *extra: Any) -> None:
        check_arity("resume", MISSING, extra, takes=0)
        self._refuse_unless_running("resume")
        if not self._carry.paused:
            raise refuse("cannot resume: the coordinator is not paused")

    @workflow.update
    def retry_failed(self, name: Any = None, *extra: Any) -> int:
        """Run failed experiments again from their last checkpoints (``name``, or every failed
        one); returns how many run again."""
        again = self._retryable(name)
        for each in again:
            del self._carry.finished[each]
            self._carry.scores.pop(each, None)
            self._results.pop(each, None)
            self._update(each, state="pending", error=None)
        self._carry.unwritten = [r for r in self._carry.unwritten if r.name not in again]
        self._respawn.extend(again)
        return len(again)

    @retry_failed.validator
    def _validate_retry_failed(self, name: Any = None, *extra: Any) -> None:
        check_arity("retry_failed", name, extra)
        if name is not None and not isinstance(name, str):
            raise refuse(f"retry_failed takes an experiment name or nothing, got {shown(name)}")
        self._refuse_unless_running("retry failed experiments")
        if not self._retryable(name):
            which = f"experiment {shown(name)} has not failed" if name is not None else "no experiment has failed"
            raise refuse(f"nothing to retry: {which}")

    def _retryable(self, name: str | None) -> list[str]:
        return [n for n, state in self._carry.finished.items()
                if state == "failed" and (name is None or n == name) and n not in self._respawn]

