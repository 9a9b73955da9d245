"""``SweepWorkflow``: a durable hyperparameter search (random, grid or TPE) as a live service.

Each trial is train + evaluate on one snapshot, as in the coordinator: two child workflows with
readable ids ``<run_id>--t0007--train`` and ``<run_id>--t0007--eval``. The sweep is asynchronous:
the moment a slot frees (``max_concurrency``, enforced here), the searcher suggests the next point
from the results recorded so far. Suggestions are pure functions of the recorded state (searcher,
space, seed, trial index, the rows), so a replayed or restarted sweep makes the same decisions; each
searcher trial records what its suggestion saw (:class:`~temporal_ml.sweeps.SuggestionAudit`).
A failed trial is recorded with its error and told to the searcher; its training is retried at most
``max_attempts`` times, never forever.

Live control (Updates whose validators refuse bad requests without changing anything):
``add_trials``, ``stop_trial`` (its training ends at a checkpoint of its current step and is
evaluated there), ``enqueue`` (a user config, checked against the space), ``set_max_concurrency``,
``pause`` / ``resume`` (no new trials start while paused; running ones go on) and ``stop`` (running
trials finish, no new ones start, the sweep returns). Queries: ``sweep_status``, ``trials`` and
``leaderboard``.

Long sweeps continue-as-new when the server suggests it, without draining: the run carries its
compact :class:`~temporal_ml.sweeps.SweepState` (the running trials among its rows) to the next
run and ends; the trials' children go on (they are started with ``ParentClosePolicy.ABANDON``), and
the next run waits for each with the ``await_child`` activity (a child's result reaches only the run
that started it), so every slot stays busy across a rollover. Cancelling or terminating a sweep
therefore leaves its running trainings running: ``stop`` it instead (they finish), or stop them.

The orchestration worker that runs a sweep also needs the sweep activities
(``SweepActivities().activities()``): stopping a trial, writing the results table and waiting for
trials across a rollover are activities. Subclass it and name the child workflow types::

    @workflow.defn
    class MySweep(SweepWorkflow):
        training_workflow = "BertFineTune"
        eval_workflow = "BertEval"

        @workflow.run
        async def run(self, inp: SweepInput) -> SweepResult:
            return await super().run(inp)
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
)

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.messages import REPORT_SIGNAL
    from temporal_ml.activities.plan import PlanAction, RungWatch
    from temporal_ml.search import AshaScheduler, PbtScheduler, SearchSpace
    from temporal_ml.sweeps import (
        SweepInput,
        SweepResult,
        SweepState,
        TrialRow,
        objective_value,
        objective_values,
        trial_name,
    )
    from temporal_ml.types import (
        CheckpointRef,
        LeaderboardEntry,
        SnapshotRef,
        TrainConfig,
        TrainResult,
    )
    from temporal_ml.workflows._controls import SweepControls
    from temporal_ml.workflows._requests import (
        refuse,
    )
    from temporal_ml.workflows._scheduled import PLAN_AHEAD_PATCH, ScheduledSweep
    from temporal_ml.workflows._suggest import SUGGEST_AHEAD, SuggestingSweep
    from temporal_ml.workflows._sweep_table import (
        SweepTable,
        check_sweep_run_id,
        rank_rows,
        trial_result,
        trial_settings,
    )
    from temporal_ml.workflows._tags import registered_search_attributes, tag
    from temporal_ml.workflows._trials import (
        EXPERIMENT,
        ReportRouter,
        StartGate,
        TrialCall,
        run_trial,
        trial_tags,
    )
    from temporal_ml.workflows.training import create_snapshot

__all__ = ["SweepWorkflow", "refuse", "rank_rows", "trial_result", "trial_settings", "check_sweep_run_id",
           "SUGGEST_AHEAD"]


#: ``workflow.patched`` id: finished rows go to the results table as they finish (parts of
#: ``PART_ROWS``), so the state, its continue-as-new input and the result stay bounded. Runs recorded
#: before it keep every row and write the table at the end.
BOUNDED_SWEEP_PATCH = "tml-sweep-bounded-v1"
#: ``workflow.patched`` id: no drain at continue-as-new. Trials' children are abandoned by a run
#: that continues as new (``ParentClosePolicy.ABANDON``) and the next run waits for them (the
#: ``AWAIT_CHILD`` activity), so every slot stays busy across a rollover. Runs recorded before it
#: wait for every running trial first.
NO_DRAIN_PATCH = "tml-sweep-no-drain-v1"


class SweepWorkflow(SweepTable, SuggestingSweep, ScheduledSweep, SweepControls):
    """Base of sweeps; see the module docstring. Subclasses set the child workflow types."""

    #: The training child workflow (a registered ``TrainingWorkflow`` subclass: name or class).
    training_workflow: ClassVar[str | type] = ""
    #: The evaluation child workflow (a registered ``EvalWorkflow`` subclass: name or class).
    eval_workflow: ClassVar[str | type] = ""

    def __init__(self) -> None:
        self._registered: frozenset[str] | None = None  # our search attributes on this namespace
        self._s = SweepState()
        self._inp: SweepInput | None = None
        self._run_id = ""
        self._running = 0
        self._suggesting = False  # a suggestion is being computed (it will take the next index)
        self._started_here = 0
        self._draining = False
        self._done = False
        self._train_handles: dict[int, workflow.ChildWorkflowHandle[Any, TrainResult] | None] = {}
        self._reports: ReportRouter[int] = ReportRouter()
        self._live: dict[int, TrialRow] = {}  # the rows the state holds, by index
        self._bounded = False  # finished rows go to the results table (BOUNDED_SWEEP_PATCH)
        self._no_drain = False  # trials outlive a run that continues as new (NO_DRAIN_PATCH)
        self._gate = StartGate()  # trial children being started
        self._tasks: list[asyncio.Task[None]] = []
        self._changes = 0  # results, updates: what a plan that found nothing to do waits for
        self._plan_idle_at = -1  # ``_changes`` when the scheduler last had nothing for a free slot
        self._plan_done_at = -1  # ``_changes`` when the scheduler last said it is done
        self._ahead_on = False  # plans answer new trials ahead (PLAN_AHEAD_PATCH)
        self._ahead: list[PlanAction] = []
        self._watch: dict[tuple[int, int], RungWatch] = {}
        self._ahead_at = -1
        self._in_flight: list[tuple[int, int, float]] | None = None
        self._copied: dict[int, CheckpointRef] = {}

    # -- the run -----------------------------------------------------------------------------------

    async def run(self, inp: SweepInput) -> SweepResult:
        """Run trials until ``n_trials`` are done (or the sweep is stopped); rank them."""
        self._inp = inp
        self._run_id = run_id = inp.run_id or workflow.info().workflow_id
        check_sweep_run_id(run_id)
        if inp.carried is not None:
            self._s = inp.carried.model_copy(update={"runs": inp.carried.runs + 1})
        else:
            self._s = SweepState(n_trials=inp.n_trials, max_concurrency=inp.max_concurrency)
        self._apply_early(self._s)  # what updates accepted before this run started asked for
        # a state carried from a release that kept every row: every row it holds was started
        self._s.n_started = max(self._s.n_started, max((r.index + 1 for r in self._s.rows), default=0))
        self._live = {r.index: r for r in self._s.rows}
        snapshot = inp.snapshot or await create_snapshot(inp.dataset)  # type: ignore[arg-type]
        # only the search attributes this namespace defines (a bare one, Temporal Cloud: none)
        self._registered = await registered_search_attributes()
        tag(self._registered, [
            SearchAttributeKey.for_keyword("TmlKind").value_set("sweep"),
            EXPERIMENT.value_set(run_id),
            SearchAttributeKey.for_keyword("TmlSnapshotId").value_set(snapshot.id),
        ])
        # finished rows go to the results table as they finish (runs recorded before keep them all)
        self._bounded = workflow.patched(BOUNDED_SWEEP_PATCH)
        # trials outlive a run: it continues as new without waiting for them (runs recorded before drain)
        self._no_drain = self._bounded and workflow.patched(NO_DRAIN_PATCH)
        # a plan answers new trials ahead for slots that free later (runs recorded before ask each time);
        # not with a byte budget: its deletions follow every result
        self._ahead_on = (self._no_drain and isinstance(inp.scheduler, AshaScheduler) and inp.checkpoint_budget_bytes is None
                          and workflow.patched(PLAN_AHEAD_PATCH))
        tasks = self._tasks
        for running in self._s.rows:  # running when the run before continued as new: wait for them here
            if running.state in ("training", "evaluating") and running.index not in self._s.retry:
                self._running += 1
                tasks.append(asyncio.create_task(self._trial(
                    inp, running, snapshot, rejoin="train" if running.state == "training" else "eval")))
        while True:
            await workflow.wait_condition(
                lambda: self._may_start() or self._finished() or self._rollover_due() or self._flush_due())
            if self._flush_due():
                await self._flush()
                continue
            if self._finished():
                break
            if self._rollover_due():
                self._draining = True  # nothing new starts
                if self._no_drain:  # running trials go on: the next run waits for their children
                    await workflow.wait_condition(lambda: self._gate.starting == 0)
                else:
                    await workflow.wait_condition(lambda: self._running == 0)
                await workflow.wait_condition(workflow.all_handlers_finished)
                if self._finished():
                    break
                workflow.continue_as_new(inp.model_copy(update={
                    "run_id": run_id, "snapshot": snapshot, "dataset": None, "carried": self._s}))
            if inp.scheduler is not None:  # a failed trial runs again first, else what the plan says
                if self._s.retry:
                    self._start_trial(inp, self._next_row(), snapshot)  # type: ignore[arg-type]
                    continue
                if self._start_ahead(inp, snapshot):  # the latest plan's, still its decision
                    continue
                changes = self._changes
                done, idle = await self._plan_and_apply(inp, snapshot)
                if done:
                    self._plan_done_at = changes
                if idle:
                    self._plan_idle_at = changes
                continue
            if (self._s.held is None and not self._s.queue and not self._s.retry
                    and await self._suggest()):  # recorded: the sweep may have changed meanwhile
                continue
            row = self._next_row()
            if row is not None:
                self._running += 1
                self._started_here += 1
                tasks.append(asyncio.create_task(self._trial(inp, row, snapshot)))
        await asyncio.gather(*tasks)
        if inp.scheduler is not None:
            await self._clean_up(inp)
        if self._s.table.parts:  # the rest of the rows join the table: the result stays bounded
            while any(self._finished_rows(final=True)) and not self._s.pause_reason:
                await self._flush(final=True)
        self._done = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        table_uri = self._s.table.uri if self._s.table.parts else await self._write_table(inp)
        return self._result(inp, snapshot, table_uri)

    def _more_to_start(self) -> bool:
        s = self._s
        return bool(s.retry) or (
            s.n_started < s.n_trials and (bool(s.queue) or s.held is not None or not s.exhausted))

    def _may_start(self) -> bool:
        s = self._s
        if s.paused or s.stopping or self._draining or self._running >= s.max_concurrency:
            return False
        if self._scheduled():  # something changed since the scheduler last had nothing to do
            return bool(s.retry) or self._plan_idle_at != self._changes
        return self._more_to_start()

    def _finished(self) -> bool:
        s = self._s
        if self._running:
            return False
        if self._scheduled():
            return s.stopping or (not s.paused and not s.retry and self._plan_done_at == self._changes)
        return s.stopping or (not s.paused and not self._more_to_start())

    def _scheduled(self) -> bool:
        return self._inp is not None and self._inp.scheduler is not None

    def _changed(self) -> None:
        self._changes += 1

    def _start_trial(self, inp: SweepInput, row: TrialRow, snapshot: SnapshotRef,
                     continue_from: CheckpointRef | None = None) -> None:
        self._running += 1
        self._started_here += 1
        self._tasks.append(asyncio.create_task(self._trial(inp, row, snapshot, continue_from=continue_from)))

    def _rollover_due(self) -> bool:
        return self._draining or (self._started_here > 0 and workflow.info().is_continue_as_new_suggested())

    def _next_row(self) -> TrialRow | None:
        """The next trial: a failed one to run again, a held suggestion, then a queued user config."""
        inp, s = self._inp, self._s
        assert inp is not None
        if s.retry:  # the same trial (index, params, child ids): it resumes from its last checkpoint
            row = self._live[s.retry.pop(0)]
            if row.result_seq is not None:
                row.retried_from.append(row.result_seq)
            row.state, row.value, row.metrics, row.error = "training", None, {}, None
            if row.values is not None:
                row.values = None
            row.result_seq, row.trained, row.finished = None, None, None
            if row.rung is not None:
                self._rerun_note(row)
            return row
        if s.held is not None:
            row, s.held = s.held, (s.held_more.pop(0) if s.held_more else None)
        elif s.queue:
            row = TrialRow(index=s.n_started, params=s.queue.pop(0), source="user")
        else:
            return None
        row.started, row.max_steps = workflow.now(), inp.base.max_steps
        s.rows.append(row)
        s.n_started += 1
        self._live[row.index] = row
        return row

    def child_ids(self, index: int, rung: int | None = None) -> tuple[str, str]:
        """Workflow ids of trial ``index``'s training and evaluation children (with a scheduler:
        those of its rung ``rung``, by default the one it trains or last trained toward)."""
        if self._scheduled():
            if rung is None:
                row = self._live.get(index)
                rung = row.rung if row is not None and row.rung is not None else 0
            base = f"{self.run_id_of(index)}--r{rung}"
            return f"{base}--train", f"{base}--eval"
        name = trial_name(index)
        return f"{self._run_id}--{name}--train", f"{self._run_id}--{name}--eval"

    async def _trial(self, inp: SweepInput, row: TrialRow, snapshot: SnapshotRef,
                     rejoin: Literal["train", "eval"] | None = None,
                     continue_from: CheckpointRef | None = None) -> None:
        train_id, eval_id = self.child_ids(row.index, row.rung)
        scheduled = row.rung is not None
        run_id = self.run_dir(row) if scheduled else None
        try:
            try:
                config = self.rung_config(inp, row) if scheduled else inp.space.apply(inp.base, row.params)
            except ValueError as exc:
                self._finish(row, "failed", error=f"invalid config: {exc}")
                return
            row.max_steps = config.max_steps
            self._reports.add(run_id or train_id, row.index)

            def trained(train: TrainResult) -> None:
                self._train_handles.pop(row.index, None)
                row.mark_trained(train, workflow.now())

            outcome = await run_trial(
                TrialCall(training_workflow=self.training_workflow, eval_workflow=self.eval_workflow,
                          config=config, snapshot=snapshot, train_id=train_id, eval_id=eval_id,
                          run_id=run_id, settings=trial_settings(inp), tags=trial_tags(self._registered, self._run_id),
                          report_to=[workflow.info().workflow_id] if inp.report_progress else [],
                          alive=self._reports.alive, abandon=self._no_drain, rejoin=rejoin, gate=self._gate,
                          registered=self._registered, continue_from=continue_from),
                on_started=lambda handle: self._train_handles.__setitem__(row.index, handle),
                on_trained=trained)
        finally:
            self._running -= 1
            self._train_handles.pop(row.index, None)
        if outcome.error is not None:
            self._finish(row, "failed", error=outcome.error)
            if self._bounded and outcome.error_type in inp.infrastructure_errors:
                # not the trial's fault: keep it for a re-run from its last checkpoint, and pause
                s = self._s
                s.retry.append(row.index)
                s.paused, s.pause_reason = True, f"{row.name}: {outcome.error}"
                workflow.logger.error("sweep %s paused: %s", self._run_id, s.pause_reason)
            else:
                self._count_failure(inp)
            return
        assert outcome.train is not None and outcome.metrics is not None
        if inp.objectives is not None:  # several objectives: a value for each, or the trial fails
            values, why = objective_values(outcome.metrics, inp.objectives)
            if outcome.train.stopped_early:
                self._finish(row, "stopped", values=values, metrics=outcome.metrics)
            elif values is None:
                self._finish(row, "failed", metrics=outcome.metrics, error=why)
                self._count_failure(inp)
            else:
                self._finish(row, "done", values=values, metrics=outcome.metrics)
            return
        value = objective_value(outcome.metrics, inp.objective)
        if outcome.train.stopped_early:  # with a scheduler: out of the rungs, never promoted
            self._finish(row, "stopped", value=row.value if scheduled else value, metrics=outcome.metrics)
        elif value is None:
            self._finish(row, "failed", metrics=outcome.metrics, error=(
                f"the evaluation reported no finite {inp.objective!r} (got {sorted(outcome.metrics)})"))
            self._count_failure(inp)
        else:
            if scheduled:
                await self._measure(inp, row)  # a byte budget: what its checkpoints hold now
            self._finish(row, "done", value=value, metrics=outcome.metrics)
            if scheduled:  # its result at this rung, in the order recorded
                row.rung_values.append(value)
                row.rung_seqs.append(row.result_seq)  # type: ignore[arg-type]

    def _count_failure(self, inp: SweepInput) -> None:
        """Stop the sweep once ``max_failed_trials`` trials have failed (their own fault)."""
        s = self._s
        failed = s.table.n_failed + sum(r.state == "failed" and r.index not in s.retry for r in s.rows)
        if self._bounded and inp.max_failed_trials is not None and failed >= inp.max_failed_trials and not s.stopping:
            s.stopping = True
            s.stop_reason = f"{failed} trials failed (max_failed_trials={inp.max_failed_trials})"
            workflow.logger.error("sweep %s stops: %s", self._run_id, s.stop_reason)

    def _finish(self, row: TrialRow, state: str, *, value: float | None = None,
                metrics: dict[str, float] | None = None, error: str | None = None,
                values: list[float] | None = None) -> None:
        row.state = state  # type: ignore[assignment]
        row.value, row.metrics, row.error = value, metrics or {}, error
        if values is not None or row.values is not None:  # (a single-objective row never has them)
            row.values = values
        row.finished = workflow.now()
        row.result_seq = self._s.results_seen
        self._s.results_seen += 1
        self._changes += 1
        self._result_in(row, value if state == "done" else None, self._changes - 1)

    # -- progress ----------------------------------------------------------------------------------

    @workflow.signal(name=REPORT_SIGNAL)
    def _on_report(self, *args: Any) -> None:
        routed = self._reports.route(args)
        if routed is None:
            return
        index, report = routed
        row = self._live.get(index)
        if row is not None and row.state == "training":
            row.step = max(row.step, report.step)
            row.loss = report.loss if report.loss is not None else row.loss

    # -- queries -----------------------------------------------------------------------------------

    def _phase(self) -> str:
        if self._done:
            return "done"
        if self._s.stopping:
            return "stopping"
        if self._draining:
            return "draining"
        return "paused" if self._s.paused else "running"

    @workflow.query
    def leaderboard(self) -> list[LeaderboardEntry]:
        """Done trials ranked by the objective."""
        return self._leaderboard()

    # -- control (the updates are SweepControls') ------------------------------------------------------

    def _control_state(self) -> SweepState | None:
        return self._s if self._inp is not None else None

    def _space_and_base(self) -> tuple[SearchSpace, TrainConfig] | None:
        return (self._inp.space, self._inp.base) if self._inp is not None else None

    def _population(self) -> int | None:
        inp = self._inp
        return inp.n_trials if inp is not None and isinstance(inp.scheduler, PbtScheduler) else None

    def _grow(self, n: int) -> int:
        self._s.n_trials += n
        return self._s.n_trials

    def _n_trials(self) -> int:
        return self._s.n_trials

    def _n_started(self) -> int:
        return self._s.n_started

    def _row(self, index: int) -> TrialRow | None:
        return self._live.get(index)

    def _table_uri(self) -> str | None:
        return self._s.table.uri

    def _written(self) -> int:
        return self._s.table.rows

    def _outcomes(self) -> tuple[int, int, int]:
        done, failed, stopped = super()._outcomes()
        t = self._s.table
        return done + t.n_done, failed + t.n_failed, stopped + t.n_stopped

    def _front_size(self) -> int:
        front, dropped = self._front()
        return len(front) + dropped

    def _running_train_id(self, index: int) -> str:
        return self.child_ids(index)[0]

    def _retryable(self, index: int | None) -> list[int]:
        s = self._s
        return [r.index for r in s.rows if r.state == "failed" and r.index not in s.retry
                and (index is None or r.index == index)]

    def _retry(self, indices: list[int]) -> int:
        self._s.retry.extend(indices)
        return len(self._s.retry)

    def _retrying(self) -> int:
        return len(self._s.retry)

    def _stop_reason(self) -> str | None:
        return self._s.stop_reason
