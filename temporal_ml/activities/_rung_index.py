"""A sweep's rung table kept sorted as rows come and go, and a worker's copy of each sweep's.

The ``PLAN`` activity (:mod:`temporal_ml.activities.plan`) answers from the rung table of every
trial of a sweep: those the sweep holds (running, or finished and not yet written) and those in its
results table. Rebuilding that table on every call costs O(N log N) in Python (about 45 ms at
10,000 trials, on each of the ~14,000 calls of a 10,000-trial ASHA sweep), and so does ranking
its rungs. A :class:`RungIndex` instead keeps each rung's results in rank order as rows are put,
replaced or taken away (a bisection each), with the counts the plan needs; a worker keeps one per
sweep for the rows written so far (:func:`written_index`), adds only the parts written since its
last call, and hands each call a copy (C-level dict and list copies: about a millisecond at 10,000
trials) that the call overlays with the rows the sweep holds.

Ranks are those of :meth:`RungTable.ranking <temporal_ml.search.RungTable.ranking>`: the better
value first, NaN last, ties to the earlier report (its sequence number), then the name.

Example:
    >>> from temporal_ml.activities.plan import PlanRow
    >>> from temporal_ml.search import AshaScheduler
    >>> index = RungIndex(AshaScheduler(min_budget=1, max_budget=9), "minimize")
    >>> for i, v in enumerate([0.5, 0.2, 0.9]):
    ...     index.put(PlanRow(index=i, params={}, state="done", rung_values=[v], rung_seqs=[i]))
    >>> index.table().ranking(0, 0)
    ['t0001', 't0000', 't0002']
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from temporal_ml.search import Direction, RungTable, SweepScheduler
from temporal_ml.search._rungs import Bracket, Rung
from temporal_ml.sweeps import trial_name

__all__ = ["RungIndex", "IndexRow", "written_index", "rows_held", "ROWS_MAX"]


class IndexRow(Protocol):
    """What the index reads of a row (:class:`~temporal_ml.activities.plan.PlanRow` and the
    compact ``WrittenRow`` have it)."""

    index: int
    state: Any
    bracket: int
    rung: int
    step: int

    @property
    def rung_values(self) -> Any: ...

    @property
    def rung_seqs(self) -> Any: ...

    @property
    def running(self) -> bool: ...


RankKey = tuple[bool, float, int, str]


class RungIndex:
    """The rung table of a set of rows, kept in rank order, and what the plan counts of them.

    Attributes:
        rows: the rows by index (a row put again replaces the earlier one).
        running_rows: indices of rows that are training or evaluating.
        complete / failed / pending: what a searcher is told of the rows (``rung_record``): a
            finite value at the highest rung reached, else running, else neither.
    """

    def __init__(self, scheduler: SweepScheduler, direction: Direction) -> None:
        template = scheduler.new_table(direction)
        self.direction: Direction = direction
        self._budgets = [[r.budget for r in bracket.rungs] for bracket in template.brackets]
        self._sign = 1.0 if direction == "minimize" else -1.0
        shape = [len(b) for b in self._budgets]
        self.rows: dict[int, Any] = {}
        self._results: list[list[dict[str, float]]] = [[{} for _ in range(n)] for n in shape]
        self._keys: list[list[list[RankKey]]] = [[[] for _ in range(n)] for n in shape]
        self._names: list[list[list[str]]] = [[[] for _ in range(n)] for n in shape]  # parallel to _keys
        self._promoted: list[list[dict[str, None]]] = [[{} for _ in range(n)] for n in shape]
        self._running: list[list[dict[str, None]]] = [[{} for _ in range(n)] for n in shape]
        self._trial_bracket: dict[str, int] = {}
        self._done: list[tuple[int, bool, float, int]] = []  # finished rows, the result's best first
        self.running_rows: set[int] = set()
        self.complete = self.failed = self.pending = 0

    def copy(self) -> RungIndex:
        """An independent copy (dicts and lists copied; rows and keys are immutable, shared)."""
        new = RungIndex.__new__(RungIndex)
        new.direction, new._budgets, new._sign = self.direction, self._budgets, self._sign
        new.rows = dict(self.rows)
        new._results = [[dict(d) for d in b] for b in self._results]
        new._keys = [[list(x) for x in b] for b in self._keys]
        new._names = [[list(x) for x in b] for b in self._names]
        new._promoted = [[dict(d) for d in b] for b in self._promoted]
        new._running = [[dict(d) for d in b] for b in self._running]
        new._trial_bracket = dict(self._trial_bracket)
        new._done = list(self._done)
        new.running_rows = set(self.running_rows)
        new.complete, new.failed, new.pending = self.complete, self.failed, self.pending
        return new

    def put(self, row: IndexRow) -> None:
        """Add ``row``, in place of the row of the same index if there is one."""
        old = self.rows.get(row.index)
        if old is not None:
            self._apply(old, remove=True)
        self._apply(row, remove=False)

    def put_all(self, rows: Any) -> None:
        """:meth:`put` each of ``rows`` (the last of an index wins); many at once are sorted in
        once rather than one by one."""
        latest = {row.index: row for row in rows}
        if len(latest) < 64 or len(latest) * 4 < len(self.rows):  # a few among many: bisect each in
            for row in latest.values():
                self.put(row)
            return
        for i in latest:
            old = self.rows.get(i)
            if old is not None:
                self._apply(old, remove=True)
        for row in latest.values():
            self._apply(row, remove=False, append=True)
        for keys_of, names_of in zip(self._keys, self._names, strict=True):
            for keys, names in zip(keys_of, names_of, strict=True):
                keys.sort()
                names[:] = [key[3] for key in keys]
        self._done.sort()

    def best_done(self) -> int | None:
        """The finished row the result names best (most steps, then the better value, NaN last,
        then the lower index), or ``None``."""
        return self._done[0][3] if self._done else None

    def table(self, *, in_report_order: bool = False) -> RungTable:
        """The rung table, its rankings seeded (:meth:`RungTable.seed_rankings`). The table
        shares this index's results: take it from a copy, or pass ``in_report_order`` (each rung's
        results in the order reported, as a table kept in a workflow's state holds them)."""
        rungs = []
        ranked: dict[tuple[int, int], list[str]] = {}
        for b, budgets in enumerate(self._budgets):
            bracket = []
            for k, budget in enumerate(budgets):
                results = self._results[b][k]
                if in_report_order:
                    results = {key[3]: results[key[3]] for key in sorted(self._keys[b][k], key=lambda x: (x[2], x[3]))}
                bracket.append(Rung.model_construct(budget=budget, results=results, running=list(self._running[b][k]),
                                                    promoted=list(self._promoted[b][k])))
                ranked[(b, k)] = self._names[b][k] if not in_report_order else list(self._names[b][k])
            rungs.append(Bracket.model_construct(rungs=bracket))
        table = RungTable.model_construct(direction=self.direction, closed=False,
                                          trial_bracket=self._trial_bracket if not in_report_order
                                          else dict(self._trial_bracket), brackets=rungs)
        table.seed_rankings(ranked)
        return table

    # -- one row in or out ---------------------------------------------------------------------------

    def _ordered(self, value: float) -> tuple[bool, float]:
        """``value`` as it sorts: the better first, NaN last (minimizing, the row's own float: no
        copy of it is kept)."""
        nan = math.isnan(value)
        return nan, 0.0 if nan else value if self._sign > 0 else -value

    def _rank_key(self, value: float, seq: int, name: str) -> RankKey:
        return (*self._ordered(value), seq, name)

    def _apply(self, row: IndexRow, *, remove: bool, append: bool = False) -> None:
        """Put ``row``'s part in the table, or take it out (``remove``); ``append``: at the end of
        each list, to be sorted after (:meth:`put_all`)."""
        name, b = trial_name(row.index), row.bracket
        values = row.rung_values
        for k, (value, seq) in enumerate(zip(values, row.rung_seqs, strict=True)):
            keys, names, key = self._keys[b][k], self._names[b][k], self._rank_key(value, seq, name)
            at = len(keys) if append else bisect_left(keys, key)
            if remove:
                del self._results[b][k][name], keys[at], names[at]
            else:
                self._results[b][k][name] = value
                keys.insert(at, key)
                names.insert(at, name)
        for k in range(min(row.rung, len(values))):
            if remove:
                del self._promoted[b][k][name]
            else:
                self._promoted[b][k][name] = None
        running = row.running
        if running and len(values) <= row.rung:
            if remove:
                del self._running[b][row.rung][name]
            else:
                self._running[b][row.rung][name] = None
        step = 1 if not remove else -1
        if values and math.isfinite(values[-1]):
            self.complete += step
        elif running:
            self.pending += step
        else:
            self.failed += step
        if row.state == "done" and values:
            done_key = (-row.step, *self._ordered(values[-1]), row.index)
            at = len(self._done) if append else bisect_left(self._done, done_key)
            if remove:
                del self._done[at]
            else:
                self._done.insert(at, done_key)
        if remove:
            del self.rows[row.index], self._trial_bracket[name]
            self.running_rows.discard(row.index)
        else:
            self.rows[row.index] = row
            self._trial_bracket[name] = b
            if running:
                self.running_rows.add(row.index)


# -- a worker's index of each sweep's written rows ---------------------------------------------------

#: Written rows a worker keeps indexed, over every sweep, at most (about 0.85 KB each with two
#: parameters: 85 MB at most); a sweep whose table is larger is indexed again on each call.
ROWS_MAX = 100_000


@dataclass
class _Written:
    index: RungIndex
    parts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_WRITTEN: OrderedDict[tuple[str, str, str], _Written] = OrderedDict()  # the most recently used last
_WRITTEN_LOCK = threading.Lock()


def written_index(uri: str, parts: list[str], scheduler: SweepScheduler, direction: Direction,
                  storage_options: dict[str, Any] | None, convert: Any) -> RungIndex:
    """A copy of the index of the rows written in ``parts`` of the table at ``uri`` (each part
    verified against its digest; ``convert(raw_row, part)`` makes the row the index keeps). Parts
    added since the last call are read and put; another list of parts (not extending the one
    indexed) is indexed from the start."""
    from temporal_ml.activities.sweep import read_table_part

    key = (uri, scheduler.model_dump_json(), direction)
    with _WRITTEN_LOCK:
        entry = _WRITTEN.pop(key, None)
        if entry is None or parts[:len(entry.parts)] != entry.parts:
            entry = _Written(RungIndex(scheduler, direction))
        _WRITTEN[key] = entry
    try:
        with entry.lock:
            for k in range(len(entry.parts), len(parts)):
                rows = [convert(raw, k) for raw in read_table_part(uri, k, parts[k], storage_options)]
                entry.index.put_all(rows)  # (converted first: a bad row leaves the index as it was)
                entry.parts.append(parts[k])
            out = entry.index.copy()
    except BaseException:
        with _WRITTEN_LOCK:
            if _WRITTEN.get(key) is entry:
                del _WRITTEN[key]
        raise
    with _WRITTEN_LOCK:
        while _WRITTEN and sum(len(e.index.rows) for e in _WRITTEN.values()) > ROWS_MAX:
            _WRITTEN.popitem(last=False)  # the least recently used (this one last: alone, over the cap)
    return out


def rows_held() -> int:
    """Written rows this worker keeps indexed now."""
    with _WRITTEN_LOCK:
        return sum(len(e.index.rows) for e in _WRITTEN.values())
