"""Durable storage: content-addressed dataset snapshots and checkpoints (fsspec-backed).

* :class:`SnapshotStore` (:mod:`temporal_ml.storage.snapshots`): immutable, verified dataset snapshots.
* :class:`CheckpointManager` and :func:`load_checkpoint` (:mod:`temporal_ml.storage.checkpoints`):
  atomic, verified, retained training checkpoints.
* :class:`ArrayCache` (:mod:`temporal_ml.storage.array_cache`): arrays derived from snapshots (tokenized
  splits), keyed by content and verified like a snapshot.

The names are imported on first use, so ``import temporal_ml.storage`` imports neither torch nor
pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporal_ml.storage.array_cache import ArrayCache
    from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
    from temporal_ml.storage.snapshots import SnapshotStore

__all__ = ["SnapshotStore", "CheckpointManager", "load_checkpoint", "ArrayCache"]

_SOURCES = {
    "SnapshotStore": "snapshots",
    "CheckpointManager": "checkpoints",
    "load_checkpoint": "checkpoints",
    "ArrayCache": "array_cache",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
