"""Searcher suggestions computed once and recorded in the sweep's history.

:func:`suggest` runs the searcher in the ``SUGGEST`` activity (registered with
``SweepActivities().activities()`` on the orchestration worker; it runs on the sweep's own task
queue). Temporal records an activity's result in the history, and a replay reuses it instead of
running the activity again: a replayed sweep, a worker with changed searcher code, new defaults or a CPython
whose float sums differ can never change what a running sweep trains or reports. The searchers stay
pure functions of (space, seed, history), so ``temporal-ml sweep audit`` can recompute each
suggestion and compare.

Histories recorded before this existed (no ``RECORDED_SUGGESTIONS_PATCH`` marker) replay with the
suggestion computed inline, as it was then; those recorded before ``SUGGEST_ACTIVITY_PATCH`` with a
local activity. A local activity's marker can land in one workflow task and the code after it in the
next; such a history replays with the result delivered earlier, its commands in another order, and
fails (a restarted worker failed the sweep's workflow tasks forever). A regular activity's result
is an event of its own, delivered where it happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.sweep import SUGGEST, SuggestRequest, SuggestResult, suggest_point
    from temporal_ml.errors import root_message
    from temporal_ml.search import AnySearcher, Direction, SearchSpace, TrialRecord
    from temporal_ml.sweeps import SuggestionAudit, SweepInput, SweepState, TrialRow

__all__ = ["RECORDED_SUGGESTIONS_PATCH", "SUGGEST_ACTIVITY_PATCH", "SUGGEST_BATCH_PATCH", "SUGGEST_AHEAD",
           "Suggestion", "suggest", "SuggestingSweep"]

#: ``workflow.patched`` id: suggestions come from the ``SUGGEST`` local activity (recorded).
RECORDED_SUGGESTIONS_PATCH = "tml-recorded-suggestions-v1"
#: ``workflow.patched`` id: the suggestion is a regular activity (a local one before).
SUGGEST_ACTIVITY_PATCH = "tml-suggest-activity-v1"
#: ``workflow.patched`` id: several trials' points are asked for at once (``SweepState.held_more``).
#: Runs recorded before it asked for one at a time.
SUGGEST_BATCH_PATCH = "tml-suggest-batch-v1"
#: The most trials a sweep asks its searcher for at once.
SUGGEST_AHEAD = 32


@dataclass(frozen=True)
class Suggestion:
    """A point (``params``), or why there is none: the searcher is ``exhausted`` or ``failed``.

    ``recorded``: it came from the history's marker (the activity), not computed inline.
    """

    params: dict[str, Any] | None = None
    exhausted: str | None = None
    failed: str | None = None
    recorded: bool = False
    #: the points of the trials after it, when several were asked for
    more: tuple[dict[str, Any], ...] = ()


async def suggest(searcher: AnySearcher, space: SearchSpace, history: list[TrialRecord], *, seed: int,
                  index: int, direction: Direction | tuple[Direction, ...], table_uri: str | None = None,
                  table_parts: list[str] | None = None, count: int = 1,
                  heartbeat_seconds: float) -> Suggestion:
    """Trial ``index``'s point, recorded in the history (inline for histories from before); with
    ``count`` > 1 also the points of the next ``count - 1`` trials (``more``; the activity only).

    ``history`` holds the trials the sweep keeps; those it wrote to its results table are read from
    ``table_uri`` (each part verified against ``table_parts``) by the activity. The activity
    heartbeats: a worker killed in it is noticed within ``heartbeat_seconds``."""
    request = SuggestRequest(searcher=searcher, space=space, history=history, seed=seed, index=index,
                             direction=direction, table_uri=table_uri, table_parts=list(table_parts or []),
                             count=count)
    if workflow.patched(RECORDED_SUGGESTIONS_PATCH):
        retry = RetryPolicy(maximum_attempts=3, non_retryable_error_types=["ValueError"])
        try:
            result: SuggestResult
            if workflow.patched(SUGGEST_ACTIVITY_PATCH):
                result = await workflow.execute_activity(
                    SUGGEST, request, result_type=SuggestResult, start_to_close_timeout=timedelta(minutes=5),
                    heartbeat_timeout=timedelta(seconds=heartbeat_seconds), retry_policy=retry)
            else:
                result = await workflow.execute_local_activity(
                    SUGGEST, request, result_type=SuggestResult, start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=retry)
            return Suggestion(params=result.params, exhausted=result.exhausted, recorded=True,
                              more=tuple(result.more))
        except ValueError:  # not registered on this worker (the SDK checks before scheduling it)
            workflow.logger.warning("%s is not registered on this worker (register "
                                    "SweepActivities().activities() on the orchestration worker); "
                                    "computing the suggestion inline, unrecorded", SUGGEST)
        except ActivityError as err:
            return Suggestion(failed=f"the {searcher.kind} searcher failed: {root_message(err)}")
    try:
        result = suggest_point(request.model_copy(update={"count": 1}))
    except Exception as exc:  # a searcher bug: the sweep pauses with the reason, never fails
        return Suggestion(failed=f"the {searcher.kind} searcher failed: {type(exc).__name__}: {exc}")
    return Suggestion(params=result.params, exhausted=result.exhausted)


class SuggestingSweep:
    """The sweep's side of its searcher: ask for the next trials' points (recorded) and hold them."""

    _inp: SweepInput | None
    _s: SweepState
    _run_id: str
    _running: int
    _suggesting: bool

    async def _suggest(self) -> bool:
        """Ask the searcher for the next trial's point and hold it (``SweepState.held``); returns
        whether it was recorded (an activity ran: the sweep's state may have changed meanwhile).
        An exhausted searcher marks the sweep exhausted; a failing one pauses it with the reason."""
        inp, s = self._inp, self._s
        assert inp is not None
        index = s.n_started
        history = [r.record() for r in s.rows]  # and, read by the activity, the rows of the table
        t = s.table
        audit = SuggestionAudit.of(inp.searcher.kind, s.results_seen, history)
        if t.rows:
            audit = audit.model_copy(update={"complete": audit.complete + t.n_done,
                                             "failed": audit.failed + t.n_failed + t.n_stopped})
        self._suggesting = True  # a trial index is taken: an enqueued config runs after it
        try:
            got = await suggest(inp.searcher, inp.space, history, seed=inp.seed, index=index,
                                direction=inp.search_direction, table_uri=t.uri, table_parts=t.parts,
                                count=self._suggestions_wanted(), heartbeat_seconds=inp.heartbeat_timeout_seconds)
        finally:
            self._suggesting = False
        if got.params is not None:
            s.held = TrialRow(index=index, params=got.params, source="searcher", audit=audit)
            s.held_more = [TrialRow(index=index + k, params=params, source="searcher",
                                    audit=audit.model_copy(update={"pending": audit.pending + k}))
                           for k, params in enumerate(got.more, start=1)
                           if not s.queue]  # a config enqueued meanwhile goes right after ``held``
        elif got.exhausted is not None:
            workflow.logger.info("sweep %s: %s", self._run_id, got.exhausted)
            s.exhausted = True
        else:
            workflow.logger.error("sweep %s paused: %s", self._run_id, got.failed)
            s.paused, s.pause_reason = True, got.failed
        return got.recorded

    def _suggestions_wanted(self) -> int:
        """How many trials' points to ask for at once (``SUGGEST_BATCH_PATCH``): a searcher that
        ignores the history (random) as many as run at once (at most :data:`SUGGEST_AHEAD`), so a
        suggestion's round trip is paid once for many fast trials; another one a point per free slot
        (each seeing the ones before as pending, as asking one at a time would without new results)."""
        inp, s = self._inp, self._s
        assert inp is not None
        if not workflow.patched(SUGGEST_BATCH_PATCH):
            return 1
        left = s.n_trials - s.n_started
        if not inp.searcher.uses_history:
            return max(1, min(left, s.max_concurrency, SUGGEST_AHEAD))
        return max(1, min(left, s.max_concurrency - self._running, SUGGEST_AHEAD))
