"""``LadderSweepWorkflow``: asynchronous successive halving (ASHA) whose promotions continue the run.

Trials train to rung budgets (steps). Every trial is one training run (run id
``<run_id>--t0007``, one checkpoint directory); each rung is a training child
(``<run_id>--t0007--r1--train``) with ``max_steps`` = the rung's budget and ``schedule_steps`` = the
maximum budget, followed by an evaluation child. A promotion starts the next rung's training on the
same run id, so it resumes from the rung checkpoint and continues the very trajectory a run trained
straight to the maximum budget would follow (bitwise, on CPU with deterministic settings), never
retraining from scratch.

The scheduler (:class:`~temporal_ml.search.AshaScheduler`) decides from the rung table, which is the
workflow's state (carried through continue-as-new); every decision's audit line is recorded. New
trials come from the searcher (random, or TPE on highest-rung values: not BOHB), told each trial's value
at the highest rung it reached. The checkpoints of trials that can no longer be promoted are deleted
(``delete_unpromotable``) by an activity of :class:`~temporal_ml.activities.sweep.SweepActivities`.

Subclass it like :class:`~temporal_ml.workflows.sweep.SweepWorkflow`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, ClassVar

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
)

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.messages import REPORT_SIGNAL
    from temporal_ml.search import SearchSpace, TrialRecord
    from temporal_ml.sweeps import (
        RERUN,
        LadderInput,
        LadderResult,
        LadderState,
        SuggestionAudit,
        TrialRow,
        objective_value,
        trial_name,
    )
    from temporal_ml.types import (
        LeaderboardEntry,
        SnapshotRef,
        TrainConfig,
        TrainResult,
    )
    from temporal_ml.workflows._controls import SweepControls
    from temporal_ml.workflows._ladder_cleanup import LadderCleanup
    from temporal_ml.workflows._suggest import suggest
    from temporal_ml.workflows._sweep_table import check_sweep_run_id, trial_settings
    from temporal_ml.workflows._tags import registered_search_attributes, tag
    from temporal_ml.workflows._trials import (
        EXPERIMENT,
        ReportRouter,
        TrialCall,
        run_trial,
        trial_tags,
    )
    from temporal_ml.workflows.training import create_snapshot

__all__ = ["LadderSweepWorkflow"]


#: ``workflow.patched`` id of the ladder's failure policy: an infrastructure error pauses the ladder
#: and the trial runs again from its last checkpoint on ``resume``; ``max_failed_trials`` stops it.
#: Histories recorded before it fail such a trial, as they did.
FAILURE_POLICY_PATCH = "tml-ladder-failure-policy-v1"


class LadderSweepWorkflow(LadderCleanup, SweepControls):
    """Base of ASHA ladder sweeps; see the module docstring. Subclasses set the child workflow types."""

    #: The training child workflow (a registered ``TrainingWorkflow`` subclass: name or class).
    training_workflow: ClassVar[str | type] = ""
    #: The evaluation child workflow (a registered ``EvalWorkflow`` subclass: name or class).
    eval_workflow: ClassVar[str | type] = ""

    def __init__(self) -> None:
        self._registered: frozenset[str] | None = None  # our search attributes on this namespace
        self._s: LadderState | None = None
        self._inp: LadderInput | None = None
        self._run_id = ""
        self._running = 0
        self._suggesting = False  # a suggestion is being computed (it will take the next index)
        self._started_here = 0
        self._changes = 0
        self._draining = False
        self._done = False
        self._closing = False  # the run loop ended: nothing starts or runs again
        self._reports: ReportRouter[int] = ReportRouter()
        self._train_handles: dict[int, workflow.ChildWorkflowHandle[Any, TrainResult] | None] = {}

    @property
    def state(self) -> LadderState:
        assert self._s is not None
        return self._s

    # -- the run -----------------------------------------------------------------------------------

    async def run(self, inp: LadderInput) -> LadderResult:
        """Start, promote and evaluate trials as the scheduler decides, until it says done."""
        self._inp = inp
        self._run_id = run_id = inp.run_id or workflow.info().workflow_id
        check_sweep_run_id(run_id)
        if inp.carried is not None:
            self._s = inp.carried.model_copy(update={"runs": inp.carried.runs + 1})
        else:
            self._s = LadderState(table=inp.scheduler.new_table(inp.direction))
        if self._s.max_concurrency == 0:
            self._s.max_concurrency = inp.max_concurrency
        self._apply_early(self._s)  # what updates accepted before this run started asked for
        snapshot = inp.snapshot or await create_snapshot(inp.dataset)  # type: ignore[arg-type]
        # only the search attributes this namespace defines (a bare one, Temporal Cloud: none)
        self._registered = await registered_search_attributes()
        tag(self._registered, [
            SearchAttributeKey.for_keyword("TmlKind").value_set("ladder"),
            EXPERIMENT.value_set(run_id),
            SearchAttributeKey.for_keyword("TmlSnapshotId").value_set(snapshot.id),
        ])
        tasks: list[asyncio.Task[None]] = []
        s = self.state
        while True:
            await workflow.wait_condition(lambda: self._running < s.max_concurrency or self._rollover_due())
            if self._rollover_due() and not s.stopping:
                self._draining = True
                await workflow.wait_condition(lambda: self._running == 0)
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(inp.model_copy(update={
                    "run_id": run_id, "snapshot": snapshot, "dataset": None, "carried": s}))
            if s.paused and not s.stopping:  # nothing starts or is promoted until resume (or stop)
                await workflow.wait_condition(lambda seen=self._changes: self._changes != seen)  # type: ignore[misc]
                continue
            if s.retry and not s.stopping:  # a failed trial runs again first, at the rung it failed toward
                again = self._rerun(s.retry.pop(0))
                rung = s.rung_of[again.name]
                self._running += 1
                self._started_here += 1
                tasks.append(asyncio.create_task(self._rung(
                    inp, again, rung, s.table.rungs_of(again.name)[rung].budget, snapshot)))
                continue
            s.retry.clear()  # stopping: they stay failed
            may_start = (s.started < self.max_trials and not s.stopping
                         and (not s.exhausted or bool(s.queue) or s.held is not None))
            decision = inp.scheduler.next(s.table, may_start=may_start)
            if s.stopping and decision.action == "promote":  # a stopped ladder only finishes
                decision = decision.model_copy(update={"action": "wait" if self._running else "done"})
            if decision.action == "done":
                self._closing = True
                break
            if decision.action == "wait":
                await workflow.wait_condition(lambda seen=self._changes: self._changes != seen)  # type: ignore[misc]
                continue
            if decision.action == "start":
                if s.held is None and not s.queue and await self._suggest():  # recorded: may have changed
                    continue
                row = self._new_trial()
                if row is None:  # the searcher ran out of points: no more new trials
                    continue
                s.table.start(row.name, decision.bracket)
            else:
                assert decision.trial_id is not None
                s.table.promote(decision.trial_id, decision.rung - 1)
                if decision.trial_id in s.deleted:  # deleted for the byte budget: it trains anew
                    s.deleted.remove(decision.trial_id)
                row = s.rows[int(decision.trial_id[1:])]
            s.decisions.append(decision.reason)
            s.rung_of[row.name] = decision.rung
            self._running += 1
            self._started_here += 1
            tasks.append(asyncio.create_task(
                self._rung(inp, row, decision.rung, decision.budget, snapshot)))
        await asyncio.gather(*tasks)
        await self._delete_dead(final=True)
        self._done = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._result(inp, snapshot)

    @property
    def max_trials(self) -> int:
        """New trials this ladder may start: ``n_trials`` plus those added by updates."""
        assert self._inp is not None
        return self._inp.n_trials + self.state.added

    def _rollover_due(self) -> bool:
        return self._draining or (self._started_here > 0 and workflow.info().is_continue_as_new_suggested())

    def history(self) -> list[TrialRecord]:
        """What the searcher is told: each trial's value at the highest rung it reached (complete),
        pending while it has no result yet, failed when it failed before any."""
        out = []
        for row in self.state.rows:
            if row.value is not None and math.isfinite(row.value):
                out.append(TrialRecord(index=row.index, params=row.params, state="complete", value=row.value))
            elif row.state in ("training", "evaluating"):
                out.append(TrialRecord(index=row.index, params=row.params, state="pending"))
            else:
                out.append(TrialRecord(index=row.index, params=row.params, state="failed"))
        return out

    async def _suggest(self) -> bool:
        """Ask the searcher for the next new trial's point and hold it (``LadderState.held``);
        returns whether it was recorded (an activity ran). An exhausted or failing searcher ends
        the new trials (the reason is logged, and a failure is a decision line)."""
        inp, s = self._inp, self.state
        assert inp is not None
        history = self.history()
        audit = SuggestionAudit.of(inp.searcher.kind, s.results_seen, history)
        self._suggesting = True  # a trial index is taken: an enqueued config runs after it
        try:
            got = await suggest(inp.searcher, inp.space, history, seed=inp.seed, index=len(s.rows),
                                direction=inp.direction, heartbeat_seconds=inp.heartbeat_timeout_seconds)
        finally:
            self._suggesting = False
        if got.params is not None:
            s.held = TrialRow(index=len(s.rows), params=got.params, audit=audit)
        else:
            s.exhausted = True
            if got.failed is not None:
                workflow.logger.error("ladder %s starts no new trials: %s", self._run_id, got.failed)
                s.decisions.append(f"no new trials: {got.failed}")
        return got.recorded

    def _new_trial(self) -> TrialRow | None:
        """The held suggestion, else an enqueued config, as a started trial (``None``: neither)."""
        s = self.state
        if s.held is not None:
            row, s.held = s.held, None
        elif s.queue:
            row = TrialRow(index=len(s.rows), params=s.queue.pop(0), source="user")
        else:
            return None
        row.started = workflow.now()
        s.rows.append(row)
        s.started += 1
        return row

    def rung_config(self, inp: LadderInput, row: TrialRow, budget: int) -> TrainConfig:
        """The trial's config for one rung: ``max_steps`` = the budget, the schedule over the maximum."""
        config = inp.space.apply(inp.base, row.params)
        return TrainConfig.model_validate({**config.model_dump(), "max_steps": budget,
                                           "schedule_steps": inp.scheduler.max_budget})

    def run_id_of(self, index: int) -> str:
        """The training run id (checkpoint directory) of trial ``index``: the same for every rung."""
        return f"{self._run_id}--{trial_name(index)}"

    async def _rung(self, inp: LadderInput, row: TrialRow, rung: int, budget: int,
                    snapshot: SnapshotRef) -> None:
        s = self.state
        base_id = f"{self.run_id_of(row.index)}--r{rung}"
        row.state, row.max_steps, row.error = "training", budget, None
        try:
            try:
                config = self.rung_config(inp, row, budget)
            except ValueError as exc:
                self._fail(row, f"invalid config: {exc}")
                return
            self._reports.add(self.run_id_of(row.index), row.index)

            def trained(train: TrainResult) -> None:
                self._train_handles.pop(row.index, None)
                row.mark_trained(train, workflow.now())

            outcome = await run_trial(
                TrialCall(training_workflow=self.training_workflow, eval_workflow=self.eval_workflow,
                          config=config, snapshot=snapshot, train_id=f"{base_id}--train",
                          eval_id=f"{base_id}--eval", run_id=self.run_id_of(row.index),
                          settings=trial_settings(inp),
                          tags=trial_tags(self._registered, self._run_id),
                          report_to=[workflow.info().workflow_id], alive=self._reports.alive),
                on_started=lambda handle: self._train_handles.__setitem__(row.index, handle),
                on_trained=trained)
            if outcome.error is not None:
                self._fail(row, outcome.error)
                if outcome.error_type in inp.infrastructure_errors and workflow.patched(FAILURE_POLICY_PATCH):
                    # not the trial's fault: it runs again from its last checkpoint once resumed
                    s.retry.append(row.index)
                    s.paused, s.pause_reason = True, f"{row.name}: {outcome.error}"
                    workflow.logger.error("ladder %s paused: %s", self._run_id, s.pause_reason)
                elif inp.max_failed_trials is not None and workflow.patched(FAILURE_POLICY_PATCH):
                    self._count_failure(inp)
                return
            assert outcome.train is not None
            if outcome.train.stopped_early:  # stop_trial: out of the rung table, never promoted
                row.metrics = dict(outcome.metrics or {})
                self._fail(row, None, state="stopped")
                return
        finally:
            self._running -= 1
            self._changes += 1
            self._train_handles.pop(row.index, None)
        assert outcome.metrics is not None
        metrics = outcome.metrics  # non-finite values included (temporal_ml.converter)
        value = objective_value(metrics, inp.objective)
        if value is None:  # a missing or non-finite objective fails the trial
            row.metrics = metrics
            self._fail(row, f"the evaluation reported no finite {inp.objective!r} (got {sorted(metrics)})")
            return
        s.table.report(row.name, rung, value)
        row.state, row.value, row.metrics, row.finished = "done", value, metrics, workflow.now()
        row.result_seq, s.results_seen = s.results_seen, s.results_seen + 1
        s.reports.append((row.index, rung))
        await self._delete_dead()
        await self._keep_budget(row)

    def _rerun(self, index: int) -> TrialRow:
        """Trial ``index`` (failed) goes back to running toward the rung it failed at."""
        s = self.state
        row = s.rows[index]
        rung = s.rung_of[row.name]
        s.table.rerun(row.name, rung)
        if row.name in s.deleted:  # its checkpoints were deleted: it trains anew (the same trajectory)
            s.deleted.remove(row.name)
        if row.result_seq is not None:
            row.retried_from.append(row.result_seq)
        s.reports.append((row.index, RERUN))
        s.results_seen += 1
        s.decisions.append(f"{row.name} runs again toward rung {rung} from its last checkpoint")
        return row

    def _count_failure(self, inp: LadderInput) -> None:
        """Stop the ladder once ``max_failed_trials`` trials have failed (their own fault)."""
        s = self.state
        failed = sum(r.state == "failed" and r.index not in s.retry for r in s.rows)
        if inp.max_failed_trials is not None and failed >= inp.max_failed_trials and not s.stopping:
            s.stopping = True
            s.stop_reason = f"{failed} trials failed (max_failed_trials={inp.max_failed_trials})"
            workflow.logger.error("ladder %s stops: %s", self._run_id, s.stop_reason)

    def _fail(self, row: TrialRow, error: str | None, state: str = "failed") -> None:
        s = self.state
        s.table.drop(row.name)
        row.state, row.error, row.finished = state, error, workflow.now()  # type: ignore[assignment]
        row.result_seq, s.results_seen = s.results_seen, s.results_seen + 1
        s.reports.append((row.index, -1))

    # -- progress, queries, control ----------------------------------------------------------------

    @workflow.signal(name=REPORT_SIGNAL)
    def _on_report(self, *args: Any) -> None:
        routed = self._reports.route(args)
        if routed is None or self._s is None:
            return
        index, report = routed
        if self._s.rows[index].state == "training":
            row = self._s.rows[index]
            row.step = max(row.step, report.step)
            row.loss = report.loss if report.loss is not None else row.loss

    @workflow.query
    def ladder(self) -> LadderState | None:
        """The rung table, the decisions so far and the deleted trials (``None`` while starting)."""
        return self._s

    @workflow.query
    def leaderboard(self) -> list[LeaderboardEntry]:
        """Trials ranked by the highest rung reached, then the objective there."""
        return self._leaderboard()

    # -- control (the updates are SweepControls') ------------------------------------------------------

    kind_name = "ladder"

    def _control_state(self) -> LadderState | None:
        return self._s

    def _space_and_base(self) -> tuple[SearchSpace, TrainConfig] | None:
        return (self._inp.space, self._inp.base) if self._inp is not None else None

    def _grow(self, n: int) -> int:
        self.state.added += n
        return self.max_trials

    def _n_trials(self) -> int:
        return self.max_trials

    def _changed(self) -> None:
        self._changes += 1

    def _running_train_id(self, index: int) -> str:
        return f"{self.run_id_of(index)}--r{self.state.rung_of[trial_name(index)]}--train"

    def _retryable(self, index: int | None) -> list[int]:
        s = self.state
        if self._closing:
            return []
        return [r.index for r in s.rows if r.state == "failed" and r.index not in s.retry
                and (index is None or r.index == index)][-100:]

    def _retry(self, indices: list[int]) -> int:
        self.state.retry.extend(indices)
        return len(self.state.retry)

    def _retrying(self) -> int:
        return len(self._s.retry) if self._s is not None else 0

    def _stop_reason(self) -> str | None:
        return self._s.stop_reason if self._s is not None else None

    def _phase(self) -> str:
        if self._done or self._closing:
            return "done"
        if self._s is not None and self._s.stopping:
            return "stopping"
        if self._draining:
            return "draining"
        return "paused" if self._s is not None and self._s.paused else "running"
