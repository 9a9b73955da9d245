"""Typed values of hyperparameter sweeps: inputs, live trial status, the audit record, results.

Torch-free and Temporal-free (pydantic only), like :mod:`temporal_ml.types`, so clients and
orchestration workers import it cheaply. The workflows live in :mod:`temporal_ml.workflows.sweep`
and :mod:`temporal_ml.workflows.ladder`.

The searcher audit is compact: every trial records the order in which its result arrived
(``result_seq``), and every suggestion records how many results the sweep had seen
(``SuggestionAudit.results_seen``). Together they determine exactly which trials were complete,
failed or pending when a suggestion was made (:func:`history_at`), so a finished sweep's decisions
can be recomputed (:func:`recompute_suggestions`) at a cost of two integers per trial in the history.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from temporal_ml._names import NAME_PATTERN
from temporal_ml.errors import INFRASTRUCTURE_ERRORS
from temporal_ml.search import (
    AnySearcher,
    AshaScheduler,
    Direction,
    RandomSearcher,
    RungTable,
    SearchSpace,
    TrialRecord,
)
from temporal_ml.types import (
    BoundaryModel,
    DatasetSource,
    LeaderboardEntry,
    Lineage,
    SnapshotRef,
    TrainConfig,
)

__all__ = [
    "TrialState",
    "SuggestionAudit",
    "TrialRow",
    "SweepInput",
    "SweepState",
    "TableSummary",
    "PART_ROWS",
    "TOP_ROWS",
    "LEADERBOARD_ROWS",
    "PAGE_ROWS",
    "MAX_HELD_FAILED",
    "SweepStatus",
    "TrialResult",
    "SweepResult",
    "RungCount",
    "ScheduledSummary",
    "RECENT_DECISIONS",
    "MAX_CONCURRENCY",
    "MAX_SCHEDULED_CONCURRENCY",
    "concurrency_cap",
    "LadderInput",
    "LadderState",
    "LadderResult",
    "history_at",
    "recompute_suggestions",
    "ladder_history_at",
    "recompute_ladder_suggestions",
    "objective_value",
    "trial_name",
]

#: A trial's life: ``training`` -> ``evaluating`` -> ``done``; or ``failed`` (error recorded) or
#: ``stopped`` (stopped by a user: evaluated at the step it reached, told to the searcher as failed).
TrialState = Literal["training", "evaluating", "done", "failed", "stopped"]


def trial_name(index: int) -> str:
    """The readable id of trial ``index`` within its sweep: ``t0007`` (part of its workflow ids)."""
    return f"t{index:04d}"


class SuggestionAudit(BaseModel):
    """What a searcher suggestion was computed from.

    Attributes:
        searcher: the searcher's ``kind``.
        results_seen: how many trial results the sweep had recorded (every trial whose
            ``result_seq`` is below this was complete or failed; every other earlier trial pending).
        complete, failed, pending: the counts of each, as a cross-check.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    searcher: str
    results_seen: int = Field(ge=0)
    complete: int = Field(ge=0)
    failed: int = Field(ge=0)
    pending: int = Field(ge=0)

    @classmethod
    def of(cls, searcher: str, results_seen: int, history: list[TrialRecord]) -> SuggestionAudit:
        """The audit of a suggestion computed from ``history`` after ``results_seen`` results."""
        return cls(searcher=searcher, results_seen=results_seen,
                   complete=sum(h.state == "complete" for h in history),
                   failed=sum(h.state == "failed" for h in history),
                   pending=sum(h.state == "pending" for h in history))


def _none(value: Any) -> bool:
    return value is None


def _empty(value: Any) -> bool:
    return not value


def _zero(value: Any) -> bool:
    return value == 0 and not isinstance(value, float)


# A row field left at its default (``None``, empty, the int 0, ``False``) is not written, so the rows
# a sweep carries and writes stay small; reading fills the default back in. (A float keeps its 0.0,
# and ``rung`` its 0: they are not defaults.)


class TrialRow(BaseModel):
    """One trial of a sweep (compact: it travels through continue-as-new).

    Attributes:
        index: the trial's number (0, 1, ...); ``name`` is :func:`trial_name` of it.
        params: the point of the space it trains.
        source: ``searcher`` (``audit`` says from what) or ``user`` (enqueued by an update).
        state: see :data:`TrialState`.
        value: the objective (the evaluation metric) when done.
        metrics: every evaluation metric.
        step / max_steps / loss: training progress (live, from the training's reports).
        error: why it failed.
        result_seq: the order in which its result (done/failed/stopped) was recorded.
        checkpoint_uri / model_sha256: its final checkpoint.
        resumes: how many times its training resumed (crashes, pauses).
        started / trained / finished: workflow times (start, end of training, end).
        audit: what its suggestion was computed from (searcher trials).
        retried_from: the ``result_seq`` of each earlier result of this trial (it failed, then ran
            again from its last checkpoint: ``retry_failed``, or after an infrastructure pause).

    With a scheduler (ASHA) a trial trains in rungs, one run continued from rung to rung:
        bracket / rung: its bracket, and the rung it trains (or last trained) toward.
        rung_values / rung_seqs: the objective it reported at each rung reached, and the order in
            which each was recorded (``value`` is the latest; ``result_seq`` its seq).
        rerun_seqs: when it ran again after failing (the searcher's audit: pending again from then).
        decisions: the scheduler's audit lines that started and promoted it.
        checkpoint_bytes: its checkpoints' bytes when last measured (a byte budget); ``deleted``:
            its checkpoints were deleted (it can no longer be promoted, or for the byte budget).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    index: int = Field(ge=0)
    params: dict[str, JsonValue]
    source: Literal["searcher", "user"] = "searcher"
    state: TrialState = "training"
    value: float | None = Field(default=None, exclude_if=_none)
    metrics: dict[str, float] = Field(default_factory=dict, exclude_if=_empty)
    step: int = 0
    max_steps: int = 0
    loss: float | None = Field(default=None, exclude_if=_none)
    error: str | None = Field(default=None, exclude_if=_none)
    result_seq: int | None = Field(default=None, exclude_if=_none)
    checkpoint_uri: str | None = Field(default=None, exclude_if=_none)
    model_sha256: str | None = Field(default=None, exclude_if=_none)
    resumes: int = Field(default=0, exclude_if=_zero)
    started: datetime | None = None
    trained: datetime | None = Field(default=None, exclude_if=_none)
    finished: datetime | None = Field(default=None, exclude_if=_none)
    audit: SuggestionAudit | None = Field(default=None, exclude_if=_none)
    retried_from: list[int] = Field(default_factory=list, exclude_if=_empty)
    bracket: int = Field(default=0, exclude_if=_zero)
    rung: int | None = Field(default=None, exclude_if=_none)
    rung_values: list[float] = Field(default_factory=list, exclude_if=_empty)
    rung_seqs: list[int] = Field(default_factory=list, exclude_if=_empty)
    rerun_seqs: list[int] = Field(default_factory=list, exclude_if=_empty)
    decisions: list[str] = Field(default_factory=list, exclude_if=_empty)
    checkpoint_bytes: int = Field(default=0, exclude_if=_zero)
    deleted: bool = Field(default=False, exclude_if=_empty)

    @property
    def name(self) -> str:
        return trial_name(self.index)

    @property
    def train_seconds(self) -> float | None:
        return (self.trained - self.started).total_seconds() if self.trained and self.started else None

    @property
    def eval_seconds(self) -> float | None:
        return (self.finished - self.trained).total_seconds() if self.finished and self.trained else None

    def mark_trained(self, train: Any, at: datetime) -> None:
        """Training ended with ``train`` (a ``TrainResult``): the trial is evaluating now."""
        self.state, self.trained, self.step = "evaluating", at, train.steps
        self.checkpoint_uri, self.model_sha256 = train.checkpoint.uri, train.checkpoint.model_sha256
        self.resumes = train.resumes
        self.loss = train.metrics.get("loss", self.loss)  # the final loss, not the last report's

    def record(self) -> TrialRecord:
        """What the searcher is told about this trial now (a scheduled trial: its value at the
        highest rung it reached, while it trains on too)."""
        if self.rung is not None:
            return rung_record(self.index, self.params, self.rung_values,
                               running=self.state in ("training", "evaluating"))
        if self.state == "done" and self.value is not None and math.isfinite(self.value):
            return TrialRecord(index=self.index, params=self.params, state="complete", value=self.value)
        if self.state in ("training", "evaluating"):
            return TrialRecord(index=self.index, params=self.params, state="pending")
        return TrialRecord(index=self.index, params=self.params, state="failed")


def rung_record(index: int, params: dict[str, Any], rung_values: list[float], running: bool) -> TrialRecord:
    """What the searcher is told of a trial trained in rungs: its value at the highest rung it
    reached (complete, also while it trains on), else pending while it runs, else failed."""
    if rung_values and math.isfinite(rung_values[-1]):
        return TrialRecord(index=index, params=params, state="complete", value=rung_values[-1])
    return TrialRecord(index=index, params=params, state="pending" if running else "failed")


def objective_value(metrics: dict[str, float], objective: str) -> float | None:
    """The objective from evaluation metrics, ``None`` when missing or not finite."""
    value = metrics.get(objective)
    return float(value) if value is not None and math.isfinite(value) else None


def history_at(rows: list[TrialRow], index: int, results_seen: int) -> list[TrialRecord]:
    """The history trial ``index``'s suggestion was computed from, rebuilt from finished rows."""
    history = []
    for row in rows:
        if row.index >= index:
            continue
        if row.rung is not None:
            history.append(_scheduled_record_at(row, results_seen))
            continue
        if row.result_seq is not None and row.result_seq < results_seen:
            history.append(row.record())
        elif any(seq < results_seen for seq in row.retried_from):  # it had failed, then was retried
            history.append(TrialRecord(index=row.index, params=row.params, state="failed"))
        else:
            history.append(TrialRecord(index=row.index, params=row.params, state="pending"))
    return history


def _scheduled_record_at(row: TrialRow, results_seen: int) -> TrialRecord:
    """What a scheduled trial was (``TrialRow.record``) once ``results_seen`` results were recorded."""
    values = [v for v, seq in zip(row.rung_values, row.rung_seqs, strict=True) if seq < results_seen]
    if values and math.isfinite(values[-1]):
        return TrialRecord(index=row.index, params=row.params, state="complete", value=values[-1])
    failures = [*row.retried_from, *([row.result_seq] if row.state in ("failed", "stopped")
                                     and row.result_seq is not None else [])]
    failed = sum(seq < results_seen for seq in failures) > sum(seq < results_seen for seq in row.rerun_seqs)
    return TrialRecord(index=row.index, params=row.params, state="failed" if failed else "pending")


#: The rung of a ladder report that says a failed trial runs again (``retry_failed``, or a resume
#: after an infrastructure error): from then on it is pending, not failed.
RERUN = -2


def ladder_history_at(rows: list[TrialRow], table: RungTable, reports: list[tuple[int, int]],
                      index: int, results_seen: int) -> list[TrialRecord]:
    """What a ladder's searcher was told before trial ``index``: each earlier trial's value at the
    highest rung it had reported (complete), failed if it had failed first, else pending."""
    value: dict[int, float] = {}
    failed: set[int] = set()
    for trial, rung in reports[:results_seen]:
        if rung == RERUN:
            failed.discard(trial)
        elif rung < 0:
            failed.add(trial)
        else:
            name = trial_name(trial)
            bracket = table.brackets[table.trial_bracket[name]]
            value[trial] = bracket.rungs[rung].results[name]
    history = []
    for row in rows:
        if row.index >= index:
            continue
        if row.index in value:
            history.append(TrialRecord(index=row.index, params=row.params, state="complete",
                                       value=value[row.index]))
        else:
            history.append(TrialRecord(index=row.index, params=row.params,
                                       state="failed" if row.index in failed else "pending"))
    return history


def recompute_ladder_suggestions(inp: LadderInput, result: LadderResult | LadderState) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """``(index, recorded params, recomputed params)`` for every trial of a ladder: from its result
    (finished) or its state (the ``ladder`` query of a running one)."""
    rows = result.rows if isinstance(result, LadderState) else [t.row for t in result.trials]
    out = []
    for row in sorted(rows, key=lambda r: r.index):
        if row.audit is None:
            continue
        history = ladder_history_at(rows, result.table, result.reports, row.index, row.audit.results_seen)
        again = inp.searcher.suggest(inp.space, history, seed=inp.seed, index=row.index, direction=inp.direction)
        out.append((row.index, dict(row.params), dict(again)))
    return out


def recompute_suggestions(inp: SweepInput, rows: list[TrialRow]) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    """``(index, recorded params, recomputed params)`` for every searcher trial of a finished sweep."""
    out = []
    for row in sorted(rows, key=lambda r: r.index):
        if row.audit is None:
            continue
        history = history_at(rows, row.index, row.audit.results_seen)
        again = inp.searcher.suggest(inp.space, history, seed=inp.seed, index=row.index,
                                     direction=inp.direction)
        out.append((row.index, dict(row.params), dict(again)))
    return out


#: Finished rows a sweep writes to its results table per part (and at most keeps before writing).
PART_ROWS = 100
#: Done rows a sweep keeps of the trials it wrote to its table (the best), for its leaderboard/result.
TOP_ROWS = 20
#: Leaderboard entries a sweep answers and returns (the best).
LEADERBOARD_ROWS = 100
#: Rows a query or an update answer carries at most (``offset``/``limit`` page through more).
PAGE_ROWS = 200
#: Failed rows a sweep keeps (the latest) so ``retry_failed`` can re-run them; older ones are written.
MAX_HELD_FAILED = 100


class TableSummary(BaseModel):
    """The finished trials a sweep wrote to its results table, in compact form.

    Attributes:
        uri: the table's directory (``part-00000.json``, ...), ``None`` until the first part.
        parts: the sha256 of each part, in order (a reader verifies every part against it).
        rows / n_done / n_failed / n_stopped: the rows written, and how many of each state.
        top: the best done rows written (at most :data:`TOP_ROWS`), best first.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    uri: str | None = None
    parts: list[str] = Field(default_factory=list)
    rows: int = 0
    n_done: int = 0
    n_failed: int = 0
    n_stopped: int = 0
    top: list[TrialRow] = Field(default_factory=list)


class SweepState(BaseModel):
    """What a sweep carries through continue-as-new (and all its decisions depend on).

    Bounded: ``rows`` holds the running trials and the finished ones not yet written to the results
    table (at most :data:`PART_ROWS`); ``table`` summarises the rows written.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    rows: list[TrialRow] = Field(default_factory=list)
    n_started: int = 0
    table: TableSummary = Field(default_factory=TableSummary)
    n_trials: int = 0
    max_concurrency: int = 1
    queue: list[dict[str, JsonValue]] = Field(default_factory=list)
    results_seen: int = 0
    paused: bool = False
    pause_reason: str | None = None
    stopping: bool = False
    exhausted: bool = False
    runs: int = 1
    #: a recorded suggestion not started yet (the sweep paused or stopped while it was computed):
    #: the next trial to start, before any enqueued config
    held: TrialRow | None = None
    #: recorded suggestions for the trials after ``held`` (asked for together: a random searcher's
    #: next points, or one per free slot), started in order; an enqueued config drops them
    held_more: list[TrialRow] = Field(default_factory=list)
    #: failed trials to run again from their last checkpoints (``retry_failed``, an infrastructure
    #: failure), before anything new
    retry: list[int] = Field(default_factory=list)
    #: why the sweep stopped itself (``max_failed_trials``)
    stop_reason: str | None = None
    #: a sweep with a scheduler: what it carries of the rungs (a compact summary)
    scheduled: ScheduledSummary | None = None


#: The scheduler's latest audit lines a sweep keeps in its state and result (every line is also in
#: the row of the trial it concerns: ``TrialRow.decisions``).
RECENT_DECISIONS = 50


class RungCount(BaseModel):
    """One rung of one bracket, counted: its budget, the trials that reported there, those promoted
    from it and those training toward it."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")

    bracket: int
    rung: int
    budget: int
    results: int = 0
    promoted: int = 0
    running: int = 0


class ScheduledSummary(BaseModel):
    """What a sweep with a scheduler carries besides its rows: bounded whatever the trial count.

    Attributes:
        rungs: each rung's counts, as of the latest plan.
        decisions: the latest :data:`RECENT_DECISIONS` audit lines (each row keeps its own).
        deleted / freed_bytes: deletions of trials' checkpoints (a trial deleted over a byte budget,
            then promoted, may be deleted again) and the bytes they freed.
        checkpoint_bytes / peak_checkpoint_bytes: the measured checkpoints' bytes now / at most
            (with a byte budget; 0 without: nothing is measured).
        budget_exceeded: the budget could not be kept (only the best and running trials were left).
        done: the latest plan found nothing to start or promote, and nothing running.
    """

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    rungs: list[RungCount] = Field(default_factory=list)
    decisions: list[str] = Field(default_factory=list)
    deleted: int = 0
    freed_bytes: int = 0
    checkpoint_bytes: int = 0
    peak_checkpoint_bytes: int = 0
    budget_exceeded: bool = False

    def note(self, line: str) -> None:
        """Keep ``line`` among the latest decisions."""
        self.decisions = [*self.decisions, line][-RECENT_DECISIONS:]


SweepState.model_rebuild()


#: Trials a sweep runs at once at most (its state, and each payload it sends, carries every running
#: trial's row: at these caps every payload stays under 512 KB; ``tests/unit/test_sweep_payloads.py``).
MAX_CONCURRENCY = 500
#: The same with a scheduler (a row carries its rungs and audit lines).
MAX_SCHEDULED_CONCURRENCY = 100


def concurrency_cap(scheduled: bool) -> int:
    """The most trials a sweep may run at once (:data:`MAX_CONCURRENCY`, or with a scheduler
    :data:`MAX_SCHEDULED_CONCURRENCY`)."""
    return MAX_SCHEDULED_CONCURRENCY if scheduled else MAX_CONCURRENCY


class _SweepCommon(BoundaryModel):
    base: TrainConfig
    space: SearchSpace
    searcher: AnySearcher = Field(default_factory=RandomSearcher)
    max_concurrency: int = Field(default=2, ge=1, le=1000)
    objective: str = "accuracy"
    direction: Direction = "maximize"
    seed: int = 0
    dataset: DatasetSource | None = None
    snapshot: SnapshotRef | None = None
    run_id: str | None = Field(default=None, pattern=NAME_PATTERN.pattern, max_length=150)
    eval_split: str = "dev"
    train_task_queue: str | None = None
    eval_task_queue: str | None = None
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    progress_every_seconds: float = Field(default=10.0, gt=0)
    max_inline_rows: int = Field(default=500, ge=1)
    table_root: str | None = None
    max_failed_trials: int | None = Field(default=None, ge=1)
    infrastructure_errors: list[str] = Field(default_factory=lambda: list(INFRASTRUCTURE_ERRORS))
    no_worker_timeout_seconds: float | None = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _check_common(self) -> _SweepCommon:
        if (self.dataset is None) == (self.snapshot is None):
            raise ValueError("set exactly one of dataset or snapshot")
        self.space.check_keys(self.base)
        self.searcher.check_space(self.space)
        return self


class SweepInput(_SweepCommon):
    """Input of a :class:`~temporal_ml.workflows.sweep.SweepWorkflow`.

    Attributes:
        base: the config every trial starts from; the space's points are applied to it.
        space: the search space (keys ``hparams.<name>`` or top-level ``TrainConfig`` fields).
        searcher: random, grid or TPE (``kind`` in JSON).
        n_trials: trials to run (an update can add more; a grid may run out first).
        max_concurrency: trials in flight at once (enforced by the workflow; an update can change it).
        objective / direction: the evaluation metric to optimize, ``maximize`` or ``minimize``.
        seed: seeds the searcher (each trial's own seed is the base config's unless searched).
        dataset / snapshot: the data (exactly one; a dataset is snapshotted once for all trials).
        run_id: the canonical id child ids derive from (default: the workflow id).
        eval_split: the split every trial is evaluated on.
        train_task_queue / eval_task_queue: activity queues of training and evaluation workers.
        heartbeat_timeout_seconds, max_attempts, progress_every_seconds: passed to each training
            (a trial's training fails after ``max_attempts`` attempts: never retried forever).
        max_inline_rows: per-trial rows returned inline in the result (the best ones beyond it).
        table_root: fsspec URL under which a sweep with more trials than ``max_inline_rows`` writes
            its full table (``<table_root>/<run_id>/part-*.json``, read back with
            ``temporal_ml.activities.sweep.read_sweep_table``); ``None``: the extra rows are left out.
        evaluate_in_training: evaluate each trial inside its training activity (``eval_split`` of
            the config: the ``eval_*`` metrics of the training result) instead of an evaluation child
            workflow: one child workflow and one activity per trial instead of two of each.
        report_progress: send each training's progress reports (every ``progress_every_seconds``
            and at checkpoints) to the sweep too, for live step and loss in ``sweep_status``; each
            costs the sweep's history a few events. ``False``: rows show progress when a trial ends.
        max_failed_trials: the sweep stops itself (``stop_reason`` says why) once this many trials
            have failed for reasons of their own (``None``: never).
        infrastructure_errors: error types (the ``ApplicationError`` type: the exception's class
            name) that mean the infrastructure failed, not the trial: the store is full, read-only or
            refuses permission (``StorageError``), does not answer once the trial's retries are spent
            (``StoreUnreachableError``), or no worker took a trial's training or evaluation
            from its task queue within ``no_worker_timeout_seconds`` (``NoWorkerError``). Such a trial
            is kept for a re-run from its last checkpoint and the sweep pauses with the reason;
            ``resume`` re-runs it. Add the names of your own exception types.
        no_worker_timeout_seconds: how long a trial's activity may wait for a worker before the
            sweep pauses (``None``: wait forever).
        scheduler: train in rungs (ASHA, optionally with Hyperband brackets; ``None``: every
            trial trains to ``base.max_steps``). Each trial is one training run continued from rung
            to rung (``max_steps`` the rung's budget, ``schedule_steps`` the largest), so a promoted
            trial follows the very trajectory of one trained straight; ``n_trials`` counts new
            trials (promotions are extra work). Decisions come from the ``PLAN`` activity and are
            recorded in the history, like suggestions.
        delete_unpromotable: with a scheduler, delete the checkpoints of trials that can no longer
            be promoted (never the best trial's, nor a running one's).
        checkpoint_budget_bytes: with a scheduler, the most bytes the sweep's checkpoints may hold
            (measured after each rung); beyond it idle trials' checkpoints are deleted, lower rungs
            and worse ranks first, never the best's. A deleted trial promoted later trains again
            from scratch to its rung (the same weights). ``None``: nothing is measured.
        carried: state handed over by continue-as-new (set by the workflow itself).
    """

    n_trials: int = Field(ge=1, le=100_000)
    evaluate_in_training: bool = False
    report_progress: bool = True
    scheduler: AshaScheduler | None = None
    delete_unpromotable: bool = True
    checkpoint_budget_bytes: int | None = Field(default=None, ge=0)
    carried: SweepState | None = None

    @model_validator(mode="after")
    def _check_scheduler(self) -> SweepInput:
        cap = concurrency_cap(self.scheduler is not None)
        if self.carried is None and self.max_concurrency > cap:  # (a run carried on keeps its own)
            raise ValueError(f"max_concurrency {self.max_concurrency}: a sweep "
                             f"{'with a scheduler ' if self.scheduler is not None else ''}runs at most "
                             f"{cap} trials at once (its state carries every running trial's row)")
        if self.scheduler is not None:
            for name in ("max_steps", "schedule_steps"):
                if name in self.space.params:
                    raise ValueError(f"parameter {name!r}: a scheduler sets it from its rung budgets")
        elif self.checkpoint_budget_bytes is not None:
            raise ValueError("checkpoint_budget_bytes needs a scheduler (every other trial keeps its run)")
        return self


class SweepStatus(BaseModel):
    """Answer of the ``sweep_status`` query: the sweep's phase and settings, and a page of the trials
    it holds (running ones, and finished ones not yet written to its table).

    ``started`` trials in all; ``written`` of them are in the table at ``table_uri``.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")

    phase: Literal["running", "paused", "stopping", "draining", "done"]
    n_trials: int
    max_concurrency: int
    running: int
    queued: int
    exhausted: bool
    runs: int
    trials: list[TrialRow]
    pause_reason: str | None = None
    started: int = 0
    written: int = 0
    table_uri: str | None = None
    retrying: int = 0
    stop_reason: str | None = None
    #: finished trials of each outcome, over every trial (the table's and those held)
    n_done: int = 0
    n_failed: int = 0
    n_stopped: int = 0
    #: the best done trial so far (a ladder: at the highest rung reached), with the objective
    best: TrialRow | None = None
    objective: str | None = None
    direction: Direction = "maximize"
    #: with a scheduler: the rungs' counts, the latest decisions, deletions and checkpoint bytes
    scheduled: ScheduledSummary | None = None

    @property
    def finished(self) -> int:
        """Trials with a result (done, failed or stopped)."""
        return self.n_done + self.n_failed + self.n_stopped

    def eta_seconds(self, elapsed_s: float) -> float | None:
        """Time left at the pace so far (``None`` before the first result, or once nothing is left
        to start). A ladder's promotions are extra work, so its estimate is a lower bound."""
        left = self.n_trials - self.finished
        if self.finished == 0 or left <= 0 or self.phase in ("done", "stopping") or self.exhausted:
            return None
        return elapsed_s / self.finished * left

    def summary(self, elapsed_s: float | None = None) -> str:
        """One line: phase, counts, best so far, elapsed time and an estimate of the time left.

        ``running · 5/12 done, 2 running, 1 failed, 3 queued · best t0003 accuracy 0.912 at 90
        steps · 2m10s elapsed, about 3m left``
        """
        phase: str = self.phase
        if self.pause_reason and phase == "paused":
            phase = f"paused: {self.pause_reason}"
        if self.stop_reason:
            phase = f"{phase}: {self.stop_reason}"
        counts = [f"{self.n_done}/{self.n_trials} done", f"{self.running} running"]
        counts += [f"{n} {what}" for n, what in ((self.n_failed, "failed"), (self.n_stopped, "stopped"),
                                                (self.queued, "queued"), (self.retrying, "to retry")) if n]
        parts = [phase, ", ".join(counts)]
        if self.scheduled is not None and self.scheduled.rungs:
            reached: dict[int, int] = {}
            for r in self.scheduled.rungs:
                reached[r.budget] = reached.get(r.budget, 0) + r.results
            parts.append("rungs " + " ".join(f"{n}@{b}" for b, n in sorted(reached.items())))
        if self.best is not None and self.best.value is not None:
            parts.append(f"best {self.best.name} {self.objective or 'value'} {self.best.value:.4g} "
                         f"at {self.best.step} steps")
        if elapsed_s is not None:
            eta = self.eta_seconds(elapsed_s)
            parts.append(f"{duration_text(elapsed_s)} elapsed"
                         + (f", about {duration_text(eta)} left" if eta is not None else ""))
        return " · ".join(parts)


def duration_text(seconds: float) -> str:
    """``45s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class TrialResult(BaseModel):
    """A trial as a result row: its row plus its lineage and workflow ids."""

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    name: str
    row: TrialRow
    train_workflow_id: str
    eval_workflow_id: str
    lineage: Lineage | None = None


class SweepResult(BaseModel):
    """The outcome of a sweep (bounded in size: at most ``max_inline_rows`` rows inline).

    Attributes:
        run_id / snapshot: the sweep and the data every trial used.
        objective / direction: what was optimized.
        best: the best done trial.
        leaderboard: done trials ranked by the objective (names are trial names).
        trials: per-trial rows, by index (the best ``max_inline_rows`` when there are more).
        n_trials / n_done / n_failed / n_stopped: counts over all trials.
        rows_omitted: rows left out of ``trials`` to bound the payload.
        table_uri: where the full table was written (when rows were omitted and ``table_root`` set).
        stopped / exhausted: the sweep was stopped by a user / the searcher ran out of points.
        runs: workflow runs the sweep took (continue-as-new).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    run_id: str
    snapshot: SnapshotRef
    objective: str
    direction: Direction
    best: TrialResult | None
    leaderboard: list[LeaderboardEntry]
    trials: list[TrialResult]
    n_trials: int
    n_done: int
    n_failed: int
    n_stopped: int
    rows_omitted: int = 0
    table_uri: str | None = None
    stopped: bool = False
    exhausted: bool = False
    runs: int = 1
    stop_reason: str | None = None
    #: with a scheduler: the rungs' counts, the latest decisions, deletions and checkpoint bytes
    scheduled: ScheduledSummary | None = None
    #: with a scheduler: the budget (steps) of the best trial's value
    best_budget: int | None = None


class LadderState(BaseModel):
    """What a ladder sweep carries through continue-as-new."""

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    table: RungTable
    rows: list[TrialRow] = Field(default_factory=list)
    rung_of: dict[str, int] = Field(default_factory=dict)
    decisions: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    reports: list[tuple[int, int]] = Field(default_factory=list)
    freed_bytes: int = 0
    checkpoint_bytes: dict[str, int] = Field(default_factory=dict)
    peak_checkpoint_bytes: int = 0
    budget_exceeded: bool = False
    started: int = 0
    added: int = 0
    exhausted: bool = False
    results_seen: int = 0
    stopping: bool = False
    #: a recorded suggestion not started yet (see ``SweepState.held``)
    held: TrialRow | None = None
    queue: list[dict[str, JsonValue]] = Field(default_factory=list)  # enqueued user configs
    paused: bool = False
    pause_reason: str | None = None
    max_concurrency: int = 0  # 0: the input's (a ladder carried from a release without this field)
    runs: int = 1
    #: failed trials to run again at the rung they failed toward, from their last checkpoint (an
    #: infrastructure error paused the ladder, or ``retry_failed``), before any other decision
    retry: list[int] = Field(default_factory=list)
    #: why the ladder stopped itself (``max_failed_trials``)
    stop_reason: str | None = None


class LadderInput(_SweepCommon):
    """Input of a :class:`~temporal_ml.workflows.ladder.LadderSweepWorkflow` (ASHA).

    Trials train to the scheduler's rung budgets (steps); ``base.max_steps`` is replaced by each
    rung's budget and ``base.schedule_steps`` by ``scheduler.max_budget``, so the LR schedule spans
    the maximum budget and a promotion continues the same run from its rung checkpoint.

    Attributes:
        scheduler: the ASHA rungs (``min_budget``, ``max_budget``, ``eta``, ``brackets``).
        n_trials: new trials to start at most (promotions are extra work, not trials).
        delete_unpromotable: delete the checkpoints of trials that can no longer be promoted.
        checkpoint_budget_bytes: the most bytes the sweep's checkpoints may hold (measured after each
            rung); beyond it the checkpoints of idle trials are deleted, lower rungs and worse
            ranks first (the best trial's never: a finished trial at the top rung loses its final
            weights only if nothing else is left). A deleted trial that is promoted later retrains from
            scratch to its rung, reaching the same weights. ``None``: no budget (nothing measured).
    """

    scheduler: AshaScheduler
    n_trials: int = Field(ge=1, le=10_000)
    delete_unpromotable: bool = True
    checkpoint_budget_bytes: int | None = Field(default=None, ge=0)
    carried: LadderState | None = None

    @model_validator(mode="after")
    def _check_budgets(self) -> LadderInput:
        for name in ("max_steps", "schedule_steps"):
            if name in self.space.params:
                raise ValueError(f"parameter {name!r}: a ladder sets it from the scheduler's rung budgets")
        return self


class LadderResult(BaseModel):
    """The outcome of a ladder sweep.

    Attributes:
        best: the best trial at the highest rung reached (its row and lineage).
        best_budget: the rung budget of that result.
        table: the final rung table (every rung's results and promotions).
        decisions: the scheduler's audit lines, in order.
        trials: per-trial rows (value: the objective at the highest rung each reached).
        deleted: trials whose checkpoints were deleted (they could no longer be promoted).
        reports: ``(trial index, rung)`` of every rung result in the order recorded (rung ``-1``: the
            trial failed, ``-2``: a failed trial runs again); with each suggestion's ``results_seen`` it rebuilds what the searcher saw
            (:func:`ladder_history_at`, :func:`recompute_ladder_suggestions`).
        freed_bytes: the bytes those deletions freed.
        checkpoint_bytes / peak_checkpoint_bytes: the checkpoints' bytes at the end / at most, after
            enforcing ``checkpoint_budget_bytes`` (0 without a budget: nothing is measured).
        budget_exceeded: the budget could not be kept (only the best and running trials were left).
        stop_reason: why the ladder stopped itself (``max_failed_trials``), if it did.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")

    run_id: str
    snapshot: SnapshotRef
    objective: str
    direction: Direction
    best: TrialResult | None
    best_budget: int | None
    leaderboard: list[LeaderboardEntry]
    table: RungTable
    decisions: list[str]
    trials: list[TrialResult]
    deleted: list[str]
    reports: list[tuple[int, int]] = Field(default_factory=list)
    freed_bytes: int = 0
    checkpoint_bytes: int = 0
    peak_checkpoint_bytes: int = 0
    budget_exceeded: bool = False
    stop_reason: str | None = None
