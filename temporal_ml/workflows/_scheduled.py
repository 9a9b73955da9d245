"""The scheduler of a sweep (``SweepInput.scheduler``: ASHA): promotions, rungs and deletions.

A mixin of :class:`~temporal_ml.workflows.sweep.SweepWorkflow`; the sweep's trial engine, results
table, controls and continue-as-new are the same with and without a scheduler. What differs:

* Each trial is one training run (run id ``<run_id>--t0007``, one checkpoint directory) trained in
  rungs: a child per rung (``<run_id>--t0007--r1--train``, then ``--eval``) with ``max_steps`` the
  rung's budget and ``schedule_steps`` the largest, so a promotion resumes the run from its rung
  checkpoint and follows the trajectory of a run trained straight to the largest budget (bitwise,
  on CPU with deterministic settings).
* What to run next comes from the ``PLAN`` activity (:mod:`temporal_ml.activities.plan`): up to one
  action per free slot (promote a trial, or start a new one with the searcher's point), recorded in
  the history. The rung table is rebuilt there from the rows: the sweep holds no table, so its
  state stays bounded whatever the trial count, and a trial's row goes to the results table when it
  reports a rung (it is written again if promoted: a reader keeps the latest).
* The plan also names checkpoints that may go (unpromotable trials; over a byte budget the worst idle
  ones); the sweep deletes them before it asks again, so nothing is promoted while they go, and
  never deletes a running trial's or the best's. At the end every trial but the best is
  unpromotable (``delete_unpromotable``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.plan import (
        MAX_ACTIONS,
        PLAN,
        Deletion,
        PlanAction,
        PlanRequest,
        PlanResult,
        PlanRow,
        RungWatch,
    )
    from temporal_ml.activities.sweep import (
        COPY_RUN_CHECKPOINT,
        DELETE_RUN_CHECKPOINTS,
        CopyCheckpointRequest,
        DeleteCheckpointsRequest,
        DeleteCheckpointsResult,
    )
    from temporal_ml.errors import root_message
    from temporal_ml.search import AshaScheduler
    from temporal_ml.sweeps import (
        ScheduledSummary,
        SweepInput,
        SweepState,
        TrialRow,
        trial_name,
    )
    from temporal_ml.types import CheckpointRef, SnapshotRef, TrainConfig

if TYPE_CHECKING:
    from temporal_ml.workflows._trials import ReportRouter

__all__ = ["ScheduledSweep", "run_checkpoints", "PLAN_AHEAD_PATCH", "PLAN_AHEAD"]

#: A plan answers new trials ahead for slots that free later (``PlanResult.ahead``): the sweep
#: starts them without asking again while each result that comes in leaves the promotions as they
#: were. Runs recorded before ask at every free slot.
PLAN_AHEAD_PATCH = "tml-sweep-plan-ahead-v1"
#: New trials a plan answers ahead (a byte budget gets none: its deletions follow every result).
PLAN_AHEAD = 8


async def run_checkpoints(run_id: str, row: TrialRow, dry_run: bool, heartbeat_seconds: float) -> int:
    """Measure (``dry_run``) or delete the checkpoint directory of run ``run_id`` (``row``'s last
    checkpoint); returns its bytes. The delete activity of the sweep and the legacy ladder; it
    heartbeats, so a worker killed in it is noticed within ``heartbeat_seconds``."""
    ref = CheckpointRef(run_id=run_id, step=row.step, uri=row.checkpoint_uri,  # type: ignore[arg-type]
                        model_sha256=row.model_sha256)  # type: ignore[arg-type]
    done: DeleteCheckpointsResult = await workflow.execute_activity(
        DELETE_RUN_CHECKPOINTS, DeleteCheckpointsRequest(checkpoint=ref, dry_run=dry_run),
        result_type=DeleteCheckpointsResult, start_to_close_timeout=timedelta(minutes=10),
        heartbeat_timeout=timedelta(seconds=heartbeat_seconds),
        retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["ConfigError"]),
    )
    return done.bytes


class ScheduledSweep:
    """Promotions, rung configs and deletions of a sweep with a scheduler (see the module docstring)."""

    _s: SweepState
    _inp: SweepInput | None
    _run_id: str
    _running: int
    _draining: bool
    _changes: int
    _suggesting: bool
    _live: dict[int, TrialRow]
    _reports: ReportRouter[int]
    _ahead_on: bool  # plans answer new trials ahead (PLAN_AHEAD_PATCH)
    _ahead: list[PlanAction]  # the latest plan's new trials ahead, in order
    _watch: dict[tuple[int, int], RungWatch]  # its rungs, with the results kept since
    _ahead_at: int  # ``_changes`` while they stay the plan's decision
    _in_flight: list[tuple[int, int, float]] | None  # results (bracket, rung, value) while a plan runs
    _copied: dict[int, CheckpointRef]  # population-based training: each exploit's copy, by trial

    # the sweep provides these
    def _start_trial(self, inp: SweepInput, row: TrialRow, snapshot: SnapshotRef,
                     continue_from: CheckpointRef | None = None) -> None:
        raise NotImplementedError

    @property
    def _summary(self) -> ScheduledSummary:
        if self._s.scheduled is None:
            self._s.scheduled = ScheduledSummary()
        return self._s.scheduled

    def run_id_of(self, index: int) -> str:
        """The training run id (checkpoint directory) of trial ``index``: the same for every rung
        (with population-based training, until it exploits another: :meth:`run_dir`)."""
        return f"{self._run_id}--{trial_name(index)}"

    def run_dir(self, row: TrialRow) -> str:
        """The run id the trial trains in now: ``<run>--tNNNN``, or after an exploit of population-based
        training ``<run>--tNNNN--b<round>`` (begun from a copy of the donor's checkpoint)."""
        base = self.run_id_of(row.index)
        return base if row.branch is None else f"{base}--b{row.branch}"

    def rung_config(self, inp: SweepInput, row: TrialRow) -> TrainConfig:
        """The trial's config for its rung: ``max_steps`` the rung's budget, the schedule over the
        largest budget (raises ``ValueError`` for a point the config rejects)."""
        assert inp.scheduler is not None
        config = inp.space.apply(inp.base, row.params)
        return TrainConfig.model_validate({**config.model_dump(), "max_steps": row.max_steps,
                                           "schedule_steps": inp.scheduler.max_budget})

    # -- planning ------------------------------------------------------------------------------------

    async def _plan(self, inp: SweepInput, *, slots: int, final: bool = False) -> PlanResult | None:
        """Ask the ``PLAN`` activity (recorded); ``None`` if it failed (the sweep pauses with why)."""
        assert inp.scheduler is not None
        s, t = self._s, self._s.table
        req = PlanRequest(
            scheduler=inp.scheduler, searcher=inp.searcher, space=inp.space, seed=inp.seed,
            direction=inp.direction, table_uri=t.uri,
            # a running trial's point matters only to a searcher that reads the history (as pending)
            rows=[PlanRow.of(r, with_params=inp.searcher.uses_history or r.state not in ("training", "evaluating"))
                  for r in s.rows],
            table_parts=list(t.parts), next_index=s.n_started, max_trials=s.n_trials,
            slots=min(max(slots, 0), MAX_ACTIONS), may_start=not s.stopping and (not s.exhausted or bool(s.queue)),
            queued=list(s.queue), results_seen=s.results_seen, protected=list(s.retry), final=final,
            delete_unpromotable=inp.delete_unpromotable, checkpoint_budget_bytes=inp.checkpoint_budget_bytes,
            checkpoint_bytes=self._summary.checkpoint_bytes, ahead=PLAN_AHEAD if self._ahead_on and not final else 0)
        self._suggesting = True  # a trial index may be taken: an enqueued config runs after it
        self._ahead.clear()
        asked_at, self._in_flight = self._changes, []
        try:  # a regular activity, never a local one: see tests/replay/quarantine/README.md
            got: PlanResult = await workflow.execute_activity(
                PLAN, req, result_type=PlanResult, start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(maximum_attempts=3))
        except ActivityError as err:
            s.paused, s.pause_reason = True, f"the scheduler's plan failed: {root_message(err)}"
            workflow.logger.error("sweep %s paused: %s", self._run_id, s.pause_reason)
            return None
        finally:
            self._suggesting = False
            in_flight, self._in_flight = self._in_flight, None
        # its new trials ahead hold if every change since it was asked was a result that keeps them
        self._watch = {(w.bracket, w.rung): w for w in got.watch}
        if got.ahead and self._changes - asked_at == len(in_flight) and all(
                self._keep(*result) for result in in_flight):
            self._ahead, self._ahead_at = list(got.ahead), self._changes
        return got

    def _keep(self, bracket: int, rung: int, value: float) -> bool:
        """Whether a result at ``rung`` of ``bracket`` keeps the latest plan's promotions (and
        the rung's watch counts it)."""
        assert self._inp is not None and isinstance(self._inp.scheduler, AshaScheduler)
        watch = self._watch.get((bracket, rung))
        if watch is None or not watch.keeps(value, self._inp.direction, eta=self._inp.scheduler.eta):
            return False
        self._watch[(bracket, rung)] = watch.after()
        return True

    def _result_in(self, row: TrialRow, value: float | None, changes_before: int) -> None:
        """A scheduled trial finished (``value``: its result at its rung, ``None`` if it failed or
        stopped): while a plan runs it is noted for its answer; else the new trials ahead stay
        valid if it keeps the promotions as they were."""
        if not self._ahead_on or row.rung is None:
            return
        if self._in_flight is not None:
            if value is not None:
                self._in_flight.append((row.bracket, row.rung, value))
            return
        if (value is not None and self._ahead and self._ahead_at == changes_before
                and self._keep(row.bracket, row.rung, value)):
            self._ahead_at = self._changes

    def _start_ahead(self, inp: SweepInput, snapshot: SnapshotRef) -> bool:
        """Start the latest plan's next new trial ahead if it is still its decision (nothing but
        results that keep it came in since); else forget them. Returns whether one started."""
        s = self._s
        if not self._ahead:
            return False
        action = self._ahead[0]
        if (self._ahead_at != self._changes or s.queue or s.stopping or s.exhausted or s.retry
                or action.index != s.n_started or s.n_started >= s.n_trials):
            self._ahead.clear()
            return False
        self._ahead.pop(0)
        self._apply(inp, action, snapshot)
        return True

    async def _plan_and_apply(self, inp: SweepInput, snapshot: SnapshotRef) -> tuple[bool, bool]:
        """Plan for the free slots, start what it says (unless the sweep paused or stopped
        meanwhile) and delete what it names. Returns (done, idle): the scheduler is done (nothing
        runs or can start), or it had nothing for some free slot (wait for a change)."""
        s = self._s
        slots = s.max_concurrency - self._running
        queued_before = len(s.queue)
        got = await self._plan(inp, slots=slots)
        if got is None:
            return False, True
        summary = self._summary
        summary.rungs = got.rungs
        summary.budget_exceeded = summary.budget_exceeded or got.budget_exceeded
        if got.failed is not None:
            s.paused, s.pause_reason = True, got.failed
            workflow.logger.error("sweep %s paused: %s", self._run_id, got.failed)
            return False, True
        if got.exhausted is not None and not s.exhausted:
            workflow.logger.info("sweep %s: %s", self._run_id, got.exhausted)
            s.exhausted = True
        copies = {a.index: a for a in got.actions if a.donor is not None}
        if copies:  # before anything starts: no donor trains on (and prunes what is copied) meanwhile
            try:
                copied = await asyncio.gather(*(self._exploit_copy(inp, a, snapshot) for a in copies.values()))
            except ActivityError as err:  # resume plans again: the same exploits, copied again
                s.paused, s.pause_reason = True, f"an exploit's checkpoint copy failed: {root_message(err)}"
                workflow.logger.error("sweep %s paused: %s", self._run_id, s.pause_reason)
                return False, True
            self._copied = dict(zip(copies, copied, strict=True))
        left: list[tuple[str, TrialRow]] = []  # the runs exploiting trials leave, once they went on
        applied = 0
        searcher_starts = 0
        for action in got.actions:
            if s.paused or s.stopping or self._draining or self._running >= s.max_concurrency:
                break
            if action.action == "start":
                if action.index != s.n_started:
                    break
                if action.source == "searcher":
                    # a config enqueued while this plan ran goes right after the first new trial
                    if len(s.queue) > queued_before and searcher_starts:
                        break
                    searcher_starts += 1
                else:
                    queued_before -= 1
                    s.queue.pop(0)
            if action.donor is not None and inp.delete_unpromotable:
                row = self._live.get(action.index) or action.row
                if row is not None and row.has_checkpoint:
                    left.append((self.run_dir(row), row.model_copy()))
            self._apply(inp, action, snapshot)
            applied += 1
        # nothing resumes them, and no member copies them (they were in the bottom)
        for freed in await asyncio.gather(*(run_checkpoints(run, row, False, inp.heartbeat_timeout_seconds)
                                                  for run, row in left)):
            self._summary.freed_bytes += freed
        if applied < len(got.actions):  # the sweep went another way: the new trials ahead are not its plan
            self._ahead.clear()
        await self._delete(got.delete)
        idle = applied < min(slots, MAX_ACTIONS) and not got.more_deletions
        return got.done and not applied, idle

    def _apply(self, inp: SweepInput, action: PlanAction, snapshot: SnapshotRef) -> None:
        """Start a new trial, or promote one (its run continues toward the next rung)."""
        s = self._s
        continue_from: CheckpointRef | None = None
        if action.action == "start":
            row = TrialRow(index=action.index, params=action.params, source=action.source,
                           audit=action.audit, bracket=action.bracket, rung=0, started=workflow.now())
            s.rows.append(row)
            s.n_started += 1
            self._live[row.index] = row
        else:
            row = self._live.get(action.index) or self._bring_back(action.row, action.index)
            copied = self._exploit(row, action) if action.donor is not None else ""
            if not row.deleted:  # its run goes on from where its last rung ended (or its copy): not a resume
                continue_from = row.checkpoint_ref(self.run_dir(row))
            row.state, row.error = "training", None
            row.metrics, row.trained, row.finished = {}, None, None  # the next rung's come (small rows)
            row.deleted = False  # deleted for the byte budget: it trains again to its rung, the same way
        row.rung, row.max_steps = action.rung, action.budget
        row.decisions.append((action.note or action.reason) + copied if action.action == "promote" else
                             action.note or action.reason)
        if action.donor is None:  # (an exploit's line, with the digests, is noted as it applies)
            self._summary.note(action.reason)
        self._start_trial(inp, row, snapshot, continue_from)

    # -- population-based training -------------------------------------------------------------------

    def _donor_ref(self, action: PlanAction) -> CheckpointRef:
        """The checkpoint an exploit copies: the donor's at the end of the round."""
        assert action.donor is not None
        donor = self._live.get(action.donor) or action.donor_row
        ref = donor.checkpoint_ref(self.run_dir(donor)) if donor is not None else None
        assert ref is not None, f"the plan named donor {trial_name(action.donor)} without its checkpoint"
        return ref

    async def _exploit_copy(self, inp: SweepInput, action: PlanAction, snapshot: SnapshotRef) -> CheckpointRef:
        """Copy the donor's checkpoint into the run the trial goes on in (verified; idempotent)."""
        row = self._live.get(action.index) or action.row
        assert row is not None and inp.scheduler is not None
        config = self.rung_config(inp, row.model_copy(update={"params": action.params, "max_steps": action.budget}))
        target = f"{self.run_id_of(action.index)}--b{action.rung}"
        copied: CheckpointRef = await workflow.execute_activity(
            COPY_RUN_CHECKPOINT, CopyCheckpointRequest(source=self._donor_ref(action), run_id=target, config=config,
                                                       snapshot_id=snapshot.id),
            result_type=CheckpointRef, start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
            retry_policy=RetryPolicy(maximum_attempts=5, non_retryable_error_types=["ConfigError", "IntegrityError"]))
        return copied

    def _exploit(self, row: TrialRow, action: PlanAction) -> str:
        """The trial goes on in its own copy of the donor's checkpoint, with the explored params;
        its audit line names both trials, their steps and digests."""
        assert action.donor is not None
        source, copied = self._donor_ref(action), self._copied.pop(action.index)
        own = row.model_sha256[:12] if row.model_sha256 else "none"
        while len(row.rung_values) < action.rung:  # it failed in the round: no value there
            row.rung_values.append(float("nan"))
            row.rung_seqs.append(-1)
        if row.suggested is None and row.audit is not None:  # the audit recomputes the searcher's point
            row.suggested = dict(row.params)
        row.params, row.branch = dict(action.params), action.rung
        row.checkpoint_uri, row.model_sha256, row.step = copied.uri, copied.model_sha256, copied.step
        copy = (f"; copied {trial_name(action.donor)} step {source.step} (model {source.model_sha256[:12]}) "
                f"over its own (model {own}) into run {copied.run_id} (model {copied.model_sha256[:12]}, verified)")
        self._summary.note(action.reason + copy)
        workflow.logger.info("sweep %s: %s%s", self._run_id, action.reason, copy)
        return copy

    def _bring_back(self, row: TrialRow | None, index: int) -> TrialRow:
        """A trial the sweep wrote to its table becomes one it holds again (promoted, or deleted):
        it leaves the table's counts and is written again when it finishes (a reader keeps the latest)."""
        assert row is not None, f"the plan named {trial_name(index)} without its row"
        s, t = self._s, self._s.table
        t.rows -= 1
        if row.state == "done":
            t.n_done -= 1
        elif row.state == "failed":
            t.n_failed -= 1
        elif row.state == "stopped":
            t.n_stopped -= 1
        t.top = [r for r in t.top if r.index != row.index]
        s.rows.append(row)
        self._live[row.index] = row
        return row

    # -- deletions -----------------------------------------------------------------------------------

    async def _delete(self, deletions: list[Deletion]) -> int:
        """Delete the named trials' checkpoints (together), each checked again first: a trial
        running, about to run again or deleted already keeps what it has. Returns how many went."""
        victims = []
        for d in deletions:
            row = self._live.get(d.index) or self._bring_back(d.row, d.index)
            if row.state in ("training", "evaluating") or row.deleted or row.index in self._s.retry:
                continue
            victims.append((row, d.reason))
        freed = await asyncio.gather(*(self._checkpoints(row, dry_run=False) for row, _ in victims))
        summary = self._summary
        for (row, reason), n in zip(victims, freed, strict=True):
            summary.freed_bytes += n
            summary.checkpoint_bytes -= row.checkpoint_bytes
            summary.deleted += 1
            row.deleted, row.checkpoint_bytes = True, 0
            summary.note(reason)
        return len(victims)

    async def _measure(self, inp: SweepInput, row: TrialRow) -> None:
        """With a byte budget, measure the trial's checkpoints after its rung (it is still running,
        so no deletion takes it meanwhile)."""
        if inp.checkpoint_budget_bytes is None or row.checkpoint_uri is None:
            return
        summary = self._summary
        n = await self._checkpoints(row, dry_run=True)
        summary.checkpoint_bytes += n - row.checkpoint_bytes
        row.checkpoint_bytes, row.deleted = n, False
        summary.peak_checkpoint_bytes = max(summary.peak_checkpoint_bytes, summary.checkpoint_bytes)

    async def _checkpoints(self, row: TrialRow, dry_run: bool) -> int:
        """Measure or delete the checkpoint directory of ``row``'s run; returns its bytes."""
        if row.checkpoint_uri is None or row.model_sha256 is None:
            return 0
        assert self._inp is not None
        return await run_checkpoints(self.run_dir(row), row, dry_run, self._inp.heartbeat_timeout_seconds)

    async def _clean_up(self, inp: SweepInput) -> None:
        """At the end: every trial but the best is unpromotable; delete their checkpoints."""
        if not inp.delete_unpromotable and inp.checkpoint_budget_bytes is None:
            return
        while True:
            got = await self._plan(inp, slots=0, final=True)
            if got is None:
                return
            self._summary.rungs = got.rungs
            if not await self._delete(got.delete) or not got.more_deletions:
                return

    def _rerun_note(self, row: TrialRow) -> None:
        """A failed scheduled trial runs again toward the rung it failed at (the searcher's audit:
        it is pending again from this result on)."""
        s = self._s
        row.rerun_seqs.append(s.results_seen)
        s.results_seen += 1
        line = f"{row.name} runs again toward rung {row.rung} from its last checkpoint"
        row.decisions.append(f"runs again toward rung {row.rung}")
        self._summary.note(line)
