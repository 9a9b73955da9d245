"""The snapshot activity: turn a :class:`DatasetSource` into a committed, content-addressed snapshot."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity

from temporal_ml.activities._fail_fast import fail_fast
from temporal_ml.activities._heartbeat import heartbeating
from temporal_ml.activities.messages import CREATE_SNAPSHOT
from temporal_ml.activities.search_attributes import registered_search_attributes
from temporal_ml.errors import ConfigError
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import DatasetSource, SnapshotRef

__all__ = ["SnapshotActivities"]

#: A deterministic data generator: keyword params -> anything ``SnapshotStore.put`` accepts.
Generator = Callable[..., Any]


class SnapshotActivities:
    """Snapshot activities bound to a store and a set of named data generators.

    Args:
        store: where snapshots are written.
        generators: name -> deterministic generator, for ``DatasetSource(generator=name)``.
    """

    def __init__(self, store: SnapshotStore, generators: Mapping[str, Generator] | None = None) -> None:
        self.store = store
        self.generators = dict(generators or {})

    def activities(self) -> list[Callable[..., Any]]:
        """The activity callables to register on a worker: the snapshot activity, and the local
        activity with which workflows find out which search attributes they may set (register
        these on the workers that run the workflows)."""
        return [self.create_snapshot, registered_search_attributes]

    @activity.defn(name=CREATE_SNAPSHOT)
    @fail_fast
    def create_snapshot(self, source: DatasetSource) -> SnapshotRef:
        """Snapshot the source (idempotent: the same content yields the same id and writes nothing)."""
        with heartbeating():
            return self._create(source)

    def _create(self, source: DatasetSource) -> SnapshotRef:
        if source.files:
            return self.store.put_files(source.files)
        if source.generator:
            fn = self.generators.get(source.generator)
            if fn is None:
                raise ConfigError(
                    f"unknown data generator {source.generator!r}; this worker has {sorted(self.generators)}"
                )
            params = json.dumps(source.params, sort_keys=True, separators=(",", ":"))
            return self.store.put(fn(**source.params), source={"generator": source.generator, "params": params})
        from temporal_ml.hf.loading import load_hub_dataset

        assert source.hub is not None
        data = load_hub_dataset(source.hub, source.hub_config, source.revision)
        identity = {"hub": source.hub, "config": source.hub_config or "", "revision": source.revision or ""}
        return self.store.put(data, source=identity)
