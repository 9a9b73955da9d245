"""What a trainable builds once per worker and data, not once per run: the worker's setup cache.

A sweep with a scheduler runs each trial in rungs, and every rung (and every evaluation) calls
:meth:`Trainable.setup` again. What that setup derives from the data alone (a tokenized training split,
a vocabulary) is the same each time, so it is kept at two levels:

* :class:`WorkerCache`: a bounded, thread-safe least-recently-used cache in the worker's memory
  (bounded by entries and by bytes). One per process by default (:meth:`WorkerCache.default`), shared
  by the training and evaluation activities of that process;
* the store (:class:`~temporal_ml.storage.array_cache.ArrayCache`): arrays keyed by content and
  verified like a snapshot, for the other workers and the next process.

A trainable reaches both through :attr:`TrainContext.cache` (a :class:`SetupCache`, ``None`` when the
run has none) and keys what it caches by content: the snapshot id (:attr:`TrainContext.snapshot_id`)
and every setting the result depends on. Only data-derived, immutable values belong here: the model,
optimizer and anything a run mutates are built by each run (exact resume depends on it).

Example (inside ``Trainable.setup``)::

    def build() -> Vocabulary: ...                        # seconds of work
    if ctx.cache is not None and ctx.snapshot_id is not None:
        vocab = ctx.cache.get_or_build({"kind": "vocab", "snapshot": ctx.snapshot_id}, build,
                                       encode=Vocabulary.to_arrays, decode=Vocabulary.from_arrays,
                                       nbytes=lambda v: v.nbytes)
    else:
        vocab = build()
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import JsonValue

from temporal_ml.errors import ConfigError, IntegrityError
from temporal_ml.storage.array_cache import ArrayCache, Built, CachedArrays, cache_key

__all__ = [
    "WorkerCache", "SetupCache", "CacheStats", "cached_snapshot", "DEFAULT_MAX_ENTRIES", "DEFAULT_MAX_BYTES",
]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Entries a :class:`WorkerCache` keeps by default.
DEFAULT_MAX_ENTRIES = 8
#: Bytes a :class:`WorkerCache` keeps by default (1 GiB).
DEFAULT_MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class CacheStats:
    """Counters of a :class:`WorkerCache` since it was made.

    Attributes:
        hits: lookups answered from memory.
        misses: lookups that had to load or build the value.
        builds: values built by their ``build`` function (neither in memory nor in the store).
        store_hits: values read (verified) from the store instead of being built.
        evictions: values dropped to stay within the bounds.
        entries / bytes: what the cache holds now.
    """

    hits: int = 0
    misses: int = 0
    builds: int = 0
    store_hits: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0


class WorkerCache:
    """A bounded, thread-safe LRU cache of set-up data, keyed by strings (content keys).

    A value larger than ``max_bytes`` is returned but not kept. Two threads asking for the same
    missing key build it once: the second waits for the first.

    Args:
        max_entries: values kept at most (0: keep nothing).
        max_bytes: bytes kept at most, as reported by each value's ``nbytes``.

    Example::

        cache = WorkerCache(max_entries=4, max_bytes=512 << 20)
        ids = cache.get_or_build("key", lambda: (tokenize(), 1_000_000))
        cache.stats().hits
    """

    _default: ClassVar[WorkerCache | None] = None
    _default_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ConfigError(f"cache bounds must be >= 0, got max_entries={max_entries}, max_bytes={max_bytes}")
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._values: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._counts = {"hits": 0, "misses": 0, "builds": 0, "store_hits": 0, "evictions": 0}

    @classmethod
    def default(cls) -> WorkerCache:
        """This process's cache (made on first use, with the default bounds)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def get(self, key: str) -> Any | None:
        """The value of ``key`` (now the most recently used), or ``None``."""
        with self._lock:
            found = self._values.get(key)
            if found is None:
                return None
            self._values.move_to_end(key)
            self._counts["hits"] += 1
            return found[0]

    def put(self, key: str, value: Any, nbytes: int) -> None:
        """Keep ``value`` (of ``nbytes`` bytes), evicting the least recently used beyond the bounds."""
        with self._lock:
            self._values.pop(key, None)
            if self.max_entries == 0 or nbytes > self.max_bytes:
                return
            self._values[key] = (value, int(nbytes))
            while len(self._values) > self.max_entries or self._held() > self.max_bytes:
                self._values.popitem(last=False)
                self._counts["evictions"] += 1

    def get_or_build(self, key: str, build: Callable[[], tuple[T, int]]) -> T:
        """The value of ``key``; on a miss ``build()`` returns ``(value, nbytes)`` and it is kept."""
        found = self.get(key)
        if found is not None:
            return found  # type: ignore[no-any-return]
        with self._lock:
            gate = self._building.setdefault(key, threading.Lock())
        with gate:  # one builder per key; the others wait and then find its value
            found = self.get(key)
            if found is not None:
                return found  # type: ignore[no-any-return]
            with self._lock:
                self._counts["misses"] += 1
            try:
                value, nbytes = build()
                self.put(key, value, nbytes)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return value

    def count(self, name: str) -> None:
        """Add one to counter ``name`` (``builds`` or ``store_hits``)."""
        with self._lock:
            self._counts[name] += 1

    def stats(self) -> CacheStats:
        """The counters and the current size."""
        with self._lock:
            return CacheStats(**self._counts, entries=len(self._values), bytes=self._held())

    def clear(self) -> None:
        """Drop every value (the counters stay)."""
        with self._lock:
            self._values.clear()

    def _held(self) -> int:
        return sum(n for _, n in self._values.values())


@dataclass(frozen=True)
class SetupCache:
    """What :attr:`TrainContext.cache` holds: the worker's memory cache and, optionally, the store.

    Attributes:
        memory: the worker's :class:`WorkerCache`.
        store: the store's :class:`ArrayCache` (``None``: memory only).
    """

    memory: WorkerCache
    store: ArrayCache | None = None

    @classmethod
    def for_worker(cls, store: ArrayCache | None = None, memory: WorkerCache | None = None) -> SetupCache:
        """A setup cache over ``memory`` (default: this process's :meth:`WorkerCache.default`)."""
        return cls(memory=memory if memory is not None else WorkerCache.default(), store=store)

    def get_or_build(
        self,
        description: Mapping[str, JsonValue],
        build: Callable[[], T],
        *,
        encode: Callable[[T], Built],
        decode: Callable[[CachedArrays], T],
        nbytes: Callable[[T], int],
    ) -> T:
        """The value ``description`` names: from memory, else from the store (verified), else built.

        Args:
            description: everything the value depends on (JSON); its :func:`cache_key` is the key.
            build: computes the value (only on a miss at both levels).
            encode: the value as ``(numpy arrays, JSON metadata)`` for the store.
            decode: the value from a verified store entry.
            nbytes: the value's size in memory (for the memory bound).
        """
        key = cache_key(description)

        def load() -> tuple[T, int]:
            if self.store is None:
                self.memory.count("builds")
                value = build()
                return value, nbytes(value)
            built: list[T] = []

            def build_arrays() -> Built:
                built.append(build())
                return encode(built[0])

            entry, was_built = self.store.get_or_build(key, build_arrays, description=description)
            if built:
                value = built[0]
            else:
                try:
                    value = decode(entry)
                except IntegrityError as exc:  # verified bytes that do not hold such a value
                    log.warning("rebuilding cache entry %s: %s", key[:12], exc)
                    entry, was_built = self.store.put(key, *build_arrays(), description=description), True
                    value = built[0]
            self.memory.count("builds" if was_built else "store_hits")
            return value, nbytes(value)

        return self.memory.get_or_build(key, load)


def cached_snapshot(memory: WorkerCache, store: Any, ref: Any) -> dict[str, Any]:
    """The tables of snapshot ``ref`` from ``store`` (a :class:`SnapshotStore`), kept in ``memory``.

    The first load on a worker reads and verifies every file (``SnapshotStore.load``); the tables are
    immutable Arrow tables of a content-addressed snapshot, so later runs on the worker share them.
    """
    key = cache_key({"kind": "snapshot-tables", "root": store.root, "id": ref.id if hasattr(ref, "id") else ref})

    def load() -> tuple[dict[str, Any], int]:
        tables = store.load(ref)
        return tables, sum(int(t.nbytes) for t in tables.values())

    return memory.get_or_build(key, load)
