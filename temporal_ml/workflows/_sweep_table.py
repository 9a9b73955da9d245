"""A sweep's rows after they finish: the results table they go to in parts (content-verified), the
ranking, the leaderboard and the result; and the pieces the sweep shares with the ladder of the
previous release (run id check, a row's lineage, the trial settings)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
)
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from temporal_ml._names import check_name
    from temporal_ml._version import __version__
    from temporal_ml.activities.sweep import (
        WRITE_SWEEP_PART,
        WRITE_TABLE_PART,
        SweepPartRequest,
        SweepPartWritten,
        TablePartRequest,
    )
    from temporal_ml.search import SearchSpace
    from temporal_ml.sweeps import (
        FRONT_ROWS,
        LEADERBOARD_ROWS,
        MAX_HELD_FAILED,
        PART_ROWS,
        TOP_ROWS,
        LadderInput,
        SweepInput,
        SweepResult,
        SweepState,
        TrialResult,
        TrialRow,
        front_of,
        pareto_ranked,
    )
    from temporal_ml.types import (
        LeaderboardEntry,
        Lineage,
        SnapshotRef,
        TrainConfig,
    )
    from temporal_ml.workflows._trials import (
        TrialSettings,
        root_message,
    )


__all__ = ["SweepTable", "check_sweep_run_id", "rank_rows", "trial_result", "trial_settings"]


def check_sweep_run_id(run_id: str) -> None:
    """Fail the workflow (non-retryably) unless ``run_id`` gives valid child ids."""
    try:
        check_name(run_id, "run id")
        if len(run_id) > 150:
            raise ValueError(f"run id {run_id[:40]}... is longer than 150 characters")
    except ValueError as exc:
        raise ApplicationError(f"{exc} (pass a valid run_id)", type="ConfigError",
                               non_retryable=True) from None


def rank_rows(rows: list[TrialRow], direction: str, by_budget: bool = False) -> list[TrialRow]:
    """Done trials with a value, best first (ties: lower index first). ``by_budget`` (a sweep
    with a scheduler): the most steps first, then the value; a trial listed twice counts as its
    last row (the newer)."""
    sign = -1.0 if direction == "maximize" else 1.0
    latest = {r.index: r for r in rows}
    done = [r for r in latest.values() if r.state == "done" and r.value is not None]
    if by_budget:
        return sorted(done, key=lambda r: (-r.step, sign * float(r.value), r.index))  # type: ignore[arg-type]
    return sorted(done, key=lambda r: (sign * float(r.value), r.index))  # type: ignore[arg-type]


def trial_result(run_id: str, row: TrialRow, base: TrainConfig, space: SearchSpace,
                 snapshot: SnapshotRef, train_id: str, eval_id: str) -> TrialResult:
    """A row with its lineage (the config it trained, hash, seed, snapshot, weights digest)."""
    lineage = None
    try:
        config = space.apply(base, row.params)
    except ValueError:
        config = None
    if config is not None:
        lineage = Lineage(config=config, config_hash=config.config_hash(), seed=config.seed,
                          snapshot_id=snapshot.id, checkpoint_sha256=row.model_sha256,
                          library_version=__version__)
    return TrialResult(name=row.name, row=row.model_copy(), train_workflow_id=train_id,
                       eval_workflow_id=eval_id, lineage=lineage)


def trial_settings(inp: SweepInput | LadderInput) -> TrialSettings:
    """What every trial of a sweep or ladder shares (queues, timeouts, the evaluation split)."""
    return TrialSettings(
        train_task_queue=inp.train_task_queue, eval_task_queue=inp.eval_task_queue,
        heartbeat_timeout_seconds=inp.heartbeat_timeout_seconds, max_attempts=inp.max_attempts,
        progress_every_seconds=inp.progress_every_seconds, eval_split=inp.eval_split,
        evaluate_in_training=getattr(inp, "evaluate_in_training", False),
        no_worker_timeout_seconds=inp.no_worker_timeout_seconds)


class SweepTable:
    """The results table, ranking and result of :class:`~temporal_ml.workflows.sweep.SweepWorkflow`."""

    _s: SweepState
    _inp: SweepInput | None
    _run_id: str
    _live: dict[int, TrialRow]
    _bounded: bool

    # the sweep provides this
    def child_ids(self, index: int, rung: int | None = None) -> tuple[str, str]:
        raise NotImplementedError

    def _part_rows(self) -> int:
        assert self._inp is not None
        return min(self._inp.max_inline_rows, PART_ROWS)

    def _finished_rows(self, final: bool = False) -> list[TrialRow]:
        """Finished rows the table may take: not those waiting to run again, and (until the end)
        not the latest ``MAX_HELD_FAILED`` failed ones, which ``retry_failed`` can still re-run."""
        s = self._s
        finished = [r for r in s.rows if r.state in ("done", "failed", "stopped") and r.index not in s.retry]
        if final:
            return finished
        held = {r.index for r in [r for r in finished if r.state == "failed"][-MAX_HELD_FAILED:]}
        return [r for r in finished if r.index not in held]

    def _flush_due(self) -> bool:
        """Enough finished rows to write a part (not while paused for a failed write)."""
        return (self._bounded and not (self._s.paused and self._s.pause_reason is not None)
                and len(self._finished_rows()) >= self._part_rows())

    async def _flush(self, final: bool = False) -> None:
        """Write finished rows (at most a part) to the results table and forget them; a write that
        fails (a full or unreachable store, no table root) pauses the sweep with the reason."""
        inp, s = self._inp, self._s
        assert inp is not None
        rows = self._finished_rows(final)[:self._part_rows()]
        try:
            written: SweepPartWritten = await workflow.execute_activity(
                WRITE_SWEEP_PART,
                SweepPartRequest(run_id=self._run_id, table_root=inp.table_root, index=len(s.table.parts),
                                 rows=[r.model_dump(mode="json") for r in rows]),
                result_type=SweepPartWritten, start_to_close_timeout=timedelta(minutes=5),
                heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(seconds=30),
                                         non_retryable_error_types=["ConfigError"]),
            )
        except ActivityError as err:
            s.paused, s.pause_reason = True, f"cannot write the results table: {root_message(err)}"
            workflow.logger.error("sweep %s paused: %s", self._run_id, s.pause_reason)
            return
        gone = {r.index for r in rows}
        s.rows = [r for r in s.rows if r.index not in gone]
        for index in gone:
            self._live.pop(index, None)
        t = s.table
        t.uri, t.rows = written.uri, t.rows + len(rows)
        t.parts.append(written.sha256)
        t.n_done += sum(r.state == "done" for r in rows)
        t.n_failed += sum(r.state == "failed" for r in rows)
        t.n_stopped += sum(r.state == "stopped" for r in rows)
        if inp.directions is not None:  # several objectives: the front of what it wrote, bounded
            t.top, dropped = front_of([*t.top, *rows], inp.directions, FRONT_ROWS)
            t.front_dropped += dropped
        else:
            t.top = rank_rows([*t.top, *rows], inp.direction, by_budget=inp.scheduler is not None)[:TOP_ROWS]

    async def _write_table(self, inp: SweepInput) -> str | None:
        """Write every row to ``table_root`` in parts of ``max_inline_rows`` (payloads stay bounded)."""
        rows = self._s.rows
        if inp.table_root is None or len(rows) <= inp.max_inline_rows:
            return None
        uri = f"{inp.table_root.rstrip('/')}/{self._run_id}"
        step = inp.max_inline_rows
        for k in range(0, len(rows), step):
            await workflow.execute_activity(
                WRITE_TABLE_PART,
                TablePartRequest(uri=uri, index=k // step,
                                 rows=[r.model_dump(mode="json") for r in rows[k:k + step]]),
                start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(seconds=inp.heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
        return uri

    def _ranked(self) -> list[TrialRow]:
        """Done trials best first: the kept rows and the best of those written to the table."""
        assert self._inp is not None
        if self._inp.directions is not None:  # by front, then crowding distance
            return [r for r, _ in pareto_ranked([*self._s.table.top, *self._s.rows], self._inp.directions)]
        return rank_rows([*self._s.table.top, *self._s.rows], self._inp.direction,
                         by_budget=self._inp.scheduler is not None)

    def _front(self) -> tuple[list[TrialRow], int]:
        """A multi-objective sweep's Pareto front (of the front it wrote and the rows it holds), by
        index and bounded, and how many front rows it left out (now and when it wrote them)."""
        inp, t = self._inp, self._s.table
        assert inp is not None and inp.directions is not None
        front, dropped = front_of([*t.top, *self._s.rows], inp.directions, FRONT_ROWS)
        return front, dropped + t.front_dropped

    def _leaderboard(self) -> list[LeaderboardEntry]:
        inp = self._inp
        assert inp is not None
        if inp.objectives is not None:  # metric and value: the first objective's
            return [LeaderboardEntry(rank=k + 1, name=r.name, metric=inp.objectives[0],
                                     value=float(r.values[0]), budget=r.step)  # type: ignore[index]
                    for k, r in enumerate(self._ranked()[:LEADERBOARD_ROWS])]
        return [LeaderboardEntry(rank=k + 1, name=r.name, metric=inp.objective,
                                 value=float(r.value), budget=r.step)  # type: ignore[arg-type]
                for k, r in enumerate(self._ranked()[:LEADERBOARD_ROWS])]

    def _result(self, inp: SweepInput, snapshot: SnapshotRef, table_uri: str | None = None) -> SweepResult:
        s, t = self._s, self._s.table
        rows = s.rows
        ranked = self._ranked()
        if t.parts:  # the rows are in the table: the result holds the best of them
            keep = ranked[:min(inp.max_inline_rows, TOP_ROWS)]
        elif len(rows) > inp.max_inline_rows:  # bound the payload: the best rows, then the rest by index
            chosen = {r.index for r in ranked[:inp.max_inline_rows]}
            for r in rows:
                if len(chosen) >= inp.max_inline_rows:
                    break
                chosen.add(r.index)
            keep = [r for r in rows if r.index in chosen]
        else:
            keep = sorted(rows, key=lambda r: r.index)

        def result(row: TrialRow) -> TrialResult:
            base = inp.base
            if inp.scheduler is not None:  # the config of the rung it reached (the schedule over the largest)
                base = base.model_copy(update={"max_steps": max(row.step, 1),
                                               "schedule_steps": inp.scheduler.max_budget})
            return trial_result(self._run_id, row, base, inp.space, snapshot,
                                *self.child_ids(row.index, row.rung))

        total = t.rows + len(rows)
        out = SweepResult(
            run_id=self._run_id, snapshot=snapshot, objective=inp.objective, direction=inp.direction,
            best=result(ranked[0]) if ranked else None, leaderboard=self._leaderboard(),
            trials=[result(r) for r in keep], n_trials=total,
            n_done=t.n_done + sum(r.state == "done" for r in rows),
            n_failed=t.n_failed + sum(r.state == "failed" for r in rows),
            n_stopped=t.n_stopped + sum(r.state == "stopped" for r in rows), rows_omitted=total - len(keep),
            table_uri=table_uri,
            stopped=s.stopping, exhausted=s.exhausted, runs=s.runs, stop_reason=s.stop_reason,
            scheduled=s.scheduled, best_budget=ranked[0].step if ranked and inp.scheduler is not None else None,
        )
        if inp.objectives is None or inp.directions is None:
            return out
        front, dropped = self._front()  # several objectives: the front instead of one best
        return out.model_copy(update={
            "objective": inp.objectives[0], "direction": inp.directions[0], "best": None,
            "objectives": list(inp.objectives), "directions": list(inp.directions),
            "front": [result(r) for r in front], "front_dropped": dropped})
