"""What a sweep answers: its live status, its trials as results, its result (and the ladder's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from temporal_ml.search import (
    Direction,
    RungTable,
)
from temporal_ml.sweeps._rows import TrialRow
from temporal_ml.sweeps._state import ScheduledSummary
from temporal_ml.types import (
    LeaderboardEntry,
    Lineage,
    SnapshotRef,
)


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
    #: a multi-objective sweep: its objectives and directions, and how many trials its front has
    #: (``best`` is then ``None``): exact up to ``FRONT_ROWS``; beyond, the kept front plus those
    #: left out when they were left out (``TableSummary.front_dropped``)
    objectives: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)
    directions: list[Direction] | None = Field(default=None, exclude_if=lambda v: v is None)
    front: int = Field(default=0, exclude_if=lambda v: v == 0)

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
        if self.objectives is not None:
            goals = ", ".join(f"{d[:3]} {o}" for o, d in zip(self.objectives, self.directions or [], strict=False))
            parts.append(f"Pareto front {self.front} trial{'' if self.front == 1 else 's'} ({goals})")
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
        objective / direction: what was optimized (a multi-objective sweep: its first objective).
        best: the best done trial (``None`` in a multi-objective sweep: see ``front``).
        leaderboard: done trials ranked by the objective (names are trial names); a multi-objective
            sweep's by front, then crowding distance (``metric``/``value``: its first objective).
        objectives / directions: a multi-objective sweep's (``None`` otherwise).
        front: a multi-objective sweep's Pareto front: its non-dominated done trials, by index, at
            most ``FRONT_ROWS`` (50; a larger front is thinned by crowding distance, its ends kept,
            and ``front_dropped`` counts what was left out: ``results()`` ranks the whole table).
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
    objectives: list[str] | None = Field(default=None, exclude_if=lambda v: v is None)
    directions: list[Direction] | None = Field(default=None, exclude_if=lambda v: v is None)
    front: list[TrialResult] = Field(default_factory=list, exclude_if=lambda v: not v)
    front_dropped: int = Field(default=0, exclude_if=lambda v: v == 0)




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
