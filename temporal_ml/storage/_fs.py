"""fsspec helpers shared by the snapshot store and the checkpoint manager.

The commit protocol of both stores rests on two primitives here:

* :func:`atomic_write` writes a file under a unique temporary name and renames it into place, so a
  reader sees either the whole file or none of it (a crash leaves only a ``.tmp-*`` file behind);
* :func:`write_hashed` writes bytes and computes their sha256 concurrently (hashlib releases the GIL),
  so verification costs almost no extra wall time on save.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

__all__ = [
    "open_root",
    "join",
    "atomic_write",
    "write_hashed",
    "sha256_bytes",
    "sha256_path",
    "TMP_MARKER",
]

TMP_MARKER = ".tmp-"
_CHUNK = 8 * 1024 * 1024


def open_root(url: str, storage_options: dict[str, Any] | None = None) -> tuple[AbstractFileSystem, str]:
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


def write_hashed(fs: AbstractFileSystem, path: str, data: bytes | memoryview, *, atomic: bool = True) -> str:
    """Write ``data`` to ``path`` (atomically by default) and return its sha256.

    Hashing runs in a second thread while the main thread writes; both release the GIL for large
    buffers, so on a multi-core machine this costs about ``max(write, hash)`` rather than their sum.
    """
    view = memoryview(data)
    result: dict[str, str] = {}

    def _hash() -> None:
        result["sha256"] = hashlib.sha256(view).hexdigest()

    hasher = threading.Thread(target=_hash, name="temporal-ml-sha256", daemon=True)
    hasher.start()
    try:
        if atomic:
            atomic_write(fs, path, view)
        else:
            with fs.open(path, "wb") as f:
                f.write(view)
    finally:
        hasher.join()
    return result["sha256"]


def _silently_remove(fs: AbstractFileSystem, path: str) -> None:
    try:
        if fs.exists(path):
            fs.rm(path)
    except Exception:  # noqa: BLE001 - best-effort cleanup of a temporary file
        pass
