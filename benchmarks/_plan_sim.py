"""A scheduled sweep as the ``PLAN`` activity sees it, without Temporal, and this process's memory.

Shared by ``bench_plan.py`` (the plan's cost) and ``bench_plan_memory.py`` (a worker's memory): free
slots ask ``plan_next`` for actions, the sweep applies them (starts, promotions, and deletions of
checkpoints, bringing a written row back as the sweep does), trials end in a random order with a
checkpoint each, and every ``PART_ROWS`` finished rows go to a results table part.

Example:
    sim = SimulatedSweep()
    while sim.slots(100):
        got = plan_next(sim.request(**common))
        if not sim.apply(got):
            break
        sim.finish_one()
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import re
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from pydantic_core import to_json

from temporal_ml.activities.plan import PlanRequest, PlanResult, PlanRow
from temporal_ml.sweeps import TrialRow

PART_ROWS = 100


class SimulatedSweep:
    """The rows a sweep holds, its table's parts and its running trials (``keep_written``: also
    every written row, by index, for a rebuild from every row)."""

    def __init__(self, *, keep_written: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tml-bench-plan-"))
        self.parts: list[str] = []
        self.held: dict[int, TrialRow] = {}
        self.written: dict[int, TrialRow] | None = {} if keep_written else None
        self.running: list[int] = []
        self.rng = random.Random(0)
        self.seq = self.started = 0

    def slots(self, concurrency: int) -> int:
        return concurrency - len(self.running)

    def request(self, **common: Any) -> PlanRequest:
        """A plan request as the sweep sends it: the rows it holds and its table's parts."""
        return PlanRequest(rows=[PlanRow.of(r) for r in self.held.values()],
                           table_uri=str(self.root) if self.parts else None, table_parts=list(self.parts),
                           next_index=self.started, results_seen=self.seq, **common)

    def apply(self, got: PlanResult) -> bool:
        """Start and promote as ``got`` says, mark its deletions; whether the sweep goes on."""
        for a in got.actions:
            if a.action == "start":
                row = self.held[a.index] = TrialRow(index=a.index, params=a.params, bracket=a.bracket, rung=0)
                self.started += 1
            else:
                row = self.held.get(a.index) or a.row  # type: ignore[assignment]
                self.held[a.index] = row
                row.state = "training"
            row.rung, row.max_steps = a.rung, a.budget
            self.running.append(a.index)
        for d in got.delete:  # the sweep brings a written row back and marks it deleted
            row = self.held.get(d.index) or d.row  # type: ignore[assignment]
            self.held[d.index] = row
            if row.state not in ("training", "evaluating"):
                row.deleted = True
        return not got.done and bool(self.running)

    def finish_one(self) -> None:
        """A random running trial reports its rung; a part is written when enough rows finished."""
        index = self.running.pop(self.rng.randrange(len(self.running)))
        row = self.held[index]
        value = random.Random(f"{index}/{row.rung}").random()
        row.state, row.value, row.step, row.result_seq = "done", value, row.max_steps, self.seq
        row.checkpoint_uri, row.model_sha256 = "file:///ckpt", "ab" * 32
        row.rung_values.append(value)
        row.rung_seqs.append(self.seq)
        self.seq += 1
        finished = [r for r in self.held.values() if r.state == "done"][:PART_ROWS]
        if len(finished) == PART_ROWS:  # the sweep writes a part of its finished rows
            data = to_json([r.model_dump(mode="json") for r in finished], inf_nan_mode="strings")
            self.part_path(len(self.parts)).write_bytes(data)
            self.parts.append(hashlib.sha256(data).hexdigest())
            for r in finished:
                self.held.pop(r.index)
                if self.written is not None:
                    self.written[r.index] = r

    def part_path(self, k: int) -> Path:
        return self.root / f"part-{k:05d}.json"


# -- this process's memory ---------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def pymalloc_mb() -> tuple[float, float]:
    """CPython's small-object allocator now (``sys._debugmallocstats``): (its arenas, mapped on
    their own and not in :func:`malloc_mb`; the bytes in objects it holds) in MB. Arenas well
    over the bytes held are fragmentation: an arena is unmapped only once every object in it is
    freed. (0, 0) where it cannot be read."""
    with tempfile.TemporaryFile(mode="w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()

    arenas = re.search(r"(\d+) arenas \* (\d+) bytes/arena", text)
    held = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    return (int(arenas.group(1)) * int(arenas.group(2)) / 2**20 if arenas else 0.0,
            int(held.group(1).replace(",", "")) / 2**20 if held else 0.0)


def threads_now() -> int:
    """This process's threads, native ones included (Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


def malloc_mb() -> tuple[float, float]:
    """glibc malloc's memory now, over all arenas (``mallinfo2``): (in use, free in its arenas) in
    MB. In use counts what Python's objects over 512 bytes and the SDK's core hold; free is what
    fragmentation keeps resident. (0, 0) where it cannot be read (not glibc 2.33+)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return 0.0, 0.0
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


class Heaps(NamedTuple):
    """This process's allocators and threads at one moment (:meth:`now`), in MB."""

    malloc_used: float
    malloc_free: float
    pymalloc_arenas: float
    pymalloc_held: float
    threads: int

    @classmethod
    def now(cls) -> Heaps:
        return cls(*malloc_mb(), *pymalloc_mb(), threads_now())
