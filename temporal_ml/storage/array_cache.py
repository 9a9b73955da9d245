"""A content-keyed, verified cache of derived arrays (for example tokenized dataset splits).

What a trainable derives from a snapshot and costs seconds to compute (token ids of a whole training
split, a vocabulary) is stored once per content key, so every later run on any worker reads it instead
of computing it again. Layout under the store's root::

    <root>/cache/<key>/arrays.<sha256[:16]>.safetensors   the arrays (safetensors, numpy)
    <root>/cache/<key>/manifest.json                       written last: the commit point

``<key>`` is the sha256 of the canonical JSON of a *description* of everything the arrays depend on
(snapshot id, split, tokenizer identity and settings, a format version): a different description is a
different entry. Entries are committed like snapshots: each file goes to a temporary name and is renamed
into place, the sealed manifest (canonical JSON with a self-checksum, recording the data file's size and
sha256) last. A reader verifies the manifest and the data file's sha256 before parsing anything, so an
entry a killed writer left half-written is never read (it has no manifest, or its bytes do not match)
and a corrupt one raises :class:`~temporal_ml.errors.IntegrityError`; :meth:`ArrayCache.get_or_build`
then builds the arrays again and replaces the entry.

Example::

    cache = ArrayCache("/data/store")
    key = cache_key({"kind": "squares", "n": 4})
    entry, built = cache.get_or_build(key, lambda: ({"x": np.arange(4) ** 2}, {"n": 4}))
    entry.arrays["x"]   # array([0, 1, 4, 9]); ``built`` is False on every later call
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from temporal_ml._version import __version__
from temporal_ml.errors import (
    ConfigError,
    IntegrityError,
    StorageError,
    StoreUnreachableError,
    require,
)
from temporal_ml.storage import _fs, _manifest

__all__ = ["ArrayCache", "CachedArrays", "cache_key"]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"

#: Arrays and metadata as built: ``(name -> numpy array, JSON metadata)``.
Built = tuple[Mapping[str, Any], Mapping[str, JsonValue]]


def cache_key(description: Mapping[str, JsonValue]) -> str:
    """The key of the entry ``description`` names: sha256 of its canonical JSON.

    Example::

        cache_key({"snapshot": sid, "split": "train", "max_length": 128})   # 64 hex digits
    """
    return _fs.sha256_bytes(_manifest.canonical_bytes(dict(description)))


@dataclass(frozen=True)
class CachedArrays:
    """One verified cache entry: its key, arrays (read-only numpy arrays) and metadata."""

    key: str
    arrays: dict[str, Any]
    meta: dict[str, JsonValue] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes the arrays hold."""
        return sum(int(a.nbytes) for a in self.arrays.values())


class _Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    format: Literal["temporal-ml.array-cache"] = "temporal-ml.array-cache"
    format_version: Literal[1] = 1
    key: str = Field(pattern=_fs.SHA256_PATTERN)
    description: dict[str, JsonValue]
    file: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=_fs.SHA256_PATTERN)
    meta: dict[str, JsonValue]
    created_at: str
    created_by: str


class ArrayCache:
    """Derived arrays stored once per content key, verified on every read (see the module docstring).

    Safe to use concurrently from threads and processes: writers of one key write the same content, each
    file lands whole by a rename, and the manifest is written last.

    Args:
        root: the store's root, any fsspec URL or a local path (entries live under ``<root>/cache/``).
        storage_options: passed to the fsspec filesystem.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None) -> None:
        root = os.fspath(root)
        self._url = root if "://" in root else os.path.abspath(root)
        self._fs, fs_root = _fs.open_root(root, storage_options)
        self._base = _fs.join(fs_root, "cache")

    @property
    def root(self) -> str:
        """The store's URL."""
        return self._url

    def get(self, key: str) -> CachedArrays | None:
        """The committed entry ``key``, verified; ``None`` when there is none.

        Raises:
            IntegrityError: the manifest or the data file is corrupt, torn or missing.
        """
        _check_key(key)
        path = self._manifest_path(key)
        try:
            raw = self._fs.cat_file(path)
        except FileNotFoundError:
            return None
        manifest = _parse_manifest(raw, key, path)
        data_path = _fs.join(self._dir(key), manifest.file)
        try:
            payload = self._fs.cat_file(data_path)
        except FileNotFoundError:
            raise IntegrityError(f"cache entry {key[:12]}: data file {data_path} is missing") from None
        actual = _fs.sha256_bytes(payload)
        if len(payload) != manifest.size or actual != manifest.sha256:
            raise IntegrityError(
                f"cache entry {key[:12]}: data file {data_path} is corrupt ({len(payload)} bytes, "
                f"sha256 {actual[:16]}; the manifest records {manifest.size} bytes, "
                f"sha256 {manifest.sha256[:16]})"
            )
        numpy_st = require("safetensors.numpy", "hf")
        try:
            arrays = numpy_st.load(bytes(payload))  # the very bytes whose sha256 matched
        except Exception as exc:  # noqa: BLE001 - a parser error on verified bytes: a writer bug
            raise IntegrityError(f"cache entry {key[:12]}: {data_path} does not parse: {exc}") from None
        for array in arrays.values():
            array.flags.writeable = False
        return CachedArrays(key=key, arrays=arrays, meta=dict(manifest.meta))

    def put(
        self,
        key: str,
        arrays: Mapping[str, Any],
        meta: Mapping[str, JsonValue] | None = None,
        *,
        description: Mapping[str, JsonValue] | None = None,
    ) -> CachedArrays:
        """Store ``arrays`` (numpy arrays) and ``meta`` under ``key``, replacing any entry there.

        Args:
            key: the entry's key (:func:`cache_key` of ``description``).
            arrays: name -> numpy array.
            meta: JSON metadata returned with the arrays.
            description: what the key was computed from (recorded in the manifest, and checked
                against ``key`` when given).

        Raises:
            ConfigError: ``description`` does not hash to ``key``.
            StorageError: the store cannot be written (full, read-only, no permission).
        """
        _check_key(key)
        if description is not None and cache_key(description) != key:
            raise ConfigError(f"cache key {key[:12]} is not the key of its description")
        numpy_st = require("safetensors.numpy", "hf")
        np = require("numpy", "torch")
        contiguous = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        payload = numpy_st.save(contiguous)
        sha = _fs.sha256_bytes(payload)
        manifest = _Manifest(
            key=key, description=dict(description or {}), file=f"arrays.{sha[:16]}.safetensors",
            size=len(payload), sha256=sha, meta=dict(meta or {}),
            created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            created_by=f"temporal-ml {__version__}",
        )
        directory = self._dir(key)
        with _fs.storage_errors(f"cache entry {self._fs.unstrip_protocol(directory)}"):
            self._fs.makedirs(directory, exist_ok=True)
            _fs.atomic_write(self._fs, _fs.join(directory, manifest.file), payload)
            self._commit(directory, manifest)
        for array in contiguous.values():
            array.flags.writeable = False
        return CachedArrays(key=key, arrays=contiguous, meta=dict(manifest.meta))

    def get_or_build(
        self,
        key: str,
        build: Callable[[], Built],
        *,
        description: Mapping[str, JsonValue] | None = None,
    ) -> tuple[CachedArrays, bool]:
        """The entry ``key``, or ``build()`` stored under it when it is missing or corrupt.

        A corrupt entry is logged and replaced; a store that cannot be written is logged and the
        built arrays are returned all the same (the cache only saves time).

        Returns:
            ``(entry, built)``: ``built`` is whether ``build`` ran.
        """
        try:
            found = self.get(key)
        except IntegrityError as exc:
            log.warning("rebuilding cache entry %s: %s", key[:12], exc)
            found = None
        if found is not None:
            return found, False
        arrays, meta = build()
        try:
            return self.put(key, arrays, meta, description=description), True
        except (StorageError, StoreUnreachableError, OSError) as exc:
            log.warning("could not store cache entry %s (%s): using it uncached", key[:12], exc)
            return CachedArrays(key=key, arrays=dict(arrays), meta=dict(meta)), True

    # ------------------------------------------------------------------------------ internals

    def _dir(self, key: str) -> str:
        return _fs.join(self._base, key)

    def _manifest_path(self, key: str) -> str:
        return _fs.join(self._dir(key), MANIFEST_NAME)

    def _commit(self, directory: str, manifest: _Manifest) -> None:
        """Write the sealed manifest (the commit point) atomically."""
        body = manifest.model_dump(mode="json")
        _fs.atomic_write(self._fs, _fs.join(directory, MANIFEST_NAME), _manifest.seal(body))


def _check_key(key: str) -> None:
    if not _fs.is_sha256(key):
        raise ConfigError(f"invalid cache key {key!r}: expected 64 lowercase hex digits")


def _parse_manifest(raw: bytes, key: str, path: str) -> _Manifest:
    def corrupt(why: str) -> IntegrityError:
        return IntegrityError(f"cache manifest {path} is corrupt: {why}")

    try:
        body = _manifest.unseal(raw)
    except _manifest.SealBroken as exc:
        raise corrupt(str(exc)) from None
    try:
        manifest = _Manifest.model_validate(body)
    except ValidationError as exc:
        raise corrupt(str(exc).splitlines()[0]) from None
    if manifest.key != key or "/" in manifest.file or manifest.file.startswith("."):
        raise corrupt(f"it records key {manifest.key[:12]} and file {manifest.file!r}")
    if manifest.description and cache_key(manifest.description) != key:
        raise corrupt("its description does not hash to its key")
    return manifest
