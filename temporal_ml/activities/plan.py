"""What a sweep with a scheduler does next: the ``PLAN`` activity (pure, its result recorded).

A sweep with a scheduler (ASHA) does not hold its rung table: the table grows with every trial.
Its rows hold the rungs instead (``TrialRow.bracket``, ``rung``, ``rung_values``, ``rung_seqs``),
finished rows go to the results table as they finish, and each decision comes from this activity,
which takes the rung table of the rows the sweep wrote (each part verified against its recorded
digest; a worker indexes a part once and keeps each rung sorted: :mod:`._rung_index`), puts the
rows the sweep holds over it, asks the scheduler, and the searcher
for the points of new trials. Temporal records the answer in the sweep's history, so a replay, a
worker with other scheduler or searcher code, or a library upgrade reuses it: decisions are
recorded, not recomputed.

One call answers up to ``slots`` actions (a promotion or a new trial for each free slot, each
decided with the earlier ones applied) and the checkpoints that may go: trials that can no longer
be promoted (``delete_unpromotable``) and, over a byte budget, idle trials' worst first. The best
trial's, a running trial's and those about to run again are never among them. The sweep applies
the answer before it asks again, so nothing is promoted while its deletions run.

Example:
    >>> from temporal_ml.search import AshaScheduler, Float, RandomSearcher, SearchSpace
    >>> req = PlanRequest(scheduler=AshaScheduler(min_budget=1, max_budget=9), searcher=RandomSearcher(),
    ...                   space=SearchSpace({"hparams.lr": Float(0.01, 0.1)}), seed=0,
    ...                   direction="maximize", rows=[], next_index=0, max_trials=4, slots=2,
    ...                   results_seen=0)
    >>> [(a.action, a.index, a.budget) for a in plan_next(req).actions]
    [('start', 0, 1), ('start', 1, 1)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from temporal_ml.activities._rung_index import RungIndex, WrittenRow, written_index
from temporal_ml.search import (
    AnySearcher,
    AshaScheduler,
    Direction,
    LadderDecision,
    PbtScheduler,
    RungTable,
    SearchExhausted,
    SearchSpace,
    SweepScheduler,
    TrialRecord,
    explore,
    pbt_round,
)
from temporal_ml.sweeps import (
    RungCount,
    SuggestionAudit,
    TrialRow,
    TrialState,
    rung_record,
    trial_name,
)

__all__ = ["PLAN", "PlanRow", "PlanRequest", "PlanAction", "Deletion", "PlanResult", "RungWatch", "plan_next",
           "MAX_ACTIONS", "MAX_DELETIONS", "MAX_AHEAD", "WrittenRow"]

#: The activity that decides a scheduled sweep's next promotions and new trials (recorded).
PLAN = "temporal_ml.sweep.plan"
#: Actions one plan answers at most.
MAX_ACTIONS = 64
#: Deletions one plan answers at most (the sweep asks again for the rest).
MAX_DELETIONS = 32
#: New trials one plan answers ahead at most, for slots that free later (:attr:`PlanResult.ahead`).
MAX_AHEAD = 16


class PlanRow(BaseModel):
    """What the plan needs of one trial (a compact :class:`~temporal_ml.sweeps.TrialRow`)."""

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    index: int
    params: dict[str, JsonValue]
    state: TrialState
    bracket: int = Field(default=0, exclude_if=lambda v: v == 0)  # defaults are not sent: small requests
    rung: int = Field(default=0, exclude_if=lambda v: v == 0)
    rung_values: list[float] = Field(default_factory=list, exclude_if=lambda v: not v)
    rung_seqs: list[int] = Field(default_factory=list, exclude_if=lambda v: not v)
    step: int = Field(default=0, exclude_if=lambda v: v == 0)
    checkpoint_bytes: int = Field(default=0, exclude_if=lambda v: v == 0)
    deleted: bool = Field(default=False, exclude_if=lambda v: not v)
    checkpointed: bool = Field(default=False, exclude_if=lambda v: not v)

    @classmethod
    def of(cls, row: TrialRow, *, with_params: bool = True) -> PlanRow:
        """``row``'s plan fields; without its ``params`` (``with_params=False``) for a running
        trial when the searcher ignores the history: nothing else reads them (smaller requests)."""
        return cls.model_construct(
            index=row.index, params=row.params if with_params else {}, state=row.state, bracket=row.bracket, rung=row.rung or 0,
            rung_values=list(row.rung_values), rung_seqs=list(row.rung_seqs), step=row.step,
            checkpoint_bytes=row.checkpoint_bytes, deleted=row.deleted,
            checkpointed=row.has_checkpoint)

    @property
    def running(self) -> bool:
        return self.state in ("training", "evaluating")

    def record(self) -> TrialRecord:
        """What the searcher is told: the value at the highest rung reached, and each rung's by
        level (as ``TrialRow.record``)."""
        return rung_record(self.index, self.params, self.rung_values, self.running, self.bracket)


class PlanRequest(BaseModel):
    """The sweep's state as the plan needs it.

    Attributes:
        rows: the trials the sweep holds (running ones, finished ones not yet written); those in
            the results table at ``table_uri`` (parts verified against ``table_parts``) are read.
        next_index: the index a new trial takes; ``max_trials``: new trials the sweep may start.
        slots: actions wanted at most (free slots); 0 asks only for deletions.
        may_start: new trials may start (not stopping, not exhausted).
        queued: user configs waiting, in order: new trials take them before asking the searcher.
        results_seen: results recorded so far (the audit of each suggestion).
        protected: trials whose checkpoints must stay (they run again).
        final: the sweep ends: every trial is unpromotable but the best (deletions only).
        checkpoint_bytes: the measured checkpoints' bytes now (with ``checkpoint_budget_bytes``).
        ahead: new trials wanted ahead, for slots that free later (:attr:`PlanResult.ahead`).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")

    scheduler: SweepScheduler
    searcher: AnySearcher
    space: SearchSpace
    seed: int
    direction: Direction
    rows: list[PlanRow]
    table_uri: str | None = None
    table_parts: list[str] = Field(default_factory=list)
    next_index: int
    max_trials: int
    slots: int = Field(ge=0, le=MAX_ACTIONS)
    may_start: bool = True
    queued: list[dict[str, JsonValue]] = Field(default_factory=list)
    results_seen: int = 0
    protected: list[int] = Field(default_factory=list)
    final: bool = False
    delete_unpromotable: bool = True
    checkpoint_budget_bytes: int | None = None
    checkpoint_bytes: int = 0
    ahead: int = Field(default=0, ge=0, le=MAX_AHEAD)


class PlanAction(BaseModel):
    """Start trial ``index`` (new: its ``params``) or promote it, toward ``rung`` of ``bracket``
    (``budget`` steps), and why: ``reason`` (the scheduler's audit line) and ``note`` (the short
    form the trial's row keeps). ``row``: a promoted trial's row as the results table holds it (the
    sweep no longer held it).

    Population-based training: a promotion with a ``donor`` is an exploit: the trial goes on from a
    copy of trial ``donor``'s checkpoint (``donor_row`` as the table holds it, when the sweep no
    longer holds it) with ``params`` explored from the donor's."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    action: Literal["start", "promote"]
    index: int
    bracket: int
    rung: int
    budget: int
    reason: str
    note: str = ""
    params: dict[str, JsonValue] = Field(default_factory=dict)
    source: Literal["searcher", "user"] = "searcher"
    audit: SuggestionAudit | None = None
    row: TrialRow | None = None
    donor: int | None = Field(default=None, exclude_if=lambda v: v is None)
    donor_row: TrialRow | None = Field(default=None, exclude_if=lambda v: v is None)


class Deletion(BaseModel):
    """Delete trial ``index``'s checkpoints, and why; ``row`` as in :class:`PlanAction`."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    index: int
    reason: str
    row: TrialRow | None = None


class PlanResult(BaseModel):
    """The actions in order, the deletions, and the state of the search.

    ``done``: nothing runs, nothing can be promoted or started; ``exhausted``: the searcher has no
    new points (why); ``failed``: the searcher raised (the sweep pauses with it); ``more_deletions``:
    more checkpoints may go than one answer carries (ask again).

    ``ahead``: new trials for slots that free later, in order, each the scheduler's and the
    searcher's decision given the actions before it; ``watch``: each rung's results and cutoff when
    they were decided. They stay the plan's decision while every result that comes in leaves the
    promotions as they were (:meth:`RungWatch.keeps`): no new result enters a rung's promoted
    quota and no quota grows. A sweep uses them in order without asking again, and asks again at
    any other change (a failure, an update, a result that could be promoted)."""

    model_config = ConfigDict(ser_json_inf_nan="strings")

    actions: list[PlanAction] = Field(default_factory=list)
    delete: list[Deletion] = Field(default_factory=list)
    done: bool = False
    exhausted: str | None = None
    failed: str | None = None
    more_deletions: bool = False
    rungs: list[RungCount] = Field(default_factory=list)
    budget_exceeded: bool = False
    ahead: list[PlanAction] = Field(default_factory=list, exclude_if=lambda v: not v)
    watch: list[RungWatch] = Field(default_factory=list, exclude_if=lambda v: not v)


class RungWatch(BaseModel):
    """One rung as a plan left it: ``results`` reported there and ``cutoff``, the value ranked last
    among the quota promoted from it (``None``: the quota is 0); ``top``: the bracket's last rung
    (nothing is promoted from it).

    Example:
        >>> w = RungWatch(bracket=0, rung=0, results=4, cutoff=0.2)  # eta 3: the best 1 is promoted
        >>> w.keeps(0.5, "minimize", eta=3), w.keeps(0.1, "minimize", eta=3), w.keeps(0.2, "minimize", eta=3)
        (True, False, True)
        >>> RungWatch(bracket=0, rung=0, results=5, cutoff=0.2).keeps(0.9, "minimize", eta=3)  # 6 results: quota 2
        False
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True)

    bracket: int
    rung: int
    results: int
    cutoff: float | None = None
    top: bool = Field(default=False, exclude_if=lambda v: not v)

    def keeps(self, value: float, direction: Direction, *, eta: int) -> bool:
        """Whether a new result ``value`` here leaves the scheduler's promotions as they were: the
        rung's quota (``results // eta``) stays and ``value`` ranks after the cutoff (ties rank by
        report order, the new one last; NaN ranks last)."""
        if self.top:
            return True
        if (self.results + 1) // eta != self.results // eta:
            return False
        if self.cutoff is None:
            return True
        sign = 1.0 if direction == "minimize" else -1.0

        def key(v: float) -> tuple[bool, float]:
            return (math.isnan(v), 0.0 if math.isnan(v) else sign * v)

        return key(value) >= key(self.cutoff)

    def after(self) -> RungWatch:
        """The rung once a result it :meth:`keeps` came in."""
        return self.model_copy(update={"results": self.results + 1})


def plan_next(req: PlanRequest, storage_options: dict[str, Any] | None = None) -> PlanResult:
    """The next actions and deletions (pure: equal requests give equal answers)."""
    if req.table_parts:  # the worker's index of the rows written (a later part's row replaces an earlier one)
        assert req.table_uri is not None  # (what the sweep holds is newer than what it wrote: put over it)
        with written_index(req.table_uri, req.table_parts, req.scheduler, req.direction, storage_options,
                           _written_row, held=req.rows) as indexed:
            return _plan(req, indexed, storage_options)
    indexed = RungIndex(req.scheduler, req.direction)
    indexed.put_all(req.rows)
    return _plan(req, indexed, storage_options)


def _plan(req: PlanRequest, indexed: RungIndex, storage_options: dict[str, Any] | None) -> PlanResult:
    """:func:`plan_next` over the index of every row (the table's, the held ones put over them)."""
    rows: Mapping[int, PlanRow | WrittenRow] = indexed.rows

    def written(index: int) -> TrialRow | None:
        """The row as the table holds it (read again: the worker keeps only the plan's fields)."""
        row = rows[index]
        if not isinstance(row, WrittenRow):
            return None
        assert req.table_uri is not None
        return TrialRow.model_validate(_row_as_written(req.table_uri, row.part, req.table_parts[row.part],
                                                       index, storage_options))
    table = indexed.table()
    out = PlanResult()
    promoted_now: set[int] = set()
    history: list[TrialRecord] | None = None
    counts = (0, 0, 0)
    started: list[TrialRecord] = []  # new trials of this plan (pending for the searcher's next points)
    queued = list(req.queued)
    next_index = req.next_index
    def new_trial(decision: LadderDecision) -> PlanAction | None:
        """A new trial where the scheduler starts one: a queued config, else the searcher's point
        (``None``: the searcher is exhausted or failed, as ``out`` says)."""
        nonlocal history, counts, next_index
        audit = None
        if queued:
            params, source = queued.pop(0), "user"
        else:
            if history is None:  # (a searcher that ignores the history gets none: the counts suffice)
                history = ([*(r.record() for r in sorted(rows.values(), key=lambda r: r.index)), *started]
                           if req.searcher.uses_history else [])
                counts = (indexed.complete, indexed.failed, indexed.pending)
            audit = SuggestionAudit(searcher=req.searcher.kind, results_seen=req.results_seen, complete=counts[0],
                                    failed=counts[1], pending=counts[2] + len(started))
            try:
                params = dict(req.searcher.suggest(req.space, history, seed=req.seed, index=next_index,
                                                   direction=req.direction))
            except SearchExhausted as exc:
                out.exhausted = str(exc) or "the searcher has no new points"
                return None
            except Exception as exc:  # a searcher bug: the sweep pauses with the reason
                out.failed = f"the {req.searcher.kind} searcher failed: {type(exc).__name__}: {exc}"
                return None
            source = "searcher"
        table.start(trial_name(next_index), decision.bracket)
        pending = TrialRecord(index=next_index, params=params, state="pending")
        started.append(pending)
        if history is not None and req.searcher.uses_history:
            history.append(pending)
        action = PlanAction(action="start", index=next_index, bracket=decision.bracket,
                            rung=0, budget=decision.budget, reason=decision.reason,
                            note=f"started in bracket {decision.bracket}: {decision.budget} steps",
                            params=params, source=source, audit=audit)  # type: ignore[arg-type]
        next_index += 1
        return action

    if isinstance(req.scheduler, PbtScheduler):
        _plan_pbt(req, req.scheduler, rows, written, new_trial, lambda: next_index, out)
        _deletions(req, table, indexed, written, set(), out)
        out.rungs = _rung_counts(table)
        return out
    for _ in range(0 if req.final else req.slots):
        may_start = req.may_start and out.exhausted is None and next_index < req.max_trials
        decision = req.scheduler.next(table, may_start=may_start)
        if decision.action == "promote":
            assert decision.trial_id is not None
            table.promote(decision.trial_id, decision.rung - 1)
            index = int(decision.trial_id[1:])
            promoted_now.add(index)
            out.actions.append(PlanAction(
                action="promote", index=index, bracket=decision.bracket, rung=decision.rung,
                budget=decision.budget, reason=decision.reason, params=rows[index].params,
                note=(f"rung {decision.rung - 1}: ranked {decision.rank} of {decision.size}, the top "
                      f"{decision.quota} go on: to {decision.budget} steps"),
                row=written(index)))
            continue
        if decision.action != "start":
            out.done = decision.action == "done" and not out.actions
            break
        action = new_trial(decision)
        if action is None:
            if out.failed is not None:
                break
            continue
        out.actions.append(action)
    if (req.ahead and not req.final and not queued and out.exhausted is None and out.failed is None
            and len(out.actions) == req.slots):
        _plan_ahead(req, table, new_trial, lambda: next_index, out)
    _deletions(req, table, indexed, written, promoted_now, out)
    out.rungs = _rung_counts(table)
    return out


def _rung_counts(table: RungTable) -> list[RungCount]:
    return [RungCount(bracket=b, rung=k, budget=r.budget, results=len(r.results),
                      promoted=len(r.promoted), running=len(r.running))
            for b, bracket in enumerate(table.brackets) for k, r in enumerate(bracket.rungs)]


def _plan_pbt(req: PlanRequest, pbt: PbtScheduler, rows: Mapping[int, PlanRow | WrittenRow],
              written: Callable[[int], TrialRow | None], new_trial: Callable[[LadderDecision], PlanAction | None],
              next_index: Callable[[], int], out: PlanResult) -> None:
    """Population-based training in synchronous rounds (:mod:`temporal_ml.search._pbt`): the
    population starts at round 0; once every member reported a round (or failed in it), each is
    continued or exploits a better one, exploits first (the sweep copies their checkpoints before it
    starts anything, so no donor trains on, and prunes the checkpoint copied, meanwhile)."""
    budgets = pbt.budgets()
    last = len(budgets) - 1
    protected = set(req.protected)  # failed trials the sweep runs again: still running, for the rounds
    live = [r for r in sorted(rows.values(), key=lambda r: r.index) if r.state != "stopped"]
    for k in range(last + 1):
        members = [r for r in live if r.rung >= k and len(r.rung_values) >= k]
        busy = any(r.rung == k and (r.running or r.index in protected) for r in members)
        starting = k == 0 and req.may_start and next_index() < req.max_trials and out.exhausted is None
        if k == 0 and starting and not req.final:
            while len(out.actions) < req.slots and next_index() < req.max_trials:
                action = new_trial(LadderDecision(
                    action="start", rung=0, budget=budgets[0],
                    reason=f"population-based training: member {next_index() + 1} of {req.max_trials} "
                           f"starts round 0 ({budgets[0]} steps)"))
                if action is None:
                    break
                out.actions.append(action)
            return
        if busy or starting:
            return  # the round runs: its decisions wait for every member
        if k == last:
            out.done = not out.actions
            return
        values = {r.index: r.rung_values[k] if len(r.rung_values) > k else math.nan for r in members}
        decisions = pbt_round(values, req.direction, seed=req.seed, round=k, quantile=pbt.quantile)
        pending = [d for d in decisions if rows[d.index].rung == k and not (
            d.donor is None and len(rows[d.index].rung_values) <= k)]  # (a failed member kept: it is out)
        if not pending:
            continue
        if req.final:
            return
        for d in pending[:req.slots]:
            row = rows[d.index]
            nxt = budgets[k + 1]
            head = (f"round {k} ({budgets[k]} steps): {trial_name(d.index)} ranks {d.rank} of {d.size} "
                    f"({_value(d.value)})")
            if d.donor is None:
                out.actions.append(PlanAction(
                    action="promote", index=d.index, bracket=0, rung=k + 1, budget=nxt, params=row.params,
                    reason=f"{head}: it continues to {nxt} steps", row=written(d.index),
                    note=f"round {k}: ranked {d.rank} of {d.size}, continues to {nxt} steps"))
                continue
            donor = rows[d.donor]
            params, changes = explore(pbt, req.space, donor.params, seed=req.seed, round=k, index=d.index)
            out.actions.append(PlanAction(
                action="promote", index=d.index, bracket=0, rung=k + 1, budget=nxt, params=params,
                reason=(f"{head}: it exploits {trial_name(d.donor)} (ranked {_rank_of(decisions, d.donor)}, "
                        f"{_value(values[d.donor])}) and explores: {'; '.join(changes) or 'nothing changed'}"),
                note=(f"round {k}: ranked {d.rank} of {d.size}, exploits {trial_name(d.donor)}: "
                      f"{'; '.join(changes) or 'same params'}"),
                row=written(d.index), donor=d.donor, donor_row=written(d.donor)))
        return


def _rank_of(decisions: list[Any], index: int) -> int:
    return next(d.rank for d in decisions if d.index == index)


def _value(value: float) -> str:
    return "failed" if math.isnan(value) else f"{value:.4g}"


def _plan_ahead(req: PlanRequest, table: RungTable, new_trial: Callable[[LadderDecision], PlanAction | None],
                next_index: Callable[[], int], out: PlanResult) -> None:
    """Up to ``req.ahead`` new trials after the actions (the scheduler had nothing to promote), and
    each rung's watch; the searcher running out here is found again by the next plan."""
    assert isinstance(req.scheduler, AshaScheduler)  # (a sweep asks ahead only with ASHA)
    for _ in range(req.ahead):
        decision = req.scheduler.next(table, may_start=req.may_start and next_index() < req.max_trials)
        if decision.action != "start":
            break
        action = new_trial(decision)
        if action is None:
            out.exhausted = out.failed = None
            break
        out.ahead.append(action)
    if not out.ahead:
        return
    eta = req.scheduler.eta
    for b, bracket in enumerate(table.brackets):
        for k, rung in enumerate(bracket.rungs):
            top = k == len(bracket.rungs) - 1
            quota = 0 if top else len(rung.results) // eta
            cutoff = rung.results[table.ranking(b, k)[quota - 1]] if quota else None
            out.watch.append(RungWatch(bracket=b, rung=k, results=len(rung.results), cutoff=cutoff, top=top))


def rung_table(rows: Any, scheduler: SweepScheduler, direction: Direction) -> RungTable:
    """The rung table the rows describe: each rung's results in the order reported, the trials
    promoted from it (they trained toward a higher rung) and those training toward it."""
    index = RungIndex(scheduler, direction)
    index.put_all(rows)
    return index.table(in_report_order=True)


def _deletions(req: PlanRequest, table: RungTable, indexed: RungIndex,
               written: Callable[[int], TrialRow | None], promoted_now: set[int], out: PlanResult) -> None:
    """The checkpoints that may go: unpromotable trials, then over the byte budget the worst idle
    ones; never the best trial's, a running one's, one promoted now or one about to run again."""
    if req.final:
        table.closed = True
    rows: Mapping[int, PlanRow | WrittenRow] = indexed.rows
    keep = indexed.running_rows | promoted_now | set(req.protected)
    best = table.best()
    if best is not None:
        keep.add(int(best[0][1:]))
    best_done = indexed.best_done()  # the result's best (most steps, then value)
    if best_done is not None:
        keep.add(best_done)
    chosen: list[tuple[int, str]] = []
    if req.final and req.delete_unpromotable:  # the sweep is over: nothing is promoted any more
        for row in sorted(rows.values(), key=lambda r: r.index):
            top = len(table.brackets[row.bracket].rungs) - 1
            if row.deleted or row.index in keep or len(row.rung_values) > top or not row.checkpointed:
                continue  # (a trial that reported at its top rung is a finished model: it keeps them)
            chosen.append((row.index, f"{trial_name(row.index)} ended below the top rung: its checkpoints go"))
    elif req.delete_unpromotable and isinstance(req.scheduler, AshaScheduler):  # (PBT: every member goes on)
        for index, tid, rung in indexed.still_at(req.scheduler.dead(table, max_trials=req.max_trials)):
            if index not in keep:
                chosen.append((index, f"{tid} can no longer be promoted from rung {rung}: its checkpoints go"))
    total = req.checkpoint_bytes - sum(indexed.checkpoint_bytes_of(i) for i, _ in chosen)
    budget = req.checkpoint_budget_bytes
    if budget is not None and total > budget:
        gone = {i for i, _ in chosen}

        def badness(index: int) -> tuple[int, int]:
            rung = indexed.rung_of(index)
            ranking = table.ranking(indexed.bracket_of(index), rung)
            name = trial_name(index)
            return (rung, -(ranking.index(name) if name in ranking else len(ranking)))

        for index in sorted((i for i in rows if indexed.checkpoint_bytes_of(i) > 0 and not indexed.deleted_of(i)
                             and i not in keep and i not in gone), key=badness):
            if total <= budget:
                break
            nbytes = indexed.checkpoint_bytes_of(index)
            total -= nbytes
            chosen.append((index, f"{trial_name(index)}: over the checkpoint budget of {budget} "
                                  f"bytes, its {nbytes} bytes go"))
        out.budget_exceeded = total > budget
    out.more_deletions = len(chosen) > MAX_DELETIONS
    for index, reason in chosen[:MAX_DELETIONS]:
        out.delete.append(Deletion(index=index, reason=reason, row=written(index)))


def _written_row(raw: dict[str, Any], part: int) -> WrittenRow:
    """What a worker keeps of a row of part ``part`` (:func:`written_index`)."""
    return WrittenRow.of(TrialRow.model_validate(raw), part)


_AS_WRITTEN: dict[tuple[str, int, str], dict[int, dict[str, Any]]] = {}  # the last few parts read


def _row_as_written(uri: str, part: int, sha256: str, index: int,
                    storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """Trial ``index``'s row as part ``part`` holds it (verified; the last few parts are kept)."""
    from temporal_ml.activities.sweep import read_table_part

    key = (uri, part, sha256)
    rows = _AS_WRITTEN.pop(key, None)
    if rows is None:
        rows = {raw["index"]: raw for raw in read_table_part(uri, part, sha256, storage_options)}
    _AS_WRITTEN[key] = rows  # the newest last
    while len(_AS_WRITTEN) > 4:
        _AS_WRITTEN.pop(next(iter(_AS_WRITTEN)))
    return rows[index]
