"""The ``PLAN`` activity of a sweep with a scheduler (:mod:`temporal_ml.activities.plan`).

A scheduled sweep holds no rung table: ``plan_next`` rebuilds it from the rows the sweep holds and
those it wrote to its results table, and decides. These tests check it against the old design (a
full :class:`RungTable` in state, ``scheduler.next(table)`` applied one decision at a time, as
``LadderSweepWorkflow`` did): the same decisions in the same order for the same asynchronous sweep,
the same rung table at every step, and the checkpoints named for deletion by the old ladder's rule
(its guards) with the sound bound :meth:`AshaScheduler.dead` in place of ``unpromotable`` (which
named trials that asynchronous ASHA promoted later) — and no trial named is ever promoted after;
then the deletion rules (``dead``, ``final``: every trial below its bracket's top rung, byte budget,
the guards, the cap per answer) and the starts (user configs, searcher errors, ``may_start``,
``slots``, ``max_trials``, ``done``) on hand-built rows.

Randomised tests print their seed (``seed N``); ``TML_TEST_SEED=N`` reproduces a failure. Each
case draws its own seed (or takes ``TML_TEST_SEED``) and drives one sweep: a run checks 16 sweeps
(12 for the decisions, 4 for the table and deletions), not more; more seeds need more runs.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue
from pydantic_core import to_json
from temporalio.exceptions import ApplicationError

from temporal_ml.activities import plan as plan_module
from temporal_ml.activities.plan import (
    MAX_DELETIONS,
    PlanAction,
    PlanRequest,
    PlanResult,
    PlanRow,
    RungWatch,
    plan_next,
    rung_table,
)
from temporal_ml.search import (
    AshaScheduler,
    Categorical,
    Direction,
    Float,
    GridSearcher,
    Int,
    RandomSearcher,
    RungTable,
    SearchExhausted,
    SearchSpace,
    TPESearcher,
)
from temporal_ml.sweeps import SuggestionAudit, TrialRow, trial_name

SPACE = SearchSpace({"hparams.lr": Float(1e-4, 1e-1, log=True), "hparams.layers": Int(1, 4)})
ASHA = AshaScheduler(min_budget=1, max_budget=27, eta=3)  # rungs 1, 3, 9, 27
ASHA2 = AshaScheduler(min_budget=1, max_budget=27, eta=3, brackets=2)  # and 3, 9, 27
CONCURRENCY = 3
FAIL_RATE = 0.1
SHA = "ab" * 32

Decision = tuple[Any, ...]  # (action, trial index, bracket, rung, budget, reason), or ("done",)


# -- the simulated sweep --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    seed: int
    direction: Direction
    scheduler: AshaScheduler
    max_trials: int
    flush: int | None  # finished rows held before a part of them is written (None: never)


def make_case(seed: int, direction: Direction, brackets: int, flush: int | None) -> Case:
    max_trials = random.Random(f"{seed}/n").randint(20, 40)
    return Case(seed, direction, ASHA2 if brackets == 2 else ASHA, max_trials, flush)


def value_of(seed: int, index: int, rung: int) -> float | None:
    """What trial ``index`` reports at ``rung`` (``None``: it fails there), the same in every drive.
    Rounded to one decimal so that ties happen (a rung ranks them by the order they reported)."""
    rng = random.Random(f"{seed}/{index}/{rung}")
    if rng.random() < FAIL_RATE:
        return None
    quality = random.Random(f"{seed}/{index}").random()
    return round(quality + 0.3 * rng.random() - 0.05 * rung, 1)


def drive_ladder(case: Case) -> list[Decision]:
    """The old design: a full rung table in state; each free slot asks ``scheduler.next(table)`` and
    applies the decision (start / promote); a result is reported, a failure dropped (as
    ``LadderSweepWorkflow`` did). Trials complete in an order drawn from ``Random(case.seed)``."""
    sched = case.scheduler
    table = sched.new_table(case.direction)
    rng = random.Random(case.seed)
    running: list[tuple[int, int]] = []  # (trial, rung it trains toward), in the order started
    log: list[Decision] = []
    started = 0
    while True:
        last = None
        while len(running) < CONCURRENCY:
            last = sched.next(table, may_start=started < case.max_trials)
            if last.action == "start":
                index, started = started, started + 1
                table.start(trial_name(index), last.bracket)
            elif last.action == "promote":
                assert last.trial_id is not None
                index = int(last.trial_id[1:])
                table.promote(last.trial_id, last.rung - 1)
            else:
                break
            running.append((index, last.rung))
            log.append((last.action, index, last.bracket, last.rung, last.budget, last.reason))
        if last is not None and last.action == "done":
            assert not running
            log.append(("done",))
            return log
        index, rung = running.pop(rng.randrange(len(running)))
        value = value_of(case.seed, index, rung)
        if value is None:
            table.drop(trial_name(index))
        else:
            table.report(trial_name(index), rung, value)


class Table:
    """A sweep's results table: parts written as ``WRITE_SWEEP_PART`` writes them (the rows as JSON,
    non-finite numbers as strings), and the digest of each, as the sweep records them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts: list[str] = []
        self.latest: dict[int, dict[str, Any]] = {}  # each trial's latest row written
        self.rewritten = 0  # rows written again (a later part holds a newer version)

    @property
    def uri(self) -> str | None:
        return str(self.root) if self.parts else None

    def write(self, rows: list[TrialRow]) -> None:
        raw = [r.model_dump(mode="json") for r in rows]
        data = to_json(raw, inf_nan_mode="strings")
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / f"part-{len(self.parts):05d}.json").write_bytes(data)
        self.parts.append(hashlib.sha256(data).hexdigest())
        for r in raw:
            self.rewritten += r["index"] in self.latest
            self.latest[r["index"]] = r


def complete(row: TrialRow, value: float | None, rung: int, budget: int, seq: int) -> None:
    """A rung's result, as the sweep records it (``SweepWorkflow._trial`` / ``_finish``)."""
    row.result_seq = seq
    if value is None:
        row.state, row.value, row.metrics, row.error = "failed", None, {}, "diverged"
        return
    row.state, row.value, row.metrics, row.step = "done", value, {"accuracy": value}, budget
    row.checkpoint_uri = f"file:///ckpt/run--{row.name}/step-{budget:08d}"
    row.model_sha256 = SHA
    row.rung_values.append(value)
    row.rung_seqs.append(seq)
    assert row.rung == rung


def drive_sweep(case: Case, root: Path, ahead: int = 0) -> tuple[list[Decision], Counter[str]]:
    """The new design: the sweep holds rows (and writes finished ones to its table every
    ``case.flush`` of them); each time a slot frees it asks ``plan_next`` for the free slots and
    applies its answer as ``ScheduledSweep._apply`` / ``_delete`` / ``_bring_back`` do. The same
    completion order and values as :func:`drive_ladder` for the same decisions.

    With ``ahead``, each plan also answers that many new trials ahead, and a freed slot takes the
    next of them without asking while every result since kept the plan's promotions
    (``RungWatch.keeps``), as ``ScheduledSweep._start_ahead`` does; any other result forgets them."""
    sched = case.scheduler
    table = Table(root)
    held: dict[int, TrialRow] = {}  # SweepState.rows, by index, in the order the sweep appended them
    running: list[tuple[int, int]] = []
    rng = random.Random(case.seed)
    log: list[Decision] = []
    stats: Counter[str] = Counter()
    deleted: set[int] = set()
    seq = started = 0
    searcher = RandomSearcher()
    ahead_actions: list[PlanAction] = []
    watch: dict[tuple[int, int], RungWatch] = {}

    def start(action: PlanAction, audit: SuggestionAudit | None) -> TrialRow:
        nonlocal started
        assert action.index == started and action.rung == 0 and action.source == "searcher"
        assert action.params == searcher.suggest(SPACE, [], seed=case.seed, index=started)
        if audit is not None:
            assert action.audit == audit
        row = held[started] = TrialRow(index=started, params=action.params, audit=action.audit,
                                       bracket=action.bracket, rung=0)
        started += 1
        return row

    while True:
        slots = CONCURRENCY - len(running)
        while slots and ahead_actions:  # the latest plan's new trials ahead: still its decision
            action = ahead_actions.pop(0)
            log.append((action.action, action.index, action.bracket, action.rung, action.budget, action.reason))
            assert action.audit is not None and action.audit.results_seen <= seq
            row = start(action, None)
            row.rung, row.max_steps = action.rung, action.budget
            running.append((action.index, action.rung))
            slots -= 1
            stats["started ahead"] += 1
        if slots:
            stats["live rows also in the table"] += sum(i in table.latest for i in held)
            stats["plans"] += 1
            got = plan_next(PlanRequest(
                scheduler=sched, searcher=searcher, space=SPACE, seed=case.seed, direction=case.direction,
                rows=[PlanRow.of(r) for r in held.values()], table_uri=table.uri,
                table_parts=list(table.parts), next_index=started, max_trials=case.max_trials,
                slots=slots, results_seen=seq, ahead=ahead))
            assert got.failed is None and got.exhausted is None and len(got.actions) <= slots
            assert len(got.ahead) <= ahead and (not got.ahead or len(got.actions) == slots)
            ahead_actions, watch = list(got.ahead), {(w.bracket, w.rung): w for w in got.watch}
            known = {i: TrialRow.model_validate(r) for i, r in table.latest.items()} | held
            states = Counter(r.record().state for r in known.values())
            starts = 0
            for action in got.actions:
                log.append((action.action, action.index, action.bracket, action.rung, action.budget,
                            action.reason))
                if action.action == "start":
                    row = start(action, SuggestionAudit(
                        searcher="random", results_seen=seq, complete=states["complete"],
                        failed=states["failed"], pending=states["pending"] + starts))
                    starts += 1
                else:
                    # the plan deletes only what AshaScheduler.dead names (no byte budget here): a
                    # trial whose checkpoints went can never be promoted (it would train again)
                    assert action.index not in deleted, (
                        f"{trial_name(action.index)} is promoted after its checkpoints were deleted")
                    if action.index in held:
                        assert action.row is None
                        row = held[action.index]
                    else:  # the sweep wrote it: the plan hands back its latest row
                        assert action.row is not None
                        assert action.row.model_dump(mode="json") == table.latest[action.index]
                        row = held[action.index] = action.row
                        stats["promoted from the table"] += 1
                    assert action.params == row.params and action.rung == row.rung + 1
                    row.state, row.error, row.deleted = "training", None, False
                row.rung, row.max_steps = action.rung, action.budget
                row.decisions.append(action.reason)
                running.append((action.index, action.rung))
            busy = {i for i, _ in running}
            for d in got.delete:
                assert d.index not in busy, f"{trial_name(d.index)} runs: its checkpoints must stay"
                row = held.get(d.index)
                if row is None:
                    assert d.row is not None and d.row.model_dump(mode="json") == table.latest[d.index]
                    row = held[d.index] = d.row
                else:
                    assert d.row is None
                assert row.checkpoint_uri is not None and not row.deleted
                row.deleted, row.checkpoint_bytes = True, 0
                deleted.add(d.index)
                stats["deleted"] += 1
            if got.done:
                assert not running and not got.actions
                log.append(("done",))
                stats["rewritten"] = table.rewritten
                return log, stats
            if got.more_deletions:
                continue
        assert running, "the plan is not done, but nothing runs and it starts nothing: the sweep would hang"
        index, rung = running.pop(rng.randrange(len(running)))
        row = held[index]
        value = value_of(case.seed, index, rung)
        complete(row, value, rung, row.max_steps, seq)
        seq += 1
        if ahead_actions:  # ScheduledSweep._result_in: a result that could change a promotion forgets them
            w = watch.get((row.bracket, rung))
            if value is None or w is None or not w.keeps(value, case.direction, eta=sched.eta):
                ahead_actions = []
            else:
                watch[(row.bracket, rung)] = w.after()
                stats["results that kept the plan"] += 1
        if case.flush is not None:  # SweepWorkflow._flush: a part of the finished rows it holds
            finished = [r for r in held.values() if r.state in ("done", "failed")]
            if len(finished) >= case.flush:
                table.write(finished[:case.flush])
                for r in finished[:case.flush]:
                    del held[r.index]


@pytest.mark.parametrize("flush", [None, 1, 4],
                         ids=["rows-held", "rows-written-at-once", "rows-written-by-4"])
@pytest.mark.parametrize("brackets", [1, 2])
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_plan_decides_as_the_old_in_state_rung_table(random_seed: int, tmp_path: Path, direction: Direction,
                                                         brackets: int, flush: int | None) -> None:
    case = make_case(random_seed, direction, brackets, flush)
    print(case)
    old = drive_ladder(case)
    new, stats = drive_sweep(case, tmp_path / "table")
    print(f"{len(old)} decisions; {dict(stats)}")
    for k, (a, b) in enumerate(zip(old, new, strict=False)):
        assert a == b, f"decision {k} differs:\n  in-state table: {a}\n  plan_next:      {b}"
    assert len(old) == len(new)
    assert old[-1] == ("done",)
    assert sum(d[0] == "start" for d in old) == case.max_trials
    assert any(d[0] == "promote" for d in old)
    assert stats["deleted"] > 0  # deletions happened, and none of them was promoted after (drive_sweep)
    if flush == 1:
        # a finished row is written at the next result (those a deletion brought back wait their
        # turn), so most promotions take their row from the table: the written rows are exercised
        # (promoted back, written twice, live over written). With 4 rows a part (held and written
        # rows mixed) a seed may promote every trial before its row is written (seed 110, minimize,
        # one bracket): there they are counted, not required
        assert stats["promoted from the table"] > 0 and stats["rewritten"] > 0
        assert stats["live rows also in the table"] > 0


@pytest.mark.parametrize("flush", [None, 4], ids=["rows-held", "rows-written-by-4"])
@pytest.mark.parametrize("brackets", [1, 2])
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_new_trials_planned_ahead_are_the_decisions_a_plan_at_each_slot_makes(
        random_seed: int, tmp_path: Path, direction: Direction, brackets: int, flush: int | None) -> None:
    """A sweep that starts the plan's new trials ahead while the results keep its promotions makes
    exactly the old design's decisions (the random searcher's points depend on the index only), with
    fewer plans."""
    case = make_case(random_seed, direction, brackets, flush)
    print(case)
    old = drive_ladder(case)
    new, stats = drive_sweep(case, tmp_path / "table", ahead=4)
    print(f"{len(old)} decisions; {dict(stats)}")
    for k, (a, b) in enumerate(zip(old, new, strict=False)):
        assert a == b, f"decision {k} differs:\n  in-state table: {a}\n  planned ahead:  {b}"
    assert len(old) == len(new)
    assert stats["started ahead"] > 0 and stats["results that kept the plan"] > 0
    assert stats["plans"] + stats["started ahead"] > stats["plans"]


def test_a_rung_watch_keeps_only_results_that_leave_the_promotions() -> None:
    """The quota grows at each ``eta``-th result; a result better than the cutoff enters the quota
    (ties rank by report order, NaN last); nothing is promoted from a top rung."""
    w = RungWatch(bracket=0, rung=1, results=3, cutoff=0.5)  # eta 3: 1 promoted, the 0.5
    assert w.keeps(0.6, "minimize", eta=3) and w.keeps(0.5, "minimize", eta=3)
    assert not w.keeps(0.4, "minimize", eta=3)
    assert w.keeps(0.4, "maximize", eta=3) and not w.keeps(0.6, "maximize", eta=3)
    assert w.keeps(float("nan"), "minimize", eta=3) and w.keeps(float("nan"), "maximize", eta=3)
    assert not w.after().after().keeps(0.9, "minimize", eta=3)  # the 6th result: 2 promoted
    nan_cut = RungWatch(bracket=0, rung=0, results=3, cutoff=float("nan"))  # NaN in the quota
    assert not nan_cut.keeps(1e9, "minimize", eta=3) and nan_cut.keeps(float("nan"), "minimize", eta=3)
    empty = RungWatch(bracket=0, rung=0, results=1)  # quota 0 until the 3rd
    assert empty.keeps(-1e9, "minimize", eta=3) and not empty.after().keeps(1e9, "minimize", eta=3)
    assert RungWatch(bracket=0, rung=3, results=2, top=True).keeps(-1e9, "minimize", eta=3)
    assert RungWatch.model_validate_json(nan_cut.model_dump_json()).keeps(float("nan"), "minimize", eta=3)


# -- the rung table and the deletions at every step, against the old design -----------------------


def expected_deletions(sched: AshaScheduler, table: RungTable, rows: dict[int, TrialRow], *, max_trials: int,
                       protected: set[int], final: bool) -> list[int]:
    """What a plan deletes, from the in-state table: never the running trials, those to run again,
    the table's best or the result's best (most steps, then value), a trial already deleted or one
    without checkpoints. Before the end: the old ladder's rule (``_delete_dead`` with
    ``_protected``), the trials :meth:`AshaScheduler.dead` names (in its order) at the rung they
    are still at, where the ladder asked ``unpromotable`` (unsound: see
    :func:`test_a_trial_named_unpromotable_is_never_promoted_later`); ``dead`` never names more
    than ``unpromotable`` did. At the end (``final``): every trial below its bracket's top rung, in
    index order (those that reported at it are finished models; one that failed toward it goes)."""
    keep = {t for br in table.brackets for r in br.rungs for t in r.running}
    keep |= {trial_name(i) for i in protected}
    best = table.best()
    if best is not None:
        keep.add(best[0])
    sign = -1.0 if table.direction == "maximize" else 1.0
    done = [r for r in rows.values() if r.state == "done" and r.value is not None]
    if done:
        keep.add(min(done, key=lambda r: (-r.step, sign * float(r.value or 0), r.index)).name)
    if final:
        return [i for i, row in sorted(rows.items())
                if not row.deleted and row.name not in keep and row.checkpoint_uri is not None
                and len(row.rung_values) < len(table.brackets[row.bracket].rungs)]
    dead = sched.dead(table, max_trials=max_trials)
    assert set(dead) <= set(sched.unpromotable(table, max_trials=max_trials))
    out = []
    for tid, rung in dead:
        row = rows[int(tid[1:])]
        if row.deleted or tid in keep or row.rung != rung or row.checkpoint_uri is None:
            continue
        out.append(row.index)
    return out


def same_table(rebuilt: RungTable, table: RungTable) -> None:
    """Equal rung tables: each rung's results in the same order (it breaks ties), the same trials
    promoted and running (in any order), the same brackets."""
    assert rebuilt.trial_bracket == table.trial_bracket
    for b, (x, y) in enumerate(zip(rebuilt.brackets, table.brackets, strict=True)):
        for k, (p, q) in enumerate(zip(x.rungs, y.rungs, strict=True)):
            where = f"bracket {b} rung {k}"
            assert p.budget == q.budget, where
            assert list(p.results.items()) == list(q.results.items()), where
            assert sorted(p.promoted) == sorted(q.promoted), where
            assert sorted(p.running) == sorted(q.running), where


@pytest.mark.parametrize("brackets", [1, 2])
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_rebuilt_table_and_the_deletions_match_the_in_state_table_at_every_step(
        random_seed: int, direction: Direction, brackets: int) -> None:
    """One asynchronous sweep driven by the in-state table, its rows kept the new way beside it; at
    every step the table ``plan_next`` rebuilds from the rows equals the in-state one, its rung
    counts agree, and a deletions-only plan names exactly :func:`expected_deletions` (the old
    ladder's guards over ``AshaScheduler.dead``; some failed trials protected as about to run
    again); no trial whose checkpoints went is promoted later; at the end, with ``final``, every
    trial below its bracket's top rung but the kept ones, in index order."""
    case = make_case(random_seed + 1, direction, brackets, None)
    sched = case.scheduler
    table = sched.new_table(direction)
    rng = random.Random(case.seed)
    rows: dict[int, TrialRow] = {}
    running: list[tuple[int, int]] = []
    seq = started = checked = named = named_final = 0
    last_protected: set[int] = set()

    def check(final: bool = False) -> None:
        nonlocal checked, named, named_final, last_protected
        same_table(rung_table([PlanRow.of(r) for r in rows.values()], sched, direction), table)
        idle_failed = sorted(i for i, r in rows.items() if r.state == "failed")
        protected = last_protected = set(rng.sample(idle_failed, min(len(idle_failed), 2)))
        while True:
            got = plan_next(PlanRequest(
                scheduler=sched, searcher=RandomSearcher(), space=SPACE, seed=0, direction=direction,
                rows=[PlanRow.of(r) for r in rows.values()], next_index=started, max_trials=case.max_trials,
                slots=0, final=final, protected=sorted(protected)))
            assert not got.actions and not got.done
            counts = [(c.bracket, c.rung, c.budget, c.results, c.promoted, c.running) for c in got.rungs]
            assert counts == [(b, k, r.budget, len(r.results), len(r.promoted), len(r.running))
                              for b, br in enumerate(table.brackets) for k, r in enumerate(br.rungs)]
            expected = expected_deletions(sched, table, rows, max_trials=case.max_trials, protected=protected,
                                          final=final)
            assert [d.index for d in got.delete] == expected[:MAX_DELETIONS]
            assert got.more_deletions == (len(expected) > MAX_DELETIONS)
            for d in got.delete:
                rows[d.index].deleted = True
            checked += 1
            if final:
                named_final += len(got.delete)
            else:
                named += len(got.delete)
            if not got.more_deletions:
                return

    while True:
        decision = None
        while len(running) < CONCURRENCY:
            decision = sched.next(table, may_start=started < case.max_trials)
            if decision.action == "start":
                index, started = started, started + 1
                table.start(trial_name(index), decision.bracket)
                rows[index] = TrialRow(index=index, params={}, bracket=decision.bracket, rung=0)
            elif decision.action == "promote":
                assert decision.trial_id is not None
                index = int(decision.trial_id[1:])
                assert not rows[index].deleted, (
                    f"{decision.trial_id} is promoted after its checkpoints were deleted")
                table.promote(decision.trial_id, decision.rung - 1)
                rows[index].state, rows[index].rung = "training", decision.rung
            else:
                break
            rows[index].max_steps = decision.budget
            running.append((index, decision.rung))
            check()
        if decision is not None and decision.action == "done":
            break
        index, rung = running.pop(rng.randrange(len(running)))
        value = value_of(case.seed, index, rung)
        if value is None:
            table.drop(trial_name(index))
        else:
            table.report(trial_name(index), rung, value)
        complete(rows[index], value, rung, rows[index].max_steps, seq)
        seq += 1
        check()
    check(final=True)
    print(f"{case}: {checked} plans checked, {named} deletions named during the sweep, "
          f"{named_final} at the end")
    assert named > 0  # AshaScheduler.dead named some during the sweep (a final plan names some of any sweep)
    # after the final plan, the checkpoints left below a bracket's top rung are the kept trials' only:
    # the table's best, the result's best, the protected ones (nothing runs any more)
    best = table.best()
    done = [r for r in rows.values() if r.state == "done" and r.value is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    kept = {int(best[0][1:])} if best is not None else set()
    kept |= {min(done, key=lambda r: (-r.step, sign * float(r.value or 0), r.index)).index} if done else set()
    tops = [len(br.rungs) - 1 for br in table.brackets]
    left = {i for i, r in rows.items()
            if r.checkpoint_uri is not None and not r.deleted and len(r.rung_values) <= tops[r.bracket]}
    assert left <= kept | last_protected, sorted(left - kept - last_protected)


# -- deletions on hand-built rows ------------------------------------------------------------------


def trow(index: int, values: list[float], *, state: str = "done", rung: int | None = None, bracket: int = 0,
         seqs: list[int] | None = None, checkpointed: bool = True, nbytes: int = 0, deleted: bool = False,
         budgets: tuple[int, ...] = (1, 3, 9, 27)) -> TrialRow:
    """A scheduled trial's row: ``values`` its results at rungs 0, 1, ...; ``rung`` the rung it
    trains (or last trained) toward, by default that of its last result."""
    rung = len(values) - 1 if rung is None else rung
    return TrialRow(
        index=index, params={"hparams.lr": 0.01, "hparams.layers": 1 + index % 4}, state=state,  # type: ignore[arg-type]
        value=values[-1] if values and state == "done" else None, bracket=bracket, rung=rung,
        rung_values=values, rung_seqs=seqs if seqs is not None else [100 * k + index for k in range(len(values))],
        step=budgets[len(values) - 1] if values else 0, max_steps=budgets[rung],
        checkpoint_uri=f"file:///ckpt/run--t{index:04d}/step-1" if checkpointed else None,
        model_sha256=SHA if checkpointed else None, checkpoint_bytes=nbytes, deleted=deleted)


def plan(rows: list[TrialRow], **kw: Any) -> PlanResult:
    """``plan_next`` for ``rows`` held (defaults: ASHA 1..27, minimize, no new trial, deletions only)."""
    next_index = max((r.index + 1 for r in rows), default=0)
    args: dict[str, Any] = dict(scheduler=ASHA, searcher=RandomSearcher(), space=SPACE, seed=0,
                                direction="minimize", rows=[PlanRow.of(r) for r in rows],
                                next_index=next_index, max_trials=next_index, slots=0)
    return plan_next(PlanRequest(**(args | kw)))


def table_of(rows: list[TrialRow], direction: Direction = "minimize", sched: AshaScheduler = ASHA) -> RungTable:
    """The in-state table of the old design for ``rows``, built by start/promote/report in the order
    of the results (the rows' seqs)."""
    table = sched.new_table(direction)
    for r in sorted(rows, key=lambda r: r.index):
        table.start(r.name, r.bracket)
    events = sorted((seq, r.index, k, v) for r in rows for k, (v, seq) in enumerate(zip(r.rung_values, r.rung_seqs, strict=True)))
    for _, index, k, v in events:
        if k > 0:
            table.promote(trial_name(index), k - 1)
        table.report(trial_name(index), k, v)
    for r in rows:
        if r.rung is not None and r.rung > len(r.rung_values) - 1 and r.rung_values:
            table.promote(r.name, r.rung - 1)  # promoted, no result there yet
        if r.state not in ("training", "evaluating"):
            table.drop(r.name)
    return table


def nine(direction: Direction = "minimize") -> list[TrialRow]:
    """Nine trials at rung 0 (t0 best ... t8 worst); t0, t1, t2 promoted (quota 9 // 3): t0 trains
    toward rung 1, t1 reached it (the best there), t2 failed toward it."""
    s = 1.0 if direction == "minimize" else -1.0
    rows = [trow(i, [s * (i + 1)]) for i in range(3, 9)]
    return [trow(0, [s * 1], state="training", rung=1), trow(1, [s * 2, s * 0.5]),
            trow(2, [s * 3], state="failed", rung=1), *rows]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_unpromotable_trials_are_named_as_the_scheduler_says_but_the_guarded_ones(direction: Direction) -> None:
    rows = nine(direction)
    rows[5] = trow(5, rows[5].rung_values, checkpointed=False)  # t5: no checkpoints
    rows[6] = trow(6, rows[6].rung_values, deleted=True)  # t6: deleted already
    table = table_of(rows, direction)
    by_rows = {r.index: r for r in rows}
    # rung 0 may promote 9 // 3 = 3 (t0, t1, t2 were; nothing else is alive there and no result may
    # come), so rung 1 gets at most 3 results and promotes 3 // 3 = 1 (t1 ranks first)
    assert ASHA.dead(table, max_trials=9) == [(trial_name(i), 0) for i in range(3, 9)]
    got = plan(rows, direction=direction, protected=[4])  # t4 runs again
    assert [d.index for d in got.delete] == [3, 7, 8]  # not t4 (protected), t5 (no checkpoints), t6 (gone)
    assert got.delete[0].reason == "t0003 can no longer be promoted from rung 0: its checkpoints go"
    assert not got.more_deletions and not got.budget_exceeded and not got.actions
    # more trials to come: rung 0 may promote max_trials // 3 of them
    for max_trials, named in [(12, [4, 7, 8]), (21, [7, 8]), (24, [8]), (27, [])]:
        got = plan(rows, direction=direction, max_trials=max_trials)
        assert [d.index for d in got.delete] == named, max_trials
        assert named == expected_deletions(ASHA, table, by_rows, max_trials=max_trials, protected=set(), final=False)
    assert plan(rows, direction=direction, delete_unpromotable=False).delete == []


def test_the_results_best_trial_is_kept_too() -> None:
    """t0 is the table's best (first at rung 1) but failed toward rung 2; t1 is the result's best
    (the done trial with the most steps, then the best value) and ranks second at rung 1, beyond
    its quota of 1: it can never be promoted, yet its checkpoints stay (the result points to them);
    t2, third at rung 1, goes. At the end (``final``) every trial below the top rung goes, in index
    order, but t0 (the table's best), t1 (the result's best) and t7 (protected)."""
    rows = [trow(0, [1, 0.5], state="failed", rung=2), trow(1, [2, 0.7]), trow(2, [3, 0.9]),
            *(trow(i, [i + 1.0]) for i in range(3, 9))]
    table = table_of(rows)
    assert table.best() == ("t0000", 3, 0.5)
    assert ASHA.dead(table, max_trials=9) == [
        *((trial_name(i), 0) for i in range(3, 9)), ("t0001", 1), ("t0002", 1)]
    got = plan(rows)
    assert [d.index for d in got.delete] == [3, 4, 5, 6, 7, 8, 2]
    got = plan(rows, final=True, protected=[7])
    assert [d.index for d in got.delete] == [2, 3, 4, 5, 6, 8]
    assert [d.index for d in plan(rows, final=True).delete] == [2, 3, 4, 5, 6, 7, 8]


def test_a_trial_promoted_in_the_same_plan_keeps_its_checkpoints() -> None:
    """Six results at rung 0 (quota 2): the plan promotes t0 and t1 and, over a byte budget, deletes
    idle trials worst first; not t0 (the best) nor t1 (promoted now, it resumes from them)."""
    rows = [trow(i, [i + 1.0], nbytes=100) for i in range(6)]
    got = plan(rows, slots=2, checkpoint_budget_bytes=100, checkpoint_bytes=600, delete_unpromotable=False)
    assert [(a.action, a.index, a.rung) for a in got.actions] == [("promote", 0, 1), ("promote", 1, 1)]
    assert [d.index for d in got.delete] == [5, 4, 3, 2]
    assert got.budget_exceeded
    # without the promotions (slots=0) t1 is idle: it goes too
    assert [d.index for d in plan(rows, checkpoint_budget_bytes=100, checkpoint_bytes=600,
                                  delete_unpromotable=False).delete] == [5, 4, 3, 2, 1]


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_final_names_every_checkpointed_trial_but_the_best(direction: Direction) -> None:
    """A ladder that ended at rung 2 (of 4): t0, t1, t2 went to rung 1, t0 to rung 2; at the end
    every trial below the top rung goes, in index order, even with 11 more trials allowed
    (``max_trials`` no longer counts); the best (t0) is kept, and so is a trial without
    checkpoints."""
    s = 1.0 if direction == "minimize" else -1.0
    rows = [trow(0, [s * 1, s * 0.5, s * 0.1]), trow(1, [s * 2, s * 0.7]), trow(2, [s * 3, s * 0.9]),
            *(trow(i, [s * (i + 1)]) for i in range(3, 9)), trow(9, [s * 10], checkpointed=False)]
    table = table_of(rows, direction)
    # 10 trials may still start: rung 0 may promote 20 // 3 = 6, so only t6..t9 are certain to stay there
    assert ASHA.dead(table, max_trials=20) == [(trial_name(i), 0) for i in range(6, 10)]
    got = plan(rows, direction=direction, final=True, slots=3, max_trials=20)
    assert not got.actions and not got.done  # final: deletions only
    assert [d.index for d in got.delete] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert got.delete[0].reason == "t0001 ended below the top rung: its checkpoints go"
    assert not got.more_deletions and not got.budget_exceeded
    expected = expected_deletions(ASHA, table, {r.index: r for r in rows}, max_trials=20, protected=set(),
                                  final=True)
    assert [d.index for d in got.delete] == expected
    # not final: only what dead names (t9 has no checkpoints)
    assert [d.index for d in plan(rows, direction=direction, max_trials=20).delete] == [6, 7, 8]


def test_final_keeps_the_trials_that_reached_their_brackets_top_rung() -> None:
    """Two brackets (rungs 1, 3, 9, 27 and 3, 9, 27): t0 and t8 reached bracket 0's top rung (t0
    the best), t1 bracket 1's (rung 2 there): finished models, they keep their checkpoints; t2
    (rung 2 of bracket 0), t3, t7 go; t4 runs (kept), t5's checkpoints went already."""
    b1 = (3, 9, 27)
    rows = [trow(0, [1, 0.5, 0.3, 0.2]), trow(1, [1.0, 0.6, 0.4], bracket=1, budgets=b1),
            trow(2, [2, 0.7, 0.35]), trow(3, [1.5, 0.8], bracket=1, budgets=b1),
            trow(4, [3], state="training", rung=1), trow(5, [2.0], bracket=1, budgets=b1, deleted=True),
            trow(6, [4], checkpointed=False), trow(7, [3.0], bracket=1, budgets=b1),
            trow(8, [5, 0.9, 0.6, 0.5])]
    got = plan(rows, scheduler=ASHA2, final=True)
    assert [d.index for d in got.delete] == [2, 3, 7]
    table = table_of(rows, sched=ASHA2)
    assert table.best() == ("t0000", 27, 0.2)
    assert expected_deletions(ASHA2, table, {r.index: r for r in rows}, max_trials=9, protected=set(),
                              final=True) == [2, 3, 7]


def test_final_names_every_checkpointed_trial_but_the_best_after_a_failure() -> None:
    """Nine trials, t8 failed at rung 0: eight results, so ASHA promoted two (t0, t1); t1 reached
    rung 1 worse than t0. The sweep ends; t2 (third at rung 0) was never promoted: it goes too
    (a bound over the nine trials, failed ones included, would allow 9 // 3 = 3 from rung 0 and
    keep it)."""
    rows = [trow(0, [1, 0.5]), trow(1, [2, 0.7]), *(trow(i, [i + 1.0]) for i in range(2, 8)),
            trow(8, [], state="failed", rung=0, checkpointed=False)]
    table = table_of(rows)
    assert ASHA.next(table, may_start=False).action == "done"  # the ladder is over
    assert ("t0002", 0) not in ASHA.dead(table, max_trials=9)  # the bound alone would keep t2
    got = plan(rows, final=True)
    assert [d.index for d in got.delete] == [1, 2, 3, 4, 5, 6, 7]


def budget_rows() -> list[TrialRow]:
    """t0 (best) and t1 at rung 1 (30 bytes each), t2 trains toward rung 1 (its rung-0 checkpoint,
    10 bytes), t3..t8 idle at rung 0 (10 bytes each): 130 bytes."""
    return [trow(0, [1, 0.5], nbytes=30), trow(1, [2, 0.7], nbytes=30),
            trow(2, [3], state="training", rung=1, nbytes=10),
            *(trow(i, [i + 1.0], nbytes=10) for i in range(3, 9))]


@pytest.mark.parametrize(("budget", "deleted", "exceeded"), [
    (130, [], False),  # within the budget: nothing goes
    (95, [8, 7, 6, 5], False),  # rung 0, worst first, until under the budget
    (70, [8, 7, 6, 5, 4, 3], False),
    (40, [8, 7, 6, 5, 4, 3, 1], False),  # then rung 1 (t1; t0 is the best)
    (5, [8, 7, 6, 5, 4, 3, 1], True),  # the best's and the running trial's bytes are left: over
])
def test_a_byte_budget_deletes_idle_trials_lower_rungs_and_worse_ranks_first(
        budget: int, deleted: list[int], exceeded: bool) -> None:
    got = plan(budget_rows(), checkpoint_budget_bytes=budget, checkpoint_bytes=130, delete_unpromotable=False)
    assert [d.index for d in got.delete] == deleted
    assert got.budget_exceeded == exceeded
    if deleted:
        assert got.delete[0].reason == (f"t0008: over the checkpoint budget of {budget} bytes, its 10 bytes go")


def test_a_byte_budget_counts_the_unpromotable_first_and_skips_the_guarded() -> None:
    # unpromotable: t3..t8 at rung 0 (quota 3), t1 at rung 1 (quota 1): 90 bytes; 40 left
    got = plan(budget_rows(), checkpoint_budget_bytes=40, checkpoint_bytes=130)
    assert [d.index for d in got.delete] == [3, 4, 5, 6, 7, 8, 1] and not got.budget_exceeded
    assert got.delete[-1].reason == "t0001 can no longer be promoted from rung 1: its checkpoints go"
    got = plan(budget_rows(), checkpoint_budget_bytes=35, checkpoint_bytes=130)
    assert len(got.delete) == 7 and got.budget_exceeded  # only the best's and the running one's left
    # protected (t4, t5: they run again) and deleted (t6) trials keep what they have
    rows = budget_rows()
    rows[6] = trow(6, [7.0], deleted=True)  # its checkpoints went: 0 bytes
    got = plan(rows, checkpoint_budget_bytes=55, checkpoint_bytes=120, protected=[4, 5],
               delete_unpromotable=False)
    assert [d.index for d in got.delete] == [8, 7, 3, 1] and got.budget_exceeded  # 120 - 60 = 60 > 55


def test_at_most_max_deletions_per_answer_then_the_rest() -> None:
    """120 results at rung 0 and no more trials: 80 can never be promoted; answers of 32, 32, 16."""
    rows = [trow(i, [float(i)], seqs=[i]) for i in range(120)]
    answers = []
    while True:
        got = plan(rows)
        answers.append((len(got.delete), got.more_deletions))
        for d in got.delete:
            assert not rows[d.index].deleted
            rows[d.index] = trow(d.index, [float(d.index)], seqs=[d.index], deleted=True)
        if not got.more_deletions:
            break
    assert answers == [(MAX_DELETIONS, True), (MAX_DELETIONS, True), (16, False)]
    assert sorted(r.index for r in rows if r.deleted) == list(range(40, 120))


def test_a_trial_named_unpromotable_is_never_promoted_later() -> None:
    """ASHA 1..27 (eta 3), minimize, 8 trials, one at a time, each step decided by ``plan_next``.
    After t5 reports 5 at rung 1 (rung 1: t1 9, t3 4 promoted, t4 18, t5 5), the plan that starts
    t6 may not name t5 (rank 2 of 4 at rung 1): the old bound ``unpromotable`` did (rung 0 may
    send on 8 // 3 = 2, so rung 1 promotes none but its best), yet t6 and t7 then report 1 and 2
    at rung 0 (promoted: rung 0 sends 6 of 8 on) and 12, 13 at rung 1: rung 1 holds 6 results,
    its top 2 go on, and t5 (second) is promoted. ``dead`` names each trial only once it can no
    longer be promoted: the deletions below, each at the plan after the result that decides it."""
    values = {(0, 0): 16, (1, 0): 15, (2, 0): 19, (1, 1): 9, (3, 0): 11, (3, 1): 4, (4, 0): 4, (4, 1): 18,
              (3, 2): 11, (5, 0): 4, (5, 1): 5, (6, 0): 1, (6, 1): 12, (7, 0): 2, (7, 1): 13}
    rows: dict[int, TrialRow] = {}
    named: dict[int, str] = {}
    deletions: list[tuple[int, int, int]] = []  # (trial, rung it is named at, the result seq before it)
    old_named: set[tuple[int, int]] = set()  # what AshaScheduler.unpromotable named along the way
    decisions: list[tuple[str, int, int]] = []
    promoted_after: list[str] = []
    seq = 0
    while True:
        got = plan(list(rows.values()), next_index=len(rows), max_trials=8, slots=1, results_seen=seq)
        table = rung_table([PlanRow.of(r) for r in rows.values()], ASHA, "minimize")
        old_named |= {(int(t[1:]), k) for t, k in ASHA.unpromotable(table, max_trials=8)}
        for d in got.delete:
            named[d.index] = d.reason
            deletions.append((d.index, rows[d.index].rung or 0, seq))
            rows[d.index].deleted = True
        if got.done:
            break
        [action] = got.actions
        decisions.append((action.action, action.index, action.rung))
        if action.action == "start":
            rows[action.index] = TrialRow(index=action.index, params=action.params, bracket=action.bracket, rung=0)
        else:
            if action.index in named:
                promoted_after.append(f"{named[action.index]}; later: {action.reason}")
            row = rows[action.index]
            row.state, row.rung, row.deleted = "training", action.rung, False
        complete(rows[action.index], float(values.get((action.index, action.rung), 20)), action.rung,
                 action.budget, seq)
        seq += 1
    # the state above was reached: the old bound named t5 at rung 1, and t5 went on from rung 1
    assert (5, 1) in old_named and ("promote", 5, 2) in decisions
    assert promoted_after == []
    # and dead is not vacuous: each trial goes as soon as it is certain (t5 at the end, from rung 2)
    # (t1 at rung 1 goes once t5 reports there: rung 1 then may get 6 results, top 2; t5 once it
    # reports 20 at rung 2, which gets at most 2 results: quota 0)
    assert deletions == [(2, 0, 3), (0, 0, 5), (4, 1, 8), (1, 1, 11), (6, 1, 13), (7, 1, 15), (5, 2, 16)]
    assert named[4] == "t0004 can no longer be promoted from rung 1: its checkpoints go"


# -- rows written to the results table ------------------------------------------------------------


def write_parts(root: Path, parts: list[list[TrialRow]]) -> list[str]:
    """Write ``parts`` as the sweep's table parts; their digests."""
    table = Table(root)
    for rows in parts:
        table.write(rows)
    return table.parts


def test_rows_in_the_table_count_and_the_live_row_wins(tmp_path: Path) -> None:
    """Part 0 holds t0..t5 done at rung 0 (t1 best, t0 second: quota 2); part 1 holds t1 done at
    rung 1. t0 was promoted too: the sweep holds it again, training toward rung 1, while part 0
    still has it idle at rung 0. The plan must take the live row: t0 is promoted already (the
    part's row would make it promotable again) and running (its checkpoints stay)."""
    first = [trow(i, [v], seqs=[i], nbytes=10) for i, v in enumerate([2.0, 1.0, 3.0, 4.0, 5.0, 6.0])]
    t1 = trow(1, [1.0, 0.5], seqs=[1, 6], nbytes=30)
    live = trow(0, [2.0], seqs=[0], state="training", rung=1, nbytes=10)
    uri = str(tmp_path / "t")
    parts = write_parts(tmp_path / "t", [first, [t1]])
    got = plan([live], table_uri=uri, table_parts=parts, next_index=6, max_trials=8, slots=2,
               checkpoint_budget_bytes=0, checkpoint_bytes=80)
    assert [(a.action, a.index) for a in got.actions] == [("start", 6), ("start", 7)]
    assert [(c.rung, c.results, c.promoted, c.running) for c in got.rungs][:2] == [(0, 6, 2, 2), (1, 1, 0, 1)]
    assert [d.index for d in got.delete] == [2, 3, 4, 5]  # not t0 (it runs), not t1 (the best)
    assert got.budget_exceeded
    # rows the sweep no longer holds come with the deletion, as written
    assert [d.row.model_dump(mode="json") if d.row else None for d in got.delete] == [
        r.model_dump(mode="json") for r in first[2:]]
    # the part's version alone: t0 is idle and unpromoted there, so it is promoted now, with its row
    got = plan([], table_uri=uri, table_parts=parts, next_index=6, max_trials=6, slots=1)
    assert [(a.action, a.index, a.rung) for a in got.actions] == [("promote", 0, 1)]
    assert got.actions[0].row is not None
    assert got.actions[0].row.model_dump(mode="json") == first[0].model_dump(mode="json")


def test_a_later_part_replaces_an_earlier_one(tmp_path: Path) -> None:
    """t0 written at rung 0 (part 0), promoted, written again at rung 1 (part 1): the later row wins
    (a reader keeps the latest), so t0 is not promoted from rung 0 again."""
    first = [trow(i, [i + 1.0], seqs=[i]) for i in range(3)]
    again = [trow(0, [1.0, 0.5], seqs=[0, 3])]
    parts = write_parts(tmp_path / "t", [first, again])
    got = plan([], table_uri=str(tmp_path / "t"), table_parts=parts, next_index=3, max_trials=3, slots=1)
    assert got.actions == [] and got.done
    assert [(c.rung, c.results, c.promoted) for c in got.rungs][:2] == [(0, 3, 1), (1, 1, 0)]
    assert [(d.index, d.row.model_dump(mode="json") if d.row else None) for d in got.delete] == [
        (r.index, r.model_dump(mode="json")) for r in first[1:]]  # t0 (the best) stays


def test_a_worker_indexes_each_sweeps_written_rows_once_and_bounded(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker keeps an index of each sweep's written rows (the plan's fields, compact) and adds
    only the parts written since its last call: at every length of the table the answers equal a
    cold worker's, a row written again (promoted, then written at rung 1) replaces the earlier one,
    and the rows a call holds never leak into the index. Over ``ROWS_MAX`` rows the least recently
    used sweep's index goes (one alone over it is not kept), and the answers stay the same; a
    promoted or deleted row still comes back in full, as written. The kept rows give back their
    params, their names held once for all rows."""
    from temporal_ml.activities import _rung_index

    rows = [trow(i, [float((i * 7) % 11)], seqs=[i], nbytes=10) for i in range(30)]
    again = trow(3, [float((3 * 7) % 11), 0.25], seqs=[3, 40], nbytes=10)  # t3 promoted, written again
    table_parts = [rows[k:k + 10] for k in range(0, 30, 10)] + [[again]]
    parts = write_parts(tmp_path / "t", table_parts)
    live = [trow(30, [], state="training", rung=0, nbytes=10)]
    kw: dict[str, Any] = dict(table_uri=str(tmp_path / "t"), next_index=31, max_trials=31, slots=3,
                              checkpoint_budget_bytes=100, checkpoint_bytes=320)

    def cold(held: list[TrialRow], n: int) -> PlanResult:
        monkeypatch.setattr(_rung_index, "_WRITTEN", type(_rung_index._WRITTEN)())
        return plan(held, table_parts=parts[:n], **kw)

    monkeypatch.setattr(_rung_index, "_WRITTEN", type(_rung_index._WRITTEN)())
    warm: dict[int, PlanResult] = {}
    for n in range(1, len(parts) + 1):
        warm[n] = plan(live, table_parts=parts[:n], **kw)
        plan([], table_parts=parts[:n], **kw)  # (held rows are overlaid on a copy)
        assert _rung_index.rows_held() == min(10 * n, 30)
    index = next(iter(_rung_index._WRITTEN.values())).index
    assert all(isinstance(r, plan_module.WrittenRow) for r in index.rows.values())
    assert index.rows[3].rung_values == (again.rung_values[0], 0.25) and index.rows[3].part == 3
    assert all(index.rows[i].params == rows[i].params for i in range(30) if i != 3)
    assert len({id(r.param_names) for r in index.rows.values()}) == 1  # one tuple of names for all
    assert 30 not in index.rows and len(index.running_rows) == 0
    for n, got in warm.items():
        assert got == cold(live, n), f"{n} parts: a warm worker answers otherwise than a cold one"
    assert [a.action for a in warm[4].actions] == ["promote"] * 3 and warm[4].delete

    # a second sweep's table: both indexed, until the cap leaves room for one
    other = write_parts(tmp_path / "u", table_parts[:2])
    monkeypatch.setattr(_rung_index, "_WRITTEN", type(_rung_index._WRITTEN)())
    plan([], table_parts=parts, **kw)
    plan([], **(kw | dict(table_uri=str(tmp_path / "u"), table_parts=other)))
    assert _rung_index.rows_held() == 50
    monkeypatch.setattr(_rung_index, "ROWS_MAX", 40)
    assert plan(live, table_parts=parts, **kw) == warm[4]  # the other sweep's index goes
    assert _rung_index.rows_held() == 30
    monkeypatch.setattr(_rung_index, "ROWS_MAX", 15)
    monkeypatch.setattr(plan_module, "_AS_WRITTEN", {})
    for _ in range(2):  # alone over the cap: indexed again on each call
        bounded = plan(live, table_parts=parts, **kw)
        assert bounded == warm[4] and _rung_index.rows_held() == 0
    full = {r.index: r.model_dump(mode="json") for r in rows} | {3: again.model_dump(mode="json")}
    assert all(a.row is not None and a.row.model_dump(mode="json") == full[a.index] for a in bounded.actions)
    assert all(d.row is not None and d.row.model_dump(mode="json") == full[d.index] for d in bounded.delete)
    assert len(plan_module._AS_WRITTEN) <= 4


def test_a_part_that_fails_to_read_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    """A part refused (its digest) does not leave a worker's index half updated: the next call with
    the right digests answers as a cold worker."""
    rows = [trow(i, [float(i)], seqs=[i]) for i in range(6)]
    parts = write_parts(tmp_path / "t", [rows[:3], rows[3:]])
    kw: dict[str, Any] = dict(table_uri=str(tmp_path / "t"), next_index=6, max_trials=6, slots=1)
    plan([], table_parts=parts[:1], **kw)
    with pytest.raises(ApplicationError, match="does not match its recorded sha256"):
        plan([], table_parts=[parts[0], "0" * 64], **kw)
    assert plan([], table_parts=parts, **kw) == plan_next_cold(tmp_path, parts, kw)


def plan_next_cold(tmp_path: Path, parts: list[str], kw: dict[str, Any]) -> PlanResult:
    from temporal_ml.activities import _rung_index

    saved = dict(_rung_index._WRITTEN)
    _rung_index._WRITTEN.clear()
    try:
        return plan([], table_parts=parts, **kw)
    finally:
        _rung_index._WRITTEN.clear()
        _rung_index._WRITTEN.update(saved)


def test_a_part_that_does_not_match_its_digest_is_refused(tmp_path: Path) -> None:
    parts = write_parts(tmp_path / "t", [[trow(0, [1.0])]])
    with pytest.raises(ApplicationError, match="does not match its recorded sha256"):
        plan([], table_uri=str(tmp_path / "t"), table_parts=["0" * 64], next_index=1, max_trials=1)
    with pytest.raises(ApplicationError, match="is missing"):
        plan([], table_uri=str(tmp_path / "t"), table_parts=[*parts, parts[0]], next_index=1, max_trials=1)


# -- starts ----------------------------------------------------------------------------------------


class FailingSearcher(RandomSearcher):
    """A random searcher with a bug from trial ``fail_from`` on."""

    fail_from: int = 0

    def suggest(self, space: SearchSpace, history: Any, *, seed: int, index: int,
                direction: Direction = "minimize") -> dict[str, JsonValue]:
        if index >= self.fail_from:
            raise RuntimeError("kaput")
        return super().suggest(space, history, seed=seed, index=index, direction=direction)


class SilentlyExhausted(RandomSearcher):
    def suggest(self, space: SearchSpace, history: Any, *, seed: int, index: int,
                direction: Direction = "minimize") -> dict[str, JsonValue]:
        raise SearchExhausted()


def test_queued_user_configs_start_before_the_searcher() -> None:
    queued: list[dict[str, JsonValue]] = [{"hparams.lr": 0.05, "hparams.layers": 2},
                                          {"hparams.lr": 0.06, "hparams.layers": 3}]
    got = plan([], scheduler=ASHA2, next_index=0, max_trials=10, slots=3, queued=queued, results_seen=0)
    assert [(a.action, a.index, a.bracket, a.budget, a.source) for a in got.actions] == [
        ("start", 0, 0, 1, "user"), ("start", 1, 1, 3, "user"), ("start", 2, 0, 1, "searcher")]
    assert [a.params for a in got.actions[:2]] == queued and [a.audit for a in got.actions[:2]] == [None, None]
    assert got.actions[2].params == RandomSearcher().suggest(SPACE, [], seed=0, index=2)
    assert got.actions[2].audit is not None and got.actions[2].audit.searcher == "random"
    assert got.actions[1].reason == ("no trial is in the top 1/3 of its rung unpromoted: "
                                     "start a new trial in bracket 1 at budget 3")
    # a queue longer than the slots: the first ones, in order
    got = plan([], next_index=0, max_trials=10, slots=1, queued=queued)
    assert [(a.source, a.params) for a in got.actions] == [("user", queued[0])]


def apply_start(rows: list[TrialRow], action: PlanAction) -> None:
    rows.append(TrialRow(index=action.index, params=action.params, source=action.source, audit=action.audit,
                         bracket=action.bracket, rung=0))


@pytest.mark.parametrize("searcher", [TPESearcher(n_startup=3), GridSearcher(shuffle=True)], ids=["tpe", "grid"])
def test_a_plan_of_several_slots_is_several_plans_of_one(searcher: Any) -> None:
    """Each start of one answer is decided with the earlier ones applied: the same points and
    audits as asking for one slot at a time (each new trial pending for the next)."""
    space = SearchSpace({"hparams.lr": Categorical([0.001, 0.01, 0.1]), "hparams.layers": Int(1, 4)})
    done = [trow(i, [float(i % 3)], seqs=[i]) for i in range(5)]
    wide = AshaScheduler(min_budget=1, max_budget=27, eta=9)  # 5 results: nothing to promote
    kw: dict[str, Any] = dict(scheduler=wide, searcher=searcher, space=space, max_trials=12, next_index=5,
                              results_seen=5)
    batch = plan(done, slots=4, **kw)
    rows = list(done)
    one_by_one = []
    for _ in range(4):
        [action] = plan(rows, slots=1, **(kw | {"next_index": len(rows)})).actions
        one_by_one.append(action)
        apply_start(rows, action)
    assert [(a.index, a.params, a.audit) for a in batch.actions] == [(a.index, a.params, a.audit) for a in one_by_one]


def test_a_searcher_start_sees_a_user_config_started_before_it_in_the_same_plan() -> None:
    """A user config and then a searcher start in one plan: the searcher sees the user's trial as
    pending (a grid searcher does not suggest its point again; the audit counts it), as when the
    two are asked one slot at a time."""
    space = SearchSpace({"hparams.lr": Categorical([0.01, 0.1])})
    queued: list[dict[str, JsonValue]] = [{"hparams.lr": 0.01}]
    got = plan([], searcher=GridSearcher(), space=space, next_index=0, max_trials=5, slots=2, queued=queued)
    # asking one slot at a time: trial 0 (the user's) is pending when trial 1's point is chosen
    rows: list[TrialRow] = []
    apply_start(rows, plan([], searcher=GridSearcher(), space=space, next_index=0, max_trials=5, slots=1,
                           queued=queued).actions[0])
    [second] = plan(rows, searcher=GridSearcher(), space=space, next_index=1, max_trials=5, slots=1).actions
    assert second.params == {"hparams.lr": 0.1}
    assert second.audit is not None and second.audit.pending == 1
    assert [(a.source, a.index) for a in got.actions] == [("user", 0), ("searcher", 1)]
    assert got.actions[1].params == second.params  # not {"hparams.lr": 0.01} again, a duplicate
    assert got.actions[1].audit == second.audit


def test_an_exhausted_searcher_says_why_and_the_plan_goes_on() -> None:
    space = SearchSpace({"hparams.lr": Categorical([0.01, 0.1, 1.0])})
    held = [TrialRow(index=0, params={"hparams.lr": 0.1}, rung=0)]  # training
    got = plan(held, searcher=GridSearcher(), space=space, next_index=1, max_trials=10, slots=3)
    assert [a.params["hparams.lr"] for a in got.actions] == [0.01, 1.0]
    assert got.exhausted == "all 3 grid points have been tried" and got.failed is None and not got.done
    got = plan([], searcher=SilentlyExhausted(), next_index=0, max_trials=10, slots=3)
    assert got.exhausted == "the searcher has no new points" and not got.actions
    assert got.done  # nothing runs, nothing to promote, nothing can start
    # an exhausted searcher still lets promotions through
    rows = [trow(i, [i + 1.0]) for i in range(3)]
    got = plan(rows, searcher=SilentlyExhausted(), next_index=3, max_trials=10, slots=3)
    assert [(a.action, a.index) for a in got.actions] == [("promote", 0)] and got.exhausted and not got.done


def test_a_failing_searcher_fails_the_plan_with_the_reason() -> None:
    got = plan([], searcher=FailingSearcher(), next_index=0, max_trials=10, slots=3)
    assert got.failed == "the random searcher failed: RuntimeError: kaput"
    assert not got.actions and not got.done and got.exhausted is None
    got = plan([], searcher=FailingSearcher(fail_from=1), next_index=0, max_trials=10, slots=3)
    assert [a.index for a in got.actions] == [0] and got.failed is not None  # it stops at the failure


def test_no_new_trial_without_leave_slots_or_trials_left() -> None:
    """``may_start=False``, ``slots=0`` or ``next_index >= max_trials``: no start (a promotion still
    goes; ``slots=0`` answers nothing). A queued config takes the first start."""
    rows = [trow(i, [i + 1.0]) for i in range(3)]  # t0 may be promoted
    got = plan(rows, next_index=3, max_trials=10, slots=3, may_start=False)
    assert [(a.action, a.index) for a in got.actions] == [("promote", 0)] and not got.done
    got = plan(rows, next_index=3, max_trials=3, slots=3)
    assert [(a.action, a.index) for a in got.actions] == [("promote", 0)] and not got.done
    got = plan(rows, next_index=5, max_trials=4, slots=3)
    assert [a.action for a in got.actions] == ["promote"]
    got = plan(rows, next_index=3, max_trials=10, slots=0)
    assert got.actions == [] and not got.done
    got = plan(rows, next_index=3, max_trials=10, slots=3, queued=[{"hparams.lr": 0.05, "hparams.layers": 2}])
    assert [(a.action, a.index, a.source) for a in got.actions] == [
        ("promote", 0, "searcher"), ("start", 3, "user"), ("start", 4, "searcher")]
    got = plan(rows, next_index=3, max_trials=10, slots=3, may_start=False,
               queued=[{"hparams.lr": 0.05, "hparams.layers": 2}])
    assert [a.action for a in got.actions] == ["promote"]


def test_done_only_when_nothing_runs_nothing_is_promotable_and_nothing_can_start() -> None:
    assert plan([], next_index=0, max_trials=0, slots=1).done
    idle = [trow(i, [i + 1.0]) for i in range(2)]  # two results: quota 0
    assert plan(idle, slots=1).done
    assert plan(idle, slots=1, max_trials=10, may_start=False).done
    assert not plan(idle, slots=1, max_trials=10).done  # it starts one
    assert not plan(idle, slots=0).done  # it was not asked
    running = [*idle, TrialRow(index=2, params={}, rung=0)]
    got = plan(running, slots=1)
    assert not got.done and not got.actions  # wait for t2
    promotable = [*idle, trow(2, [0.5])]
    got = plan(promotable, slots=1)
    assert [a.index for a in got.actions] == [2] and not got.done
    got = plan(promotable, slots=2)
    assert len(got.actions) == 1 and not got.done  # it promoted one: not done in the same answer
    finished = [trow(0, [1.0, 0.4, 0.3, 0.2]), *(trow(i, [i + 1.0]) for i in range(1, 3))]
    assert plan(finished, slots=3).done  # t0 at the top rung


# -- timing ------------------------------------------------------------------------------------------


def big_sweep(n: int, running: int, seed: int) -> list[TrialRow]:
    """``n`` trials of an ASHA sweep: the best third of each rung went on (30 of them still train
    toward the next rung), results recorded in a shuffled order, ``running`` new ones training."""
    rng = random.Random(seed)
    budgets = ASHA.budgets()
    seqs = iter(rng.sample(range(10 * n), 10 * n))
    rows = [TrialRow(index=i, params={"hparams.lr": rng.random() * 0.1, "hparams.layers": rng.randint(1, 4)},
                     rung=0, max_steps=1) for i in range(n)]
    level = rows[:n - running]
    for k in range(len(budgets)):
        for r in level:
            value = rng.random()
            r.rung_values.append(value)
            r.rung_seqs.append(next(seqs))
            r.state, r.value, r.step, r.result_seq = "done", value, budgets[k], r.rung_seqs[-1]
            r.metrics = {"accuracy": value}
            r.checkpoint_uri, r.model_sha256, r.checkpoint_bytes = f"file:///c/{r.name}/step-1", SHA, 1000
        for r in level:
            r.rung_seqs.sort()  # seqs increase along a trial's rungs
        if k + 1 == len(budgets):
            break
        level = sorted(level, key=lambda r: r.rung_values[-1])[:len(level) // 3]
        for j, r in enumerate(level):
            r.rung, r.max_steps = k + 1, budgets[k + 1]
            if j < 30:
                r.state = "training"
        level = [r for r in level if r.state == "done"]
    return rows


def test_timing_of_a_plan_over_10000_trials(tmp_path: Path) -> None:
    """Not an assertion: how long ``plan_next`` takes over 10,000 trials held, and over the same
    written in 100 parts (after a first call has read and converted them)."""
    rows = big_sweep(10_000, 100, seed=3)
    kw: dict[str, Any] = dict(scheduler=ASHA, searcher=RandomSearcher(), space=SPACE, seed=0, direction="minimize",
                              next_index=10_000, max_trials=12_000, slots=8, checkpoint_budget_bytes=10**9,
                              checkpoint_bytes=10**6)
    req = PlanRequest(rows=[PlanRow.of(r) for r in rows], **kw)
    calls = 5
    t0 = time.perf_counter()
    for _ in range(calls):
        held = plan_next(req)
    held_ms = (time.perf_counter() - t0) / calls * 1000
    finished = [r for r in rows if r.state == "done"]
    live = [r for r in rows if r.state != "done"]
    parts = write_parts(tmp_path / "t", [finished[k:k + 100] for k in range(0, len(finished), 100)])
    req = PlanRequest(rows=[PlanRow.of(r) for r in live], table_uri=str(tmp_path / "t"), table_parts=parts, **kw)
    t0 = time.perf_counter()
    written = plan_next(req)  # reads, verifies and converts every part once
    cold_ms = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    for _ in range(calls):
        written = plan_next(req)
    warm_ms = (time.perf_counter() - t0) / calls * 1000
    assert [(a.action, a.index) for a in written.actions] == [(a.action, a.index) for a in held.actions]
    print(f"\nplan_next over 10,000 trials ({len(held.actions)} actions, {len(held.delete)} deletions): "
          f"all held {held_ms:.1f} ms/call; {len(live)} held + {len(parts)} parts: first call "
          f"{cold_ms:.1f} ms, then {warm_ms:.1f} ms/call")


@pytest.mark.parametrize("searcher", [RandomSearcher(), TPESearcher(n_startup=5)], ids=["random", "tpe"])
def test_running_trials_sent_without_params_change_nothing_for_a_searcher_that_ignores_the_history(
        searcher: Any) -> None:
    """The sweep leaves out a running trial's params when its searcher ignores the history: the
    same answer (promotions, new points, deletions, trials ahead), a smaller request. A searcher that
    reads the history sees running trials as pending points, so it gets them."""
    rows = big_sweep(600, 60, seed=5)
    kw: dict[str, Any] = dict(scheduler=ASHA, searcher=searcher, space=SPACE, seed=0, direction="minimize",
                              next_index=600, max_trials=700, slots=8, ahead=8)
    full = PlanRequest(rows=[PlanRow.of(r) for r in rows], **kw)
    lean = PlanRequest(rows=[PlanRow.of(r, with_params=searcher.uses_history or r.state != "training")
                             for r in rows], **kw)
    if searcher.uses_history:
        assert lean == full
    else:
        assert len(lean.model_dump_json()) < len(full.model_dump_json())
    answer = plan_next(full)
    assert answer.actions and answer.ahead
    assert plan_next(lean).model_dump() == answer.model_dump()


def test_final_deletes_a_trial_that_failed_toward_its_top_rung_but_keeps_finished_ones() -> None:
    """At the end a trial that reported at its bracket's top rung is a finished model and keeps its
    checkpoints; one that failed toward the top rung (it reported only below it) does not."""
    from temporal_ml.search import RandomSearcher

    sched = AshaScheduler(min_budget=1, max_budget=9, eta=3)  # rungs 1, 3, 9

    def row(index: int, state: str, values: list[float]) -> PlanRow:
        rung = len(values) if state == "failed" else len(values) - 1
        return PlanRow(index=index, params={"hparams.x": 0.1 * index}, state=state, rung=rung,  # type: ignore[arg-type]
                       rung_values=values, rung_seqs=list(range(10 * index, 10 * index + len(values))),
                       step=[1, 3, 9][len(values) - 1], checkpointed=True)

    rows = [row(0, "done", [0.1, 0.1, 0.1]), row(1, "done", [0.5, 0.4, 0.3]), row(2, "failed", [0.2, 0.2]),
            row(3, "done", [0.9])]
    req = PlanRequest(scheduler=sched, searcher=RandomSearcher(), space=SearchSpace({"hparams.x": Float(0, 1)}),
                      seed=0, direction="minimize", rows=rows, next_index=4, max_trials=4, slots=0,
                      results_seen=100, final=True)
    assert [d.index for d in plan_next(req).delete] == [2, 3]  # t0 (best) and t1 reached the top rung
