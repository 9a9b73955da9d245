"""A sweep's trials: their rows, names and the searcher's audit record of each suggestion."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from temporal_ml.search import (
    RungTable,
    TrialRecord,
)
from temporal_ml.types import CheckpointRef

if TYPE_CHECKING:
    from temporal_ml.sweeps._inputs import LadderInput, SweepInput
    from temporal_ml.sweeps._results import LadderResult
    from temporal_ml.sweeps._state import LadderState

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
        values: a multi-objective sweep's objectives when done, one per ``SweepInput.objectives``
            (then ``value`` is ``None``).
        metrics: every evaluation metric.
        step / max_steps / loss: training progress (live, from the training's reports).
        error: why it failed.
        result_seq: the order in which its result (done/failed/stopped) was recorded.
        checkpoint_uri / model_sha256: its final checkpoint.
        resumes: how many times its training recovered from a lost worker or a failed attempt (a
            pause, a continue-as-new and the next rung go on as planned: not counted).
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

    With population-based training (the rounds are its rungs):
        branch: the round from which it trains in a run of its own (``<run>--tNNNN--b<branch>``),
            begun from a copy of a better member's checkpoint when it exploited that member
            (``None``: its first run, ``<run>--tNNNN``).
        suggested: the searcher's point, kept when an exploit changed ``params`` (the audit
            recomputes the suggestion; ``None``: ``params`` is it).
    """

    model_config = ConfigDict(ser_json_inf_nan="strings", extra="forbid")

    index: int = Field(ge=0)
    params: dict[str, JsonValue]
    source: Literal["searcher", "user"] = "searcher"
    state: TrialState = "training"
    value: float | None = Field(default=None, exclude_if=_none)
    values: list[float] | None = Field(default=None, exclude_if=_none)
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
    branch: int | None = Field(default=None, exclude_if=_none)
    suggested: dict[str, JsonValue] | None = Field(default=None, exclude_if=_none)

    @property
    def name(self) -> str:
        return trial_name(self.index)

    @property
    def has_checkpoint(self) -> bool:
        """Whether it has a final checkpoint (its address and its model's digest)."""
        return self.checkpoint_uri is not None and self.model_sha256 is not None

    def checkpoint_ref(self, run_id: str) -> CheckpointRef | None:
        """Its final checkpoint, in its run ``run_id`` (``None``: it has none).

        Example:
            >>> TrialRow(index=0, params={}, state="done").checkpoint_ref("run") is None
            True
        """
        if self.checkpoint_uri is None or self.model_sha256 is None:
            return None
        return CheckpointRef(run_id=run_id, step=self.step, uri=self.checkpoint_uri, model_sha256=self.model_sha256)

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
                               running=self.state in ("training", "evaluating"), bracket=self.bracket)
        if self.state == "done" and self.values is not None and all(math.isfinite(v) for v in self.values):
            return TrialRecord(index=self.index, params=self.params, state="complete", values=tuple(self.values))
        if self.state == "done" and self.value is not None and math.isfinite(self.value):
            return TrialRecord(index=self.index, params=self.params, state="complete", value=self.value)
        if self.state in ("training", "evaluating"):
            return TrialRecord(index=self.index, params=self.params, state="pending")
        return TrialRecord(index=self.index, params=self.params, state="failed")


def rung_record(index: int, params: dict[str, Any], rung_values: list[float], running: bool,
                bracket: int = 0) -> TrialRecord:
    """What the searcher is told of a trial trained in rungs: its value at the highest rung it
    reached (complete, also while it trains on), else pending while it runs, else failed; and its
    value at every rung reached, by rung level (``TrialRecord.rung_values``: rung ``k`` of bracket
    ``bracket`` is level ``bracket + k``), which BOHB reads."""
    levels = {bracket + k: v for k, v in enumerate(rung_values)}
    if rung_values and math.isfinite(rung_values[-1]):
        return TrialRecord(index=index, params=params, state="complete", value=rung_values[-1],
                           rung_values=levels)
    return TrialRecord(index=index, params=params, state="pending" if running else "failed",
                       rung_values=levels)


def objective_value(metrics: dict[str, float], objective: str) -> float | None:
    """The objective from evaluation metrics, ``None`` when missing or not finite."""
    value = metrics.get(objective)
    return float(value) if value is not None and math.isfinite(value) else None


def objective_values(metrics: dict[str, float], objectives: list[str]) -> tuple[list[float] | None, str | None]:
    """A multi-objective trial's values from its evaluation metrics, in the order of ``objectives``;
    or ``None`` and why (one line) when one is missing or not finite."""
    values = [objective_value(metrics, name) for name in objectives]
    bad = [name for name, v in zip(objectives, values, strict=True) if v is None]
    if bad:
        return None, (f"the evaluation reported no finite {', '.join(map(repr, bad))} "
                      f"(got {sorted(metrics)}): every objective must be a finite metric")
    return [float(v) for v in values if v is not None], None


def history_at(rows: list[TrialRow], index: int, results_seen: int) -> list[TrialRecord]:
    """The history trial ``index``'s suggestion was computed from, rebuilt from finished rows (a
    trial whose params an exploit changed since is told with its suggested point)."""
    history = []
    for row in rows:
        if row.suggested is not None:
            row = row.model_copy(update={"params": row.suggested})
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
    levels = {row.bracket + k: v for k, v in enumerate(values)}
    if values and math.isfinite(values[-1]):
        return TrialRecord(index=row.index, params=row.params, state="complete", value=values[-1],
                           rung_values=levels)
    failures = [*row.retried_from, *([row.result_seq] if row.state in ("failed", "stopped")
                                     and row.result_seq is not None else [])]
    failed = sum(seq < results_seen for seq in failures) > sum(seq < results_seen for seq in row.rerun_seqs)
    return TrialRecord(index=row.index, params=row.params, state="failed" if failed else "pending",
                       rung_values=levels)


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
                                     direction=inp.search_direction)  # type: ignore[arg-type]
        out.append((row.index, dict(row.suggested if row.suggested is not None else row.params), dict(again)))
    return out
