"""The checkpoint deletions (unpromotable trials, a byte budget) and the result of the ASHA ladder of
the previous release (:class:`~temporal_ml.workflows.ladder.LadderSweepWorkflow`), which stays
registered so ladders it started finish."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporal_ml.sweeps import (
        LadderInput,
        LadderResult,
        LadderState,
        TrialRow,
    )
    from temporal_ml.types import (
        LeaderboardEntry,
        SnapshotRef,
    )
    from temporal_ml.workflows._scheduled import run_checkpoints
    from temporal_ml.workflows._sweep_table import trial_result


__all__ = ["LadderCleanup", "KEEP_LIVE_AND_BEST_PATCH"]

#: ``workflow.patched`` id of the deletion guard: no deletion takes the checkpoints of the best trial
#: (also when the ladder ends below its top rung) or of a trial promoted or started while earlier
#: deletions ran. Histories recorded before it replay without the guard.
KEEP_LIVE_AND_BEST_PATCH = "tml-ladder-keep-live-and-best-v1"


class LadderCleanup:
    """Deletions, ranking and result of the legacy ladder."""

    _inp: LadderInput | None
    _run_id: str

    # the ladder provides these
    @property
    def state(self) -> LadderState:
        raise NotImplementedError

    @property
    def max_trials(self) -> int:
        raise NotImplementedError

    def run_id_of(self, index: int) -> str:
        raise NotImplementedError

    async def _checkpoints(self, row: TrialRow, dry_run: bool) -> int:
        """Measure or delete the checkpoint directory of ``row``'s run; returns its bytes."""
        assert self._inp is not None
        return await run_checkpoints(self.run_id_of(row.index), row, dry_run, self._inp.heartbeat_timeout_seconds)

    async def _keep_budget(self, row: TrialRow) -> None:
        """Measure ``row``'s checkpoints; over the budget, delete idle trials' worst first."""
        inp, s = self._inp, self.state
        assert inp is not None
        if inp.checkpoint_budget_bytes is None or row.checkpoint_uri is None or row.name in s.deleted:
            return
        s.checkpoint_bytes[row.name] = await self._checkpoints(row, dry_run=True)
        best = s.table.best()
        running = {t for br in s.table.brackets for r in br.rungs for t in r.running}

        def badness(name: str) -> tuple[int, int]:
            rung = s.rung_of.get(name, 0)
            bracket = s.table.trial_bracket.get(name, 0)
            ranking = s.table.ranking(bracket, rung)
            return (rung, -(ranking.index(name) if name in ranking else len(ranking)))

        candidates = sorted(  # lower rungs first, the worst of a rung first; never the best trial
            (n for n, b in s.checkpoint_bytes.items()
             if b > 0 and n not in running and (best is None or n != best[0])),
            key=badness)
        rung_when_chosen = {n: s.rung_of.get(n) for n in candidates}
        guarded = workflow.patched(KEEP_LIVE_AND_BEST_PATCH)
        while sum(s.checkpoint_bytes.values()) > inp.checkpoint_budget_bytes and candidates:
            name = candidates.pop(0)
            # each deletion awaits an activity: a candidate promoted (or become the best) meanwhile
            # is running or kept now, and loses nothing
            if guarded and (name in self._protected() or s.rung_of.get(name) != rung_when_chosen[name]):
                continue
            victim = s.rows[int(name[1:])]
            s.freed_bytes += await self._checkpoints(victim, dry_run=False)
            s.checkpoint_bytes[name] = 0
            if name not in s.deleted:
                s.deleted.append(name)
        total = sum(s.checkpoint_bytes.values())
        s.budget_exceeded = s.budget_exceeded or total > inp.checkpoint_budget_bytes
        s.peak_checkpoint_bytes = max(s.peak_checkpoint_bytes, total)

    async def _delete_dead(self, final: bool = False) -> None:
        """Delete the checkpoints of trials that can never be promoted (idle ones only)."""
        inp, s = self._inp, self.state
        assert inp is not None
        if not inp.delete_unpromotable:
            return
        if final:
            s.table.closed = True
        guarded = workflow.patched(KEEP_LIVE_AND_BEST_PATCH)
        running = {t for br in s.table.brackets for r in br.rungs for t in r.running}
        # the best trial is never deleted: the result points to its checkpoint (a ladder that ends
        # below its top rung has an "unpromotable" best)
        keep = self._protected() if guarded else running
        dead = []
        for tid, rung in inp.scheduler.unpromotable(s.table, max_trials=self.max_trials):
            row = s.rows[int(tid[1:])]
            if (tid in s.deleted or tid in keep or s.rung_of.get(tid) != rung
                    or row.checkpoint_uri is None or row.model_sha256 is None):
                continue
            s.deleted.append(tid)
            dead.append(row)
        for row in dead:
            if guarded and row.name in self._protected():  # promoted or best while we deleted others
                s.deleted.remove(row.name)
                continue
            s.freed_bytes += await self._checkpoints(row, dry_run=False)
            s.checkpoint_bytes[row.name] = 0

    def _protected(self) -> set[str]:
        """Trials whose checkpoints no deletion may touch: running ones, the best of the rung table
        and the best of the result (``_ranked``: the highest step, then the best value)."""
        s = self.state
        keep = {t for br in s.table.brackets for r in br.rungs for t in r.running}
        keep.update(s.rows[index].name for index in s.retry)  # they run again from their checkpoints
        best = s.table.best()
        if best is not None:
            keep.add(best[0])
        ranked = self._ranked()
        if ranked:
            keep.add(ranked[0].name)
        return keep

    def _ranked(self) -> list[TrialRow]:
        assert self._inp is not None
        sign = -1.0 if self._inp.direction == "maximize" else 1.0
        done = [r for r in self.state.rows if r.value is not None and r.state == "done"]
        return sorted(done, key=lambda r: (-r.step, sign * float(r.value), r.index))  # type: ignore[arg-type]

    def _leaderboard(self) -> list[LeaderboardEntry]:
        assert self._inp is not None
        return [LeaderboardEntry(rank=k + 1, name=r.name, metric=self._inp.objective,
                                 value=float(r.value), budget=r.step)  # type: ignore[arg-type]
                for k, r in enumerate(self._ranked())]

    def _result(self, inp: LadderInput, snapshot: SnapshotRef) -> LadderResult:
        s = self.state

        def result(row: TrialRow) -> Any:
            base = inp.base.model_copy(update={"max_steps": max(row.step, 1),
                                               "schedule_steps": inp.scheduler.max_budget})
            rung = s.rung_of.get(row.name, 0)
            prefix = f"{self.run_id_of(row.index)}--r{rung}"
            return trial_result(self._run_id, row, base, inp.space, snapshot,
                                f"{prefix}--train", f"{prefix}--eval")

        best = s.table.best()
        best_row = s.rows[int(best[0][1:])] if best is not None else None
        return LadderResult(
            run_id=self._run_id, snapshot=snapshot, objective=inp.objective, direction=inp.direction,
            best=result(best_row) if best_row is not None else None,
            best_budget=best[1] if best is not None else None, leaderboard=self._leaderboard(),
            table=s.table, decisions=s.decisions, trials=[result(r) for r in s.rows], deleted=s.deleted,
            reports=s.reports,
            freed_bytes=s.freed_bytes, checkpoint_bytes=sum(s.checkpoint_bytes.values()),
            peak_checkpoint_bytes=s.peak_checkpoint_bytes, budget_exceeded=s.budget_exceeded,
            stop_reason=s.stop_reason,
        )
