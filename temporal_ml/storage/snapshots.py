"""Content-addressed, verified dataset snapshots on any fsspec filesystem.

Layout of a store rooted at ``<root>``::

    <root>/snapshots/<id>/<split>.<sha256[:16]>.parquet   one immutable file per split
    <root>/snapshots/<id>/manifest.json                    written last: the commit point

``<id>`` is the sha256 of the canonical content (see :mod:`temporal_ml.storage._canonical`). A data
file's name carries a prefix of its own sha256, so a name always denotes the same bytes: concurrent
writers of one snapshot (threads, processes, activity retries, even other pyarrow versions) never
replace each other's files with different bytes, and whichever manifest lands describes files that
exist. Every file is written to a temporary name and renamed into place, the manifest last: a snapshot
is committed iff its manifest exists and verifies (``.tmp-*`` leftovers of a killed writer are
ignored). The manifest is canonical JSON with a self-checksum, and every data file is checked against
its recorded size and sha256 before it is parsed, so corruption surfaces as :class:`IntegrityError`.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from temporal_ml._names import check_name
from temporal_ml._version import __version__
from temporal_ml.errors import ConfigError, IntegrityError, NotFoundError, require
from temporal_ml.storage import _fs, _snapshot_manifest
from temporal_ml.storage._canonical import (
    FILE_FORMATS,
    check_source,
    content_id,
    file_format,
    parse_file,
    read_local,
    to_tables,
)
from temporal_ml.storage._snapshot_manifest import MANIFEST_NAME, SnapshotManifest, SplitEntry
from temporal_ml.storage.array_cache import ArrayCache
from temporal_ml.types import SnapshotRef

__all__ = ["SnapshotStore", "snapshot_id", "FILE_FORMATS", "MANIFEST_NAME"]


def snapshot_id(data: Any, *, source: Mapping[str, str] | None = None) -> str:
    """Return the id that :meth:`SnapshotStore.put` would give ``data`` and ``source``, writing nothing."""
    return content_id(to_tables(data), check_source(source))


class SnapshotStore:
    """Content-addressed dataset snapshots stored as Parquet with a verified JSON manifest.

    Every method is safe to call concurrently from threads and processes, and :meth:`put` is
    idempotent, so it can run inside a retried activity.

    Args:
        root: any fsspec URL (``file://...``, ``memory://...``, ``s3://...``) or a local path.
        storage_options: passed to the fsspec filesystem.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        root = os.fspath(root)
        self._url = root if "://" in root else os.path.abspath(root)
        self._storage_options = storage_options
        self._fs, fs_root = _fs.open_root(root, storage_options)
        self._base = _fs.join(fs_root, "snapshots")

    @property
    def root(self) -> str:
        """The store's URL, as recorded in every :class:`SnapshotRef` it returns."""
        return self._url

    def array_cache(self) -> ArrayCache:
        """The cache of arrays derived from this store's snapshots (``<root>/cache/``), e.g. the
        tokenized splits a trainable builds once per snapshot and settings (see
        :mod:`temporal_ml.storage.array_cache`)."""
        return ArrayCache(self._url, getattr(self, "_storage_options", None))

    def put(self, data: Any, *, source: Mapping[str, str] | None = None) -> SnapshotRef:
        """Store ``data`` as a snapshot (no-op if that snapshot is already committed).

        Args:
            data: a ``datasets.DatasetDict``; a ``datasets.Dataset``, ``pyarrow.Table`` or
                ``pyarrow.RecordBatch`` (stored as split ``"train"``); or a mapping of split name to
                any of those or to a list of row dicts.
            source: identity of where the data came from (name, config, revision, ...); part of the id.

        Returns:
            The committed snapshot.

        Raises:
            ConfigError: for unsupported data, a bad split name or a non-string source.
        """
        return self._put_tables(to_tables(data), check_source(source))

    def put_files(
        self,
        files: Mapping[str, str | os.PathLike[str]],
        *,
        format: str | None = None,
        source: Mapping[str, str] | None = None,
    ) -> SnapshotRef:
        """Store local data files (one per split) as a snapshot.

        The source identity records each file's name, format and sha256, merged with ``source``.

        Args:
            files: split name to local file path.
            format: ``csv``, ``tsv`` (tab separated, no quoting), ``json``/``jsonl`` (JSON lines) or
                ``parquet``; inferred from each file's suffix when omitted.
            source: extra source identity; its keys must not start with ``files.``.

        Raises:
            ConfigError: for an unknown format, an unreadable or unparsable file or a bad split name.
        """
        if not isinstance(files, Mapping) or not files:
            raise ConfigError("files must be a non-empty mapping of split name to file path")
        src = check_source(source)
        if clash := sorted(k for k in src if k.startswith("files.")):
            raise ConfigError(f"source keys starting with 'files.' are reserved: {clash}")
        tables: dict[str, pa.Table] = {}
        for split in sorted(files):
            path = Path(files[split])
            fmt = file_format(path, format)
            payload = read_local(path)
            tables[check_name(split, "split name")] = parse_file(payload, fmt, path)
            src[f"files.{split}"] = path.name
            src[f"files.{split}.format"] = fmt
            src[f"files.{split}.sha256"] = _fs.sha256_bytes(payload)
        return self._put_tables(tables, src)

    def get(self, snapshot_id: str) -> SnapshotRef:
        """Return the committed snapshot ``snapshot_id``.

        Raises:
            ConfigError: if ``snapshot_id`` is not 64 hex digits.
            NotFoundError: if it is not committed.
            IntegrityError: if its manifest is corrupt.
        """
        return self._ref(self._read_manifest(_check_id(snapshot_id)))

    def exists(self, snapshot_id: str) -> bool:
        """Whether ``snapshot_id`` is committed with a valid manifest.

        Raises:
            ConfigError: if ``snapshot_id`` is not 64 hex digits.
        """
        try:
            self._read_manifest(_check_id(snapshot_id))
        except (NotFoundError, IntegrityError):
            return False
        return True

    def list(self) -> list[SnapshotRef]:
        """All committed snapshots with a valid manifest, sorted by id."""
        try:
            entries = self._fs.ls(self._base, detail=False)
        except FileNotFoundError:
            return []
        refs = []
        for entry in entries:
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if _fs.is_sha256(name):
                try:
                    refs.append(self._ref(self._read_manifest(name)))
                except (NotFoundError, IntegrityError):
                    continue
        return sorted(refs, key=lambda ref: ref.id)

    def load(
        self, ref_or_id: SnapshotRef | str, split: str | None = None
    ) -> dict[str, pa.Table] | pa.Table:
        """Load a snapshot after verifying each file it reads against the manifest.

        Args:
            ref_or_id: a :class:`SnapshotRef` or a snapshot id.
            split: load only this split and return its table.

        Returns:
            ``{split name: table}`` sorted by split name, or one table when ``split`` is given.

        Raises:
            NotFoundError: if the snapshot or the split does not exist.
            IntegrityError: if any file is missing, corrupt or does not match the manifest.
        """
        manifest = self._read_manifest(_check_id(ref_or_id))
        if split is not None and split not in manifest.splits:
            raise NotFoundError(
                f"snapshot {manifest.id[:12]} has no split {split!r} (has {sorted(manifest.splits)})"
            )
        names = sorted(manifest.splits) if split is None else [split]
        tables = {name: self._read_split(manifest, name) for name in names}
        return tables[split] if split is not None else tables

    def load_dataset_dict(self, ref_or_id: SnapshotRef | str) -> Any:
        """Load a snapshot as a ``datasets.DatasetDict`` (features restored from the stored schema).

        Raises:
            MissingDependencyError: if ``datasets`` is not installed.
        """
        datasets = require("datasets", "data")
        tables = self.load(ref_or_id)
        assert isinstance(tables, dict)
        return datasets.DatasetDict(
            {
                name: datasets.Dataset(
                    datasets.table.InMemoryTable(table), split=datasets.NamedSplit(name)
                )
                for name, table in tables.items()
            }
        )

    # ------------------------------------------------------------------------------ internals

    def _dir(self, sid: str) -> str:
        return _fs.join(self._base, sid)

    def _ref(self, manifest: SnapshotManifest) -> SnapshotRef:
        splits = {name: entry.rows for name, entry in sorted(manifest.splits.items())}
        return SnapshotRef(id=manifest.id, root=self._url, splits=splits, source=manifest.source)

    def _put_tables(self, tables: dict[str, pa.Table], source: dict[str, str]) -> SnapshotRef:
        sid = content_id(tables, source)
        if (committed := self._committed(sid)) is not None:
            return self._ref(committed)
        directory = self._dir(sid)
        with _fs.storage_errors(f"snapshot {self._fs.unstrip_protocol(directory)}"):
            self._fs.makedirs(directory, exist_ok=True)
            splits = {name: self._write_split(directory, name, table) for name, table in tables.items()}
        manifest = SnapshotManifest(
            id=sid,
            splits=splits,
            source=source,
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            created_by=f"temporal-ml {__version__} (pyarrow {pa.__version__})",
        )
        if (committed := self._committed(sid)) is not None:  # a concurrent writer won: keep theirs
            return self._ref(committed)
        with _fs.storage_errors(f"snapshot {self._fs.unstrip_protocol(directory)}"):
            _snapshot_manifest.write_manifest(self._fs, _fs.join(directory, MANIFEST_NAME), manifest)
        return self._ref(manifest)

    def _committed(self, sid: str) -> SnapshotManifest | None:
        """The valid manifest of ``sid`` if its data files are all present, else None."""
        try:
            manifest = self._read_manifest(sid)
        except (NotFoundError, IntegrityError):
            return None
        for entry in manifest.splits.values():
            if self._size(_fs.join(self._dir(sid), entry.file)) != entry.size:
                return None
        return manifest

    def _size(self, path: str) -> int | None:
        try:
            return int(self._fs.info(path)["size"])
        except FileNotFoundError:
            return None

    def _write_split(self, directory: str, name: str, table: pa.Table) -> SplitEntry:
        payload = _parquet_bytes(table)
        sha = _fs.sha256_bytes(payload)
        file = f"{name}.{sha[:16]}.parquet"
        path = _fs.join(directory, file)
        # an earlier attempt or a concurrent writer may have put these very bytes there already
        if self._size(path) != payload.size or _fs.sha256_path(self._fs, path) != sha:
            _fs.atomic_write(self._fs, path, payload)
        schema = table.schema.to_string(show_schema_metadata=False)
        return SplitEntry(
            file=file, rows=table.num_rows, size=payload.size, sha256=sha, arrow_schema=schema
        )

    def _read_manifest(self, sid: str) -> SnapshotManifest:
        path = _fs.join(self._dir(sid), MANIFEST_NAME)
        try:
            raw = self._fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError(f"snapshot {sid} not found in {self._url}") from None
        return _snapshot_manifest.parse_manifest(raw, sid, path)

    def _read_split(self, manifest: SnapshotManifest, name: str) -> pa.Table:
        entry = manifest.splits[name]
        path = _fs.join(self._dir(manifest.id), entry.file)
        try:
            payload = self._fs.cat_file(path)
        except FileNotFoundError:
            raise IntegrityError(
                f"snapshot {manifest.id[:12]}: data file {path} is missing"
            ) from None
        actual = _fs.sha256_bytes(payload)
        if len(payload) != entry.size or actual != entry.sha256:
            raise IntegrityError(
                f"snapshot {manifest.id[:12]}: data file {path} is corrupt ({len(payload)} bytes, "
                f"sha256 {actual}; manifest records {entry.size} bytes, sha256 {entry.sha256})"
            )
        table = pq.read_table(pa.BufferReader(payload))  # sha256 matched: the bytes we wrote
        if table.num_rows != entry.rows:
            raise IntegrityError(f"snapshot {manifest.id[:12]}: {path} has {table.num_rows} rows")
        return table


# ------------------------------------------------------------------------------------ helpers


def _check_id(ref_or_id: SnapshotRef | str) -> str:
    sid = ref_or_id.id if isinstance(ref_or_id, SnapshotRef) else ref_or_id
    if not _fs.is_sha256(sid):
        raise ConfigError(f"invalid snapshot id {sid!r}: expected 64 lowercase hex digits")
    return sid


def _parquet_bytes(table: pa.Table) -> pa.Buffer:
    """Serialize ``table`` to Parquet in memory (contiguous chunks, fixed options)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.combine_chunks(), sink, compression="zstd")
    return sink.getvalue()
