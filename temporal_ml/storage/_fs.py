"""fsspec helpers shared by the snapshot store and the checkpoint manager.

The commit protocol of both stores rests on :func:`atomic_write`: it writes a file under a unique
temporary name and renames it into place, so a reader sees either the whole file or none of it (a crash
leaves only a ``.tmp-*`` file behind). Digests are sha256, written as 64 lowercase hex digits.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from temporal_ml.errors import StorageError, StoreUnreachableError

__all__ = [
    "open_root",
    "join",
    "atomic_write",
    "sha256_bytes",
    "sha256_path",
    "is_sha256",
    "SHA256_PATTERN",
    "TMP_MARKER",
    "storage_errors",
]

TMP_MARKER = ".tmp-"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256_RE = re.compile(SHA256_PATTERN)
_CHUNK = 8 * 1024 * 1024


def open_root(
    url: str, storage_options: dict[str, Any] | None = None
) -> tuple[AbstractFileSystem, str]:
    """Return ``(filesystem, root path)`` for an fsspec URL, creating the root directory."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/") or "/"
    fs.makedirs(root, exist_ok=True)
    return fs, root


def join(*parts: str) -> str:
    """Join path components with ``/`` (fsspec paths are always ``/``-separated)."""
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


def sha256_bytes(data: bytes | memoryview) -> str:
    """sha256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def is_sha256(value: object) -> bool:
    """Whether ``value`` is a string matching :data:`SHA256_PATTERN` (a sha256 hex digest)."""
    return isinstance(value, str) and _SHA256_RE.match(value) is not None


def sha256_path(fs: AbstractFileSystem, path: str) -> str:
    """sha256 hex digest of a stored file, read in chunks."""
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tmp_name(path: str) -> str:
    return f"{path}{TMP_MARKER}{uuid.uuid4().hex}"


def atomic_write(fs: AbstractFileSystem, path: str, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` so that readers never observe a partial file.

    The bytes go to a unique temporary sibling, which is then renamed over ``path``. Concurrent writers
    of identical content are safe: the last rename wins and every intermediate state is complete.
    """
    tmp = _tmp_name(path)
    try:
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    except BaseException:
        _silently_remove(fs, tmp)
        raise


def _silently_remove(fs: AbstractFileSystem, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001 - best-effort cleanup of a temporary file
        pass


#: ``errno`` values that mean "this store cannot be written until someone acts" (no retry helps).
FATAL_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EFBIG")
    if hasattr(errno, name)
)


#: ``errno`` values that mean "the store does not answer" (it may come back: retried, then a pause).
UNREACHABLE_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EHOSTUNREACH",
                                      "ENETUNREACH", "ENETDOWN", "ETIMEDOUT", "ENOTCONN", "ESTALE")
    if hasattr(errno, name)
)


@contextlib.contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Turn out-of-space, quota, permission and read-only errors into a short :class:`StorageError`,
    and a store that does not answer into a (retryable) :class:`StoreUnreachableError`.

    The message names ``what`` was being written and the error (e.g. ``No space left on device
    [ENOSPC]``), in one line; the original exception is not chained, so activity failures stay small.
    """
    try:
        yield
    except (StorageError, StoreUnreachableError):
        raise
    except OSError as exc:
        code = exc.errno
        if isinstance(exc, (ConnectionError, TimeoutError)) or code in UNREACHABLE_ERRNOS:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise StoreUnreachableError(f"cannot write {what}: the store is unreachable: {reason}"[:500]) from None
        if code is None or code not in FATAL_ERRNOS:
            raise
        reason = exc.strerror or os.strerror(code)
        where = f" ({exc.filename})" if exc.filename else ""
        raise StorageError(
            f"cannot write {what}: {reason} [{errno.errorcode.get(code, code)}]{where}"[:500]
        ) from None
