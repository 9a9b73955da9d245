"""Parallel file I/O of checkpoints: shared threads, writing while hashing, verified reads.

hashlib, file I/O and torch copies release the GIL, so one small shared pool runs the writes, hashes,
reads and staging copies of every :class:`~temporal_ml.storage.checkpoints.CheckpointManager`.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fsspec import AbstractFileSystem

from temporal_ml.errors import IntegrityError
from temporal_ml.storage import _fs

__all__ = [
    "WORKERS",
    "pool",
    "run_all",
    "Payload",
    "hash_chunks",
    "write_files",
    "read_verified",
    "verify_file",
    "remove_quietly",
]

log = logging.getLogger("temporal_ml.storage.checkpoints")

WORKERS = max(2, min(8, os.cpu_count() or 2))
_POOL: cf.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def pool() -> cf.ThreadPoolExecutor:
    """Threads that write, hash, read and copy; hashlib, file I/O and torch copies release the GIL."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = cf.ThreadPoolExecutor(WORKERS, thread_name_prefix="temporal-ml-ckpt-io")
        return _POOL


def _forget_pool() -> None:  # a forked child does not inherit the pool's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_all(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
    """Run ``calls`` on the shared pool (in the given order of priority) and return their results."""
    futures = [pool().submit(fn, *args) for fn, args in calls]
    cf.wait(futures)
    return [f.result() for f in futures]


@dataclass
class Payload:
    """The bytes of one file as a list of buffers (header + tensor data), never concatenated."""

    chunks: list[memoryview]
    keepalive: list[Any] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(c.nbytes for c in self.chunks)


def hash_chunks(chunks: list[memoryview]) -> str:
    """sha256 hex digest of the concatenation of ``chunks``."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _write_chunks(fs: AbstractFileSystem, path: str, chunks: list[memoryview]) -> None:
    with fs.open(path, "wb") as f:
        for chunk in chunks:
            if chunk.nbytes:
                f.write(chunk)


def write_files(
    fs: AbstractFileSystem, directory: str, payloads: Mapping[str, Payload], suffix: str
) -> dict[str, dict[str, Any]]:
    """Write every payload to ``<name><suffix>`` while hashing it; returns ``{name: {sha256, bytes}}``.

    All writes and hashes run concurrently, the costliest first (sha256 is about three times slower
    than a page-cache write), so the wall time approaches the hash time of the largest file. If any
    of them fails, the files written so far are removed.
    """
    tasks: list[tuple[float, str | None, Callable[..., Any], tuple[Any, ...]]] = []
    for name, payload in payloads.items():
        path = _fs.join(directory, name) + suffix
        tasks.append((payload.size, name, hash_chunks, (payload.chunks,)))
        tasks.append((payload.size * 0.4, None, _write_chunks, (fs, path, payload.chunks)))
    tasks.sort(key=lambda t: -t[0])
    try:
        results = run_all([(fn, args) for _, _, fn, args in tasks])
    except BaseException:
        remove_quietly(fs, [_fs.join(directory, n) + suffix for n in payloads])
        raise
    digests = {name: r for (_, name, _, _), r in zip(tasks, results, strict=True) if name}
    return {n: {"bytes": payloads[n].size, "sha256": digests[n]} for n in sorted(payloads)}


def read_verified(fs: AbstractFileSystem, path: str, info: Mapping[str, Any]) -> bytearray:
    """Read a whole file into a writable buffer and check its size and sha256."""
    size = info["bytes"]
    buffer = bytearray(size)
    try:
        with fs.open(path, "rb") as f:
            got = _readinto(f, buffer)
            longer = bool(f.read(1))
    except FileNotFoundError as exc:
        raise IntegrityError(f"{path}: file is missing") from exc
    if got != size or longer:
        raise IntegrityError(f"{path}: size differs from the manifest ({size} bytes expected)")
    digest = hashlib.sha256(buffer).hexdigest()
    if digest != info["sha256"]:
        raise IntegrityError(
            f"{path}: sha256 {digest} does not match the manifest {info['sha256']}"
        )
    return buffer


def verify_file(fs: AbstractFileSystem, path: str, info: Mapping[str, Any]) -> None:
    """Check the size and sha256 of a stored file against its manifest entry, reading it in chunks."""
    try:
        size = fs.size(path)
        digest = _fs.sha256_path(fs, path) if size == info["bytes"] else None
    except FileNotFoundError as exc:
        raise IntegrityError(f"{path}: file is missing") from exc
    if size != info["bytes"]:
        raise IntegrityError(f"{path}: {size} bytes, the manifest says {info['bytes']}")
    if digest != info["sha256"]:
        raise IntegrityError(
            f"{path}: sha256 {digest} does not match the manifest {info['sha256']}"
        )


def _readinto(f: Any, buffer: bytearray) -> int:
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def remove_quietly(fs: AbstractFileSystem, paths: list[str]) -> None:
    """Remove ``paths`` (recursively), ignoring missing ones and logging other failures."""
    for path in paths:
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - best-effort cleanup
            log.warning("could not remove %s", path, exc_info=True)
