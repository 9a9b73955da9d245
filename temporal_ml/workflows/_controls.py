"""The live controls every sweep takes, with or without a scheduler: one vocabulary.

``pause`` / ``resume`` (no trial starts or is promoted while paused; running ones go on), ``stop``
(running trials finish, nothing new starts, the sweep returns), ``add_trials``, ``stop_trial`` (its
training ends at a checkpoint of its current step), ``enqueue`` (a user config, checked against the
space) and ``set_max_concurrency``; the ``sweep_status`` and ``trials`` queries. Validators refuse
a bad request in one bounded line (:mod:`temporal_ml.workflows._requests`) before it touches state.

:class:`SweepControls` is a mixin of the sweep bases; a base provides the hooks (its state, how to
grow it, the training id of a running trial). Updates accepted before the run has its state (in the
first workflow task) are kept in :class:`EarlyControls` and applied by ``run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Protocol

from pydantic_core import to_json
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.sweep import STOP_RUN, StopRunRequest
    from temporal_ml.search import SearchSpace
    from temporal_ml.sweeps import (
        PAGE_ROWS,
        SweepStatus,
        TrialRow,
        concurrency_cap,
        trial_name,
    )
    from temporal_ml.types import TrainConfig
    from temporal_ml.workflows._requests import (
        MISSING,
        check_arity,
        check_size,
        refuse,
        shown,
        whole_number,
    )

__all__ = ["SweepControls", "ControlState", "EarlyControls", "MAX_QUEUED", "MAX_QUEUED_BYTES"]

#: Enqueued configs a sweep holds at most (the queue travels through continue-as-new).
MAX_QUEUED = 100
#: Bytes (as JSON) the enqueued configs hold at most together.
MAX_QUEUED_BYTES = 64 * 1024


class ControlState(Protocol):
    """What the controls read and change of a sweep's state (``SweepState``, ``LadderState``)."""

    rows: list[TrialRow]
    queue: list[Any]
    paused: bool
    pause_reason: str | None
    stopping: bool
    exhausted: bool
    max_concurrency: int
    runs: int


@dataclass
class EarlyControls:
    """Controls accepted before ``run`` built the state (applied to it by :meth:`SweepControls._apply_early`)."""

    paused: bool | None = None
    pause_reason: str | None = None  # never set early; there for :meth:`SweepControls._set_control`
    max_concurrency: int | None = None
    stopping: bool = False


class SweepControls:
    """The control updates and status queries of a sweep; see the module docstring."""

    #: the word the refusals use: "sweep" or "ladder"
    kind_name: ClassVar[str] = "sweep"

    _running: int
    _done: bool
    _train_handles: dict[int, Any]

    # -- hooks (a sweep base implements these) --------------------------------------------------------

    def _control_state(self) -> ControlState | None:
        """The state, or ``None`` before ``run`` built it."""
        raise NotImplementedError

    def _space_and_base(self) -> tuple[SearchSpace, TrainConfig] | None:
        """The search space and base config (``None`` before ``run``)."""
        raise NotImplementedError

    def _grow(self, n: int) -> int:
        """Allow ``n`` more trials; returns the new trial count (or cap)."""
        raise NotImplementedError

    def _running_train_id(self, index: int) -> str:
        """The workflow id of trial ``index``'s running training child."""
        raise NotImplementedError

    def _phase(self) -> str:
        """``running``, ``paused``, ``stopping``, ``draining`` or ``done``."""
        raise NotImplementedError

    def _n_trials(self) -> int:
        """The trials this sweep runs (or may start) in all."""
        raise NotImplementedError

    def _changed(self) -> None:
        """Wake a run loop that waits for a change (the ladder's)."""

    def _n_started(self) -> int:
        """Trials started so far (their indices are 0 .. this - 1)."""
        s = self._control_state()
        return len(s.rows) if s is not None else 0

    def _row(self, index: int) -> TrialRow | None:
        """Trial ``index``'s row if the state holds it (a sweep writes finished rows to its table)."""
        s = self._control_state()
        return s.rows[index] if s is not None and 0 <= index < len(s.rows) else None

    def _table_uri(self) -> str | None:
        """Where the rows not held are (the results table), if any."""
        return None

    def _retryable(self, index: int | None) -> list[int]:
        """The failed trials ``retry_failed(index)`` would run again (``None``: every one held)."""
        return []

    def _retry(self, indices: list[int]) -> int:
        """Queue ``indices`` to run again; returns how many wait to run again."""
        raise NotImplementedError

    def _retrying(self) -> int:
        """Failed trials waiting to run again."""
        return 0

    def _stop_reason(self) -> str | None:
        """Why the sweep stopped itself, if it did."""
        return None

    def _written(self) -> int:
        """Rows written to the results table."""
        return 0

    def _ranked(self) -> list[TrialRow]:
        """Done trials, best first."""
        return []

    def _front_size(self) -> int:
        """A multi-objective sweep's trials on its Pareto front (as far as it keeps it)."""
        return 0

    def _outcomes(self) -> tuple[int, int, int]:
        """Trials done, failed and stopped so far (a sweep adds those in its results table)."""
        s = self._control_state()
        rows = s.rows if s is not None else []
        return (sum(r.state == "done" for r in rows), sum(r.state == "failed" for r in rows),
                sum(r.state == "stopped" for r in rows))

    # -- shared --------------------------------------------------------------------------------------

    def _early_controls(self) -> EarlyControls:
        early = self.__dict__.get("_early")
        if early is None:
            early = self.__dict__["_early"] = EarlyControls()
        return early

    def _apply_early(self, state: ControlState) -> None:
        """Apply the controls accepted before ``run`` built ``state``."""
        early = self._early_controls()
        state.stopping = state.stopping or early.stopping
        if early.paused is not None:
            state.paused = early.paused
        if early.max_concurrency is not None:
            state.max_concurrency = early.max_concurrency

    def _set_control(self, **changes: Any) -> None:
        """Change the state (or, before ``run`` built it, the early controls) and wake the run."""
        target: Any = self._control_state() or self._early_controls()
        for name, value in changes.items():
            setattr(target, name, value)
        self._changed()

    def _population(self) -> int | None:
        """The fixed population of population-based training (``None``: trials may be added)."""
        return None

    def _refuse_if_population(self, what: str) -> None:
        population = self._population()
        if population is not None:
            raise refuse(f"cannot {what}: population-based training trains a fixed population of "
                         f"{population} trials (start another sweep for more)")

    def _refuse_if_over(self, what: str) -> None:
        phase = self._phase()
        if self._control_state() is None and self._early_controls().stopping:
            phase = "stopping"
        if phase in ("done", "stopping"):
            raise refuse(f"cannot {what}: the {self.kind_name} is "
                         f"{'finished' if phase == 'done' else 'stopping'}")

    # -- queries -------------------------------------------------------------------------------------

    @workflow.query
    def sweep_status(self, offset: int = 0, limit: int = PAGE_ROWS) -> SweepStatus:
        """Phase, settings and a page of the trials held (state, step, loss, value, error): the
        running ones and the finished ones not yet in the results table (``table_uri``)."""
        s = self._control_state()
        early = self._early_controls()
        if s is None:
            return SweepStatus(phase="stopping" if early.stopping else "paused" if early.paused else "running",
                               n_trials=0, max_concurrency=early.max_concurrency or 0, running=0, queued=0,
                               exhausted=False, runs=1, trials=[])
        done, failed, stopped = self._outcomes()
        ranked = self._ranked()
        inp: Any = getattr(self, "_inp", None)
        multi = getattr(inp, "objectives", None) is not None  # several objectives: a front, no best
        return SweepStatus(phase=self._phase(), n_trials=self._n_trials(),  # type: ignore[arg-type]
                           max_concurrency=s.max_concurrency, running=self._running,
                           queued=len(s.queue), exhausted=s.exhausted, runs=s.runs,
                           trials=self.trials(offset, limit), pause_reason=s.pause_reason,
                           started=self._n_started(), written=self._written(), table_uri=self._table_uri(),
                           retrying=self._retrying(), stop_reason=self._stop_reason(),
                           n_done=done, n_failed=failed, n_stopped=stopped,
                           best=ranked[0] if ranked and not multi else None,
                           objective=inp.objective if inp is not None else None,
                           direction=inp.direction if inp is not None else "maximize",
                           scheduled=getattr(s, "scheduled", None),
                           objectives=inp.objectives if multi else None,
                           directions=inp.directions if multi else None,
                           front=self._front_size() if multi else 0)

    @workflow.query
    def trials(self, offset: int = 0, limit: int = PAGE_ROWS) -> list[TrialRow]:
        """A page of the trials held (running, and finished ones not yet in the results table), by
        index: ``limit`` (at most ``PAGE_ROWS``) from ``offset``."""
        s = self._control_state()
        if s is None:
            return []
        offset, limit = max(0, int(offset)), max(0, min(int(limit), PAGE_ROWS))
        return list(s.rows[offset:offset + limit])

    # -- updates -------------------------------------------------------------------------------------

    @workflow.update
    async def add_trials(self, n: Any = MISSING, *extra: Any) -> int:
        """Run ``n`` more trials; returns the new trial count."""
        await workflow.wait_condition(lambda: self._control_state() is not None)  # accepted before run
        total = self._grow(n)
        self._changed()
        return total

    @add_trials.validator
    def _validate_add_trials(self, n: Any = MISSING, *extra: Any) -> None:
        whole_number("add_trials", n, extra, 1, 10_000, "the number of trials to add")
        self._refuse_if_over("add trials")
        self._refuse_if_population("add trials")
        s = self._control_state()
        if s is not None and s.exhausted and not s.queue:
            raise refuse("cannot add trials: the searcher has no new points (every grid point was tried)")

    @workflow.update
    async def stop_trial(self, index: Any = MISSING, *extra: Any) -> TrialRow:
        """Stop one training trial: it ends at a checkpoint of its current step, is evaluated there
        and recorded as ``stopped`` (told to the searcher as failed: its budget was cut short).
        Returns its row once its training has ended."""
        row = self._row(index)
        assert row is not None  # the validator refused otherwise (a training trial is held)
        inp: Any = getattr(self, "_inp", None)
        await workflow.execute_activity(
            STOP_RUN, StopRunRequest(workflow_id=self._running_train_id(index)),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds if inp is not None else 30.0),
            retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=10)),
        )
        await workflow.wait_condition(lambda: row.state != "training")
        return row.model_copy()

    @stop_trial.validator
    def _validate_stop_trial(self, index: Any = MISSING, *extra: Any) -> None:
        check_arity("stop_trial", index, extra)
        started = self._n_started()
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < started:
            raise refuse(f"no trial {shown(index)} in this {self.kind_name} (it has {started} trials)")
        row = self._row(index)
        if row is None or row.state != "training":
            raise refuse(f"cannot stop trial {trial_name(index)}: it is "
                         f"{row.state if row is not None else 'finished'}, not training")
        if index not in self._train_handles:
            raise refuse(f"cannot stop trial {trial_name(index)} yet: its training is starting (try again)")

    @workflow.update
    def enqueue(self, params: Any = MISSING, *extra: Any) -> int:
        """Run a config of the user's own next (one more trial); returns the index of the trial it
        will run as (after any suggestion already taken and the configs queued before it)."""
        s = self._control_state()
        assert s is not None  # the validator refused otherwise
        s.queue.append(dict(params))
        if getattr(s, "held_more", None):  # suggestions asked for ahead: the user's config goes first
            s.held_more.clear()  # type: ignore[attr-defined]
        self._grow(1)
        self._changed()
        ahead = (getattr(s, "held", None) is not None) + bool(getattr(self, "_suggesting", False))
        return self._n_started() + ahead + len(s.queue) - 1

    @enqueue.validator
    def _validate_enqueue(self, params: Any = MISSING, *extra: Any) -> None:
        check_size("enqueue", params, *extra)
        check_arity("enqueue", params, extra)
        known = self._space_and_base()
        if known is None or self._control_state() is None:
            raise refuse(f"cannot enqueue yet: the {self.kind_name} is starting (try again in a moment)")
        self._refuse_if_population("enqueue a config")
        if not isinstance(params, dict):
            raise refuse(f"enqueue needs a point of the space (a JSON object), got {shown(params)}")
        space, base = known
        problem = space.problem_with(params)
        if problem is None:
            try:
                space.apply(base, params)
            except ValueError as exc:
                problem = f"the config rejects it: {str(exc).splitlines()[0]}"
        if problem:
            raise refuse(f"cannot enqueue {shown(params, 120)}: {problem}")
        self._refuse_if_over("enqueue a config")
        queue = self._control_state().queue  # type: ignore[union-attr]  # checked above
        size = sum(len(to_json(q, inf_nan_mode="strings")) for q in [*queue, params])
        if len(queue) >= MAX_QUEUED or size > MAX_QUEUED_BYTES:
            raise refuse(f"cannot enqueue: {len(queue)} configs ({size} bytes) wait already "
                         f"(at most {MAX_QUEUED} and {MAX_QUEUED_BYTES} bytes; add more once they start)")

    @workflow.update
    def retry_failed(self, index: Any = None, *extra: Any) -> int:
        """Run failed trials again from their last checkpoints (trial ``index``, or every failed
        one the sweep holds: the latest 100), before any new trial; returns how many wait to run.
        Their rows keep the earlier results' order in ``retried_from`` (the searcher's audit)."""
        total = self._retry(self._retryable(index))
        self._changed()
        return total

    @retry_failed.validator
    def _validate_retry_failed(self, index: Any = None, *extra: Any) -> None:
        check_arity("retry_failed", index, extra)
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            raise refuse(f"retry_failed takes a trial index (a whole number) or nothing, got {shown(index)}")
        self._refuse_if_over("retry failed trials")
        if self._control_state() is None:
            raise refuse(f"cannot retry yet: the {self.kind_name} is starting (try again in a moment)")
        if not self._retryable(index):
            which = f"trial {trial_name(index)} is not a failed trial it holds" if index is not None else \
                "it holds no failed trial"
            raise refuse(f"nothing to retry: {which} (the {self.kind_name} keeps its latest 100 failed trials)")

    @workflow.update
    def set_max_concurrency(self, n: Any = MISSING, *extra: Any) -> int:
        """Change how many trials run at once (running ones beyond it finish); returns it."""
        self._set_control(max_concurrency=n)
        return n

    @set_max_concurrency.validator
    def _validate_set_max_concurrency(self, n: Any = MISSING, *extra: Any) -> None:
        inp: Any = getattr(self, "_inp", None)
        cap = concurrency_cap(getattr(inp, "scheduler", None) is not None)
        whole_number("set_max_concurrency", n, extra, 1, cap, "max_concurrency")
        self._refuse_if_over("change max_concurrency")

    @workflow.update
    def pause(self, *extra: Any) -> SweepStatus:
        """Start (and promote) no trials until ``resume``; running ones go on."""
        self._set_control(paused=True)
        return self.sweep_status()

    @pause.validator
    def _validate_pause(self, *extra: Any) -> None:
        check_arity("pause", MISSING, extra, takes=0)
        self._refuse_if_over("pause")

    @workflow.update
    def resume(self, *extra: Any) -> SweepStatus:
        """Start trials again after a ``pause`` (or a pause for a failing searcher)."""
        self._set_control(paused=False, pause_reason=None)
        return self.sweep_status()

    @resume.validator
    def _validate_resume(self, *extra: Any) -> None:
        check_arity("resume", MISSING, extra, takes=0)
        self._refuse_if_over("resume")
        s = self._control_state()
        if s is not None and not s.paused:
            raise refuse(f"cannot resume: the {self.kind_name} is not paused")

    @workflow.update
    def stop(self, *extra: Any) -> SweepStatus:
        """Stop: running trials finish, nothing new starts or is promoted, then it returns its result."""
        self._set_control(stopping=True)
        return self.sweep_status()

    @stop.validator
    def _validate_stop(self, *extra: Any) -> None:
        check_arity("stop", MISSING, extra, takes=0)
        if self._done:
            raise refuse(f"cannot stop: the {self.kind_name} has finished")
