"""What a running sweep carries: its results table's summary, its state, the scheduler's summary, the caps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from temporal_ml.search import RungTable
from temporal_ml.sweeps._rows import TrialRow

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
        top: the best done rows written (at most :data:`TOP_ROWS`), best first. A multi-objective
            sweep: the Pareto front of the rows written and held (at most ``FRONT_ROWS``), by index.
        front_dropped: a multi-objective sweep: front rows left out of ``top`` to keep it bounded,
            counted when they were left out (a later trial may have dominated some since; the
            results table has every row, and ``results()`` ranks them exactly).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    uri: str | None = None
    parts: list[str] = Field(default_factory=list)
    rows: int = 0
    n_done: int = 0
    n_failed: int = 0
    n_stopped: int = 0
    top: list[TrialRow] = Field(default_factory=list)
    front_dropped: int = Field(default=0, exclude_if=lambda v: v == 0)


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
