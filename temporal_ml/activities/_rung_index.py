"""A sweep's rung table kept sorted as rows come and go, and a worker's index of each sweep's.

The ``PLAN`` activity (:mod:`temporal_ml.activities.plan`) answers from the rung table of every
trial of a sweep: those the sweep holds (running, or finished and not yet written) and those in its
results table. Rebuilding that table on every call costs O(N log N) in Python (about 45 ms at
10,000 trials, on each of the ~14,000 calls of a 10,000-trial ASHA sweep), and so does ranking
its rungs. A :class:`RungIndex` instead keeps each rung's results in rank order as rows are put,
replaced or taken away (a bisection each), with the counts the plan needs; a worker keeps one per
sweep for the rows written so far (:func:`written_index`), adds only the parts written since its
last call, and puts the rows the sweep holds over it for the call (:meth:`RungIndex.overlay`), taking
them out after (no copy per call).

The index keeps its rows as columns (``array`` and ``bytearray``: about 0.27 KB a trial, against
0.9 KB as one Python object per row and per rank key), so what a worker holds for a sweep grows
little with its trials; the plan's :class:`RungTable` reads the columns (nothing is built per
call), and :attr:`RungIndex.rows` makes a row again when asked.

Ranks are those of :meth:`RungTable.ranking <temporal_ml.search.RungTable.ranking>`: the better
value first, NaN last, ties to the earlier report (its sequence number), then the lower index.

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
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import compress
from typing import Any, Protocol

from pydantic import JsonValue

from temporal_ml.search import Direction, RungTable, SweepScheduler, TrialRecord
from temporal_ml.search._rungs import Bracket, Rung
from temporal_ml.sweeps import TrialRow, TrialState, rung_record, trial_name

__all__ = ["RungIndex", "IndexRow", "WrittenRow", "written_index", "rows_held", "ROWS_MAX"]


class IndexRow(Protocol):
    """What the index reads of a row (:class:`~temporal_ml.activities.plan.PlanRow` and
    :class:`WrittenRow` have it)."""

    index: int
    state: Any
    bracket: int
    rung: int
    step: int
    checkpoint_bytes: int
    deleted: bool
    checkpointed: bool

    @property
    def rung_values(self) -> Any: ...

    @property
    def rung_seqs(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class WrittenRow:
    """A row of the results table as the plan reads it: :class:`~temporal_ml.activities.plan.PlanRow`'s
    fields, and the part it came from (``part``: a promotion or a deletion reads the full row there
    again). A :class:`RungIndex` keeps it as columns and makes it again when asked
    (:attr:`RungIndex.rows`); the parameters are their values (``param_values``) under a tuple of
    names that the index's rows with the same names share; :attr:`params` is their dict."""

    index: int
    param_names: tuple[str, ...]
    param_values: tuple[JsonValue, ...]
    state: TrialState
    bracket: int
    rung: int
    rung_values: tuple[float, ...]
    rung_seqs: tuple[int, ...]
    step: int
    checkpoint_bytes: int
    deleted: bool
    checkpointed: bool
    part: int

    @classmethod
    def of(cls, row: TrialRow, part: int) -> WrittenRow:
        return cls(index=row.index, param_names=tuple(row.params), param_values=tuple(row.params.values()),
                   state=row.state, bracket=row.bracket, rung=row.rung or 0, rung_values=tuple(row.rung_values),
                   rung_seqs=tuple(row.rung_seqs), step=row.step, checkpoint_bytes=row.checkpoint_bytes,
                   deleted=row.deleted, part=part, checkpointed=row.has_checkpoint)

    @property
    def params(self) -> dict[str, JsonValue]:
        """The trial's parameters (a new dict on each read)."""
        return dict(zip(self.param_names, self.param_values, strict=True))

    @property
    def running(self) -> bool:
        return self.state in ("training", "evaluating")

    def record(self) -> TrialRecord:
        """What the searcher is told (as :meth:`PlanRow.record <temporal_ml.activities.plan.PlanRow.record>`)."""
        return rung_record(self.index, self.params, list(self.rung_values), self.running, self.bracket)


_STATES: tuple[TrialState, ...] = ("training", "evaluating", "done", "failed", "stopped")
_CODE = {s: i for i, s in enumerate(_STATES)}
_RUNNING = (_CODE["training"], _CODE["evaluating"])
_DONE = _CODE["done"]
_ABSENT = 255  # the state code of an index with no row
_PRESENT = bytes([1] * _ABSENT + [0])  # state code -> 1 where a row is
_DELETED, _CHECKPOINTED = 1, 2  # flag bits
_INDEX_BITS, _SEQ_BITS = 21, 40
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_SEQ_ZERO = 1 << (_SEQ_BITS - 1)  # a sequence number's offset in a rank key (some are negative)
_NAN = 1 << 62


class _Ranked:
    """Entries in rank order, as parallel columns: ``p`` the value as it sorts (the better lower,
    NaN as +inf), ``s`` the tie-breaks as one int (NaN bit, then the sequence number, then the
    trial's index), ``raw`` the value reported, ``names`` the trial's name."""

    __slots__ = ("p", "s", "raw", "names")

    def __init__(self) -> None:
        self.p, self.s, self.raw, self.names = array("d"), array("q"), array("d"), list[str]()

    def _at(self, p: float, s: int) -> int:
        lo = bisect_left(self.p, p)
        return bisect_left(self.s, s, lo, bisect_right(self.p, p, lo))

    def insert(self, p: float, s: int, raw: float, name: str) -> None:
        at = self._at(p, s)
        self.p.insert(at, p)
        self.s.insert(at, s)
        self.raw.insert(at, raw)
        self.names.insert(at, name)

    def remove(self, p: float, s: int) -> None:
        at = self._at(p, s)
        assert at < len(self.s) and self.s[at] == s, "the rung index lost an entry"
        del self.p[at], self.s[at], self.raw[at], self.names[at]

    def merge(self, entries: list[tuple[float, int, float, str]]) -> None:
        """Insert many at once (one sort)."""
        entries.extend(zip(self.p, self.s, self.raw, self.names, strict=True))
        entries.sort()
        self.p = array("d", [e[0] for e in entries])
        self.s = array("q", [e[1] for e in entries])
        self.raw = array("d", [e[2] for e in entries])
        self.names = [e[3] for e in entries]


class RungIndex:
    """The rung table of a set of rows, kept in rank order, and what the plan counts of them.

    Attributes:
        rows: the rows by index (a row put again replaces the earlier one): a row put as a
            :class:`WrittenRow` comes back as a new one made from the columns, any other (the
            :class:`~temporal_ml.activities.plan.PlanRow` a sweep holds) as the object put.
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
        self._ranked = [[_Ranked() for _ in range(n)] for n in shape]
        self._promoted: list[list[dict[str, None]]] = [[{} for _ in range(n)] for n in shape]
        self._running: list[list[dict[str, None]]] = [[{} for _ in range(n)] for n in shape]
        self._done: dict[int, _Ranked] = {}  # finished rows by step, the result's best first
        # the rows, one column per field, by index
        self._state = bytearray()
        self._bracket, self._rung, self._nvals = array("H"), array("H"), array("H")
        self._step, self._cbytes, self._part = array("q"), array("q"), array("q")
        self._flags, self._pset = bytearray(), array("H")
        self._values: list[array[float]] = []  # by rung reached
        self._seqs: list[array[int]] = []
        self._param_sets: list[tuple[str, ...]] = []
        self._param_cols: dict[str, Any] = {}  # array("d") while every value is a float, else a list
        self._names: list[str] = []
        self._held: dict[int, Any] = {}  # rows put as objects other than WrittenRow
        self._count = 0
        self.running_rows: set[int] = set()
        self.complete = self.failed = self.pending = 0
        self.rows: Mapping[int, Any] = _Rows(self)

    def put(self, row: IndexRow) -> None:
        """Add ``row``, in place of the row of the same index if there is one."""
        self._take(row.index)
        self._add(row, None)

    def put_all(self, rows: Any) -> None:
        """:meth:`put` each of ``rows`` (the last of an index wins); many at once are sorted in
        once rather than one by one."""
        latest = {row.index: row for row in rows}
        if len(latest) < 64 or len(latest) * 4 < self._count:  # a few among many: bisect each in
            for row in latest.values():
                self.put(row)
            return
        for i in latest:
            self._take(i)
        self._grow(max(latest) + 1)
        pending: dict[_Ranked, list[tuple[float, int, float, str]]] = {}
        for row in latest.values():
            self._add(row, pending)
        for ranked, entries in pending.items():
            ranked.merge(entries)

    def overlay(self, rows: Any) -> Callable[[], None]:
        """:meth:`put_all` ``rows``, and return the function that takes them out again, putting
        back the rows they replaced (each rank, count and column as it was)."""
        latest = {row.index: row for row in rows}
        replaced = {i: self.rows[i] if i in self.rows else None for i in latest}
        self.put_all(latest.values())

        def restore() -> None:
            for i, row in replaced.items():
                self._take(i)
                if row is not None:
                    self._add(row, None)
        return restore

    def best_done(self) -> int | None:
        """The finished row the result names best (most steps, then the better value, NaN last,
        then the lower index), or ``None``."""
        steps = [step for step, r in self._done.items() if r.s]
        return self._done[max(steps)].s[0] & _INDEX_MASK if steps else None

    def table(self, *, in_report_order: bool = False) -> RungTable:
        """The rung table, its rankings seeded (:meth:`RungTable.seed_rankings`). Its results and
        trials' brackets read this index's columns (nothing is built: the plan's table), so use
        it before the index changes; or pass ``in_report_order`` for a table of its own, each
        rung's results in the order reported, as a table kept in a workflow's state holds them."""
        rungs = []
        ranked: dict[tuple[int, int], list[str]] = {}
        for b, budgets in enumerate(self._budgets):
            bracket = []
            for k, budget in enumerate(budgets):
                r = self._ranked[b][k]
                results: Mapping[str, float]
                if in_report_order:
                    order = sorted(range(len(r.s)), key=lambda j, s=r.s: (s[j] & ~_NAN))  # type: ignore[misc]
                    results = {r.names[j]: r.raw[j] for j in order}
                else:
                    results = _RungResults(self, b, k)
                bracket.append(Rung.model_construct(budget=budget, results=results, running=list(self._running[b][k]),
                                                    promoted=list(self._promoted[b][k])))
                ranked[(b, k)] = list(r.names) if in_report_order else r.names
            rungs.append(Bracket.model_construct(rungs=bracket))
        brackets = _TrialBrackets(self)
        table = RungTable.model_construct(direction=self.direction, closed=False,
                                          trial_bracket=dict(brackets.items()) if in_report_order else brackets,
                                          brackets=rungs)
        table.seed_rankings(ranked)
        return table

    def _index_of(self, name: object) -> int:
        """The index of the row named ``name`` (``t0007``), or -1 where there is none."""
        if not isinstance(name, str) or not name[1:].isdigit():
            return -1
        i = int(name[1:])
        return i if i < len(self._state) and self._state[i] != _ABSENT and self._names[i] == name else -1

    # -- what the plan reads of a row without making it ---------------------------------------------

    def rung_of(self, index: int) -> int:
        return self._rung[index]

    def bracket_of(self, index: int) -> int:
        return self._bracket[index]

    def checkpoint_bytes_of(self, index: int) -> int:
        return self._cbytes[index]

    def deleted_of(self, index: int) -> bool:
        return bool(self._flags[index] & _DELETED)

    def still_at(self, pairs: Any) -> Iterator[tuple[int, str, int]]:
        """(index, trial id, rung) of each (trial id, rung) of ``pairs`` whose trial is at that
        rung and has checkpoints not deleted (one loop over the columns: most are long deleted)."""
        flags, rungs = self._flags, self._rung
        for tid, rung in pairs:
            i = int(tid[1:])
            if flags[i] & (_DELETED | _CHECKPOINTED) == _CHECKPOINTED and rungs[i] == rung:
                yield i, tid, rung

    # -- one row in or out ---------------------------------------------------------------------------

    def _key(self, value: float, seq: int, index: int) -> tuple[float, int]:
        """``value``'s place in a rung: (the value as it sorts, the better lower and NaN as +inf;
        its NaN bit, sequence number and index as one int)."""
        order = seq + _SEQ_ZERO  # (-1: a PBT member that failed in a round has no seq there)
        if not 0 <= order < 1 << _SEQ_BITS:
            raise ValueError(f"trial {index}: rung sequence number {seq} is out of range")
        if math.isnan(value):
            return math.inf, _NAN | order << _INDEX_BITS | index
        return (value if self._sign > 0 else -value), order << _INDEX_BITS | index

    def _grow(self, n: int) -> None:
        """Room for the rows of indices below ``n`` (and some more: growing by one row at a time
        extends every column each time)."""
        start = len(self._state)
        if n <= start:
            return
        n = max(n, start + start // 8 + 64)
        more = n - start
        self._state.extend(bytes([_ABSENT]) * more)
        self._flags.extend(bytes(more))
        for col in (self._bracket, self._rung, self._nvals, self._pset):
            col.extend(array(col.typecode, bytes(col.itemsize * more)))
        for col in (self._step, self._cbytes, self._part):
            col.extend(array(col.typecode, bytes(col.itemsize * more)))
        for values in self._values:
            values.extend(array("d", [math.nan]) * more)
        for seqs in self._seqs:
            seqs.extend(array("q", bytes(8 * more)))
        for col in self._param_cols.values():
            col.extend(array("d", bytes(8 * more)) if isinstance(col, array) else [None] * more)
        self._names.extend(trial_name(i) for i in range(start, n))

    def _add(self, row: IndexRow, pending: dict[_Ranked, list[tuple[float, int, float, str]]] | None) -> None:
        """Put ``row`` (its index has no row); ``pending``: its rank entries to merge later."""
        i = row.index
        if not 0 <= i <= _INDEX_MASK:
            raise ValueError(f"trial index {i} is out of range")
        self._grow(i + 1)
        name, b, state = self._names[i], row.bracket, _CODE[row.state]
        values, seqs = row.rung_values, row.rung_seqs
        n = len(values)
        while len(self._values) < n:
            self._values.append(array("d", [math.nan]) * len(self._state))
            self._seqs.append(array("q", bytes(8 * len(self._state))))
        for k, (value, seq) in enumerate(zip(values, seqs, strict=True)):
            self._values[k][i], self._seqs[k][i] = value, seq
            self._rank(self._ranked[b][k], *self._key(value, seq, i), value, name, pending)
        for k in range(min(row.rung, n)):
            self._promoted[b][k][name] = None
        running = state in _RUNNING
        if running and n <= row.rung:
            self._running[b][row.rung][name] = None
        self._count_row(values[-1] if n else None, running, 1)
        if state == _DONE and n:
            self._rank(self._done_of(row.step), *self._done_key(values[-1], i), values[-1], name, pending)
        self._state[i], self._bracket[i], self._rung[i], self._nvals[i] = state, b, row.rung, n
        self._step[i], self._cbytes[i] = row.step, row.checkpoint_bytes
        self._flags[i] = (_DELETED if row.deleted else 0) | (_CHECKPOINTED if row.checkpointed else 0)
        if isinstance(row, WrittenRow):
            self._part[i] = row.part
            self._put_params(i, row.param_names, row.param_values)
        else:
            self._part[i] = -1
            self._held[i] = row
        if running:
            self.running_rows.add(i)
        self._count += 1

    @staticmethod
    def _rank(ranked: _Ranked, p: float, s: int, raw: float, name: str,
              pending: dict[_Ranked, list[tuple[float, int, float, str]]] | None) -> None:
        if pending is None:
            ranked.insert(p, s, raw, name)
        else:
            pending.setdefault(ranked, []).append((p, s, raw, name))

    def _take(self, i: int) -> None:
        """Take out the row of index ``i``, if there is one."""
        if i >= len(self._state) or self._state[i] == _ABSENT:
            return
        name, b, state, n, rung = self._names[i], self._bracket[i], self._state[i], self._nvals[i], self._rung[i]
        for k in range(n):
            self._ranked[b][k].remove(*self._key(self._values[k][i], self._seqs[k][i], i))
        for k in range(min(rung, n)):
            del self._promoted[b][k][name]
        running = state in _RUNNING
        if running and n <= rung:
            del self._running[b][rung][name]
        last = self._values[n - 1][i] if n else None
        self._count_row(last, running, -1)
        if state == _DONE and last is not None:
            self._done_of(self._step[i]).remove(*self._done_key(last, i))
        self._state[i] = _ABSENT
        self._held.pop(i, None)
        self.running_rows.discard(i)
        self._count -= 1

    def _count_row(self, last: float | None, running: bool, step: int) -> None:
        if last is not None and math.isfinite(last):
            self.complete += step
        elif running:
            self.pending += step
        else:
            self.failed += step

    def _done_of(self, step: int) -> _Ranked:
        ranked = self._done.get(step)
        if ranked is None:
            ranked = self._done[step] = _Ranked()
        return ranked

    def _done_key(self, value: float, index: int) -> tuple[float, int]:
        if math.isnan(value):
            return math.inf, _NAN | index
        return (value if self._sign > 0 else -value), index

    def _put_params(self, i: int, names: tuple[str, ...], values: tuple[JsonValue, ...]) -> None:
        try:
            pset = self._param_sets.index(names)
        except ValueError:
            pset = len(self._param_sets)
            if pset > 0xFFFF:
                raise ValueError("more than 65,535 sets of parameter names in one sweep") from None
            self._param_sets.append(names)
        self._pset[i] = pset
        for name, value in zip(names, values, strict=True):
            col: Any = self._param_cols.get(name)
            if col is None:
                col = self._param_cols[name] = array("d", bytes(8 * len(self._state)))
            if isinstance(col, array) and type(value) is not float:
                col = self._param_cols[name] = col.tolist()
            col[i] = value

    def _written(self, i: int) -> WrittenRow:
        names = self._param_sets[self._pset[i]]
        n, flags = self._nvals[i], self._flags[i]
        return WrittenRow(
            index=i, param_names=names, param_values=tuple(self._param_cols[name][i] for name in names),
            state=_STATES[self._state[i]], bracket=self._bracket[i], rung=self._rung[i],
            rung_values=tuple(self._values[k][i] for k in range(n)), rung_seqs=tuple(self._seqs[k][i] for k in range(n)),
            step=self._step[i], checkpoint_bytes=self._cbytes[i], deleted=bool(flags & _DELETED),
            checkpointed=bool(flags & _CHECKPOINTED), part=self._part[i])


class _RungResults(Mapping[str, float]):
    """One rung's results as the plan's :class:`RungTable` reads them: from the index's columns
    (best first)."""

    def __init__(self, index: RungIndex, bracket: int, rung: int) -> None:
        self._index, self._bracket, self._rung = index, bracket, rung
        self._names = index._ranked[bracket][rung].names

    def __getitem__(self, name: str) -> float:
        index, i = self._index, self._index._index_of(name)
        if i < 0 or index._bracket[i] != self._bracket or index._nvals[i] <= self._rung:
            raise KeyError(name)
        return index._values[self._rung][i]

    def __contains__(self, name: object) -> bool:
        index, i = self._index, self._index._index_of(name)
        return i >= 0 and index._bracket[i] == self._bracket and index._nvals[i] > self._rung

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _TrialBrackets(MutableMapping[str, int]):
    """Each trial's bracket, as the plan's :class:`RungTable` reads them: the index's column, and
    the trials the plan starts (kept apart: the index is left as it was)."""

    def __init__(self, index: RungIndex) -> None:
        self._index = index
        self._started: dict[str, int] = {}

    def __getitem__(self, name: str) -> int:
        i = self._index._index_of(name)
        return self._index._bracket[i] if i >= 0 else self._started[name]

    def __contains__(self, name: object) -> bool:
        return self._index._index_of(name) >= 0 or name in self._started

    def __setitem__(self, name: str, bracket: int) -> None:
        if self._index._index_of(name) >= 0:
            raise ValueError(f"trial {name!r} is already in the table")
        self._started[name] = bracket

    def __delitem__(self, name: str) -> None:
        raise TypeError("a trial stays in the rung table")

    def __iter__(self) -> Iterator[str]:
        index = self._index
        yield from compress(index._names, index._state.translate(_PRESENT))
        yield from self._started

    def __len__(self) -> int:
        return self._index._count + len(self._started)

    def values(self) -> list[int]:  # type: ignore[override]
        """Every trial's bracket (read in C; what ``AshaScheduler.dead`` counts)."""
        index = self._index
        return [*compress(index._bracket, index._state.translate(_PRESENT)), *self._started.values()]

    def items(self) -> list[tuple[str, int]]:  # type: ignore[override]
        index = self._index
        present = index._state.translate(_PRESENT)
        return [*compress(zip(index._names, index._bracket, strict=True), present), *self._started.items()]


class _Rows(Mapping[int, Any]):
    """:attr:`RungIndex.rows`: each row made when asked (in index order)."""

    def __init__(self, index: RungIndex) -> None:
        self._index = index

    def __contains__(self, i: object) -> bool:
        state = self._index._state
        return isinstance(i, int) and 0 <= i < len(state) and state[i] != _ABSENT

    def __getitem__(self, i: int) -> Any:
        if i not in self:
            raise KeyError(i)
        held = self._index._held.get(i)
        return held if held is not None else self._index._written(i)

    def __iter__(self) -> Iterator[int]:
        return (i for i, c in enumerate(self._index._state) if c != _ABSENT)

    def __len__(self) -> int:
        return self._index._count


# -- a worker's index of each sweep's written rows ---------------------------------------------------

#: Written rows a worker keeps indexed, over every sweep, at most (about 0.28 KB each with two
#: parameters and one to three rung results: about 85 MB at most); a sweep whose table is larger is
#: indexed again on each call.
ROWS_MAX = 300_000


@dataclass
class _Written:
    index: RungIndex
    parts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_WRITTEN: OrderedDict[tuple[str, str, str], _Written] = OrderedDict()  # the most recently used last
_WRITTEN_LOCK = threading.Lock()


@contextmanager
def written_index(uri: str, parts: list[str], scheduler: SweepScheduler, direction: Direction,
                  storage_options: dict[str, Any] | None, convert: Any, held: Any = ()) -> Iterator[RungIndex]:
    """The worker's index of the rows written in ``parts`` of the table at ``uri`` (each part
    verified against its digest; ``convert(raw_row, part)`` makes the row the index keeps), with
    ``held`` (the rows the sweep holds: newer) put over it, for the block only: the index is the
    worker's own, locked meanwhile (no copy: a copy of every column on each call fragments
    malloc's arenas), and the held rows are taken out again when the block ends. Parts added since
    the last call are read and put; another list of parts (not extending the one indexed) is indexed
    from the start.

    Example:
        with written_index(uri, parts, scheduler, "minimize", None, convert, held=rows) as index:
            table = index.table()  # use it inside the block only
    """
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
            restore = entry.index.overlay(held)
            try:
                yield entry.index
            finally:
                restore()
    except BaseException:
        with _WRITTEN_LOCK:
            if _WRITTEN.get(key) is entry:
                del _WRITTEN[key]
        raise
    with _WRITTEN_LOCK:
        while _WRITTEN and sum(len(e.index.rows) for e in _WRITTEN.values()) > ROWS_MAX:
            _WRITTEN.popitem(last=False)  # the least recently used (this one last: alone, over the cap)


def rows_held() -> int:
    """Written rows this worker keeps indexed now."""
    with _WRITTEN_LOCK:
        return sum(len(e.index.rows) for e in _WRITTEN.values())
