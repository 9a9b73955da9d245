"""Checkpoints of training runs: atomic, verified on load, retained, optionally written in the background.

Layout of one checkpoint (any fsspec URL as root)::

    <root>/<run_id>/step-000000001200/
        model.safetensors       tensors under state["model"]
        optimizer.safetensors   tensors under state["optimizer"]
        extra.safetensors       every other tensor (RNG states, grad scaler, ...) and numpy arrays
        state.json              everything that is not a tensor (see :mod:`temporal_ml.storage._tree`)
        manifest.json           written last: step, metrics, sha256 and size of every file

The manifest commits the checkpoint: data files are written under temporary names, renamed into place,
and only then is the manifest written atomically. A checkpoint without a valid manifest is torn and
invisible; every file is verified against its sha256 on load, and :meth:`CheckpointManager.latest`
falls back to the previous valid checkpoint when the newest one is corrupt. Nothing is pickled.

Saving the same step twice (an activity retry) is safe: identical content is simply rewritten in
place, different content un-commits the old checkpoint before replacing it.
"""

from __future__ import annotations

import builtins
import concurrent.futures as cf
import hashlib
import json
import logging
import math
import numbers
import operator
import os
import posixpath
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import fsspec
from fsspec import AbstractFileSystem

from temporal_ml._names import check_name
from temporal_ml.errors import ConfigError, IntegrityError, NotFoundError, require
from temporal_ml.storage import _fs, _tree
from temporal_ml.types import CheckpointRef

__all__ = ["CheckpointManager", "load_checkpoint", "step_dirname", "MANIFEST", "FILES"]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_STATE = "state.json"
_TENSOR_FILES = {group: f"{group}.safetensors" for group in _tree.GROUPS}
FILES = (*_TENSOR_FILES.values(), _STATE)
_MODEL_FILE = _TENSOR_FILES[_tree.MODEL]
_FORMAT = "temporal-ml.checkpoint"
_VERSION = 1
_STEP_RE = re.compile(r"^step-(\d+)$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SPLIT_BYTES = 8 * 1024 * 1024  # staging copies of bigger tensors are split across threads
_INLINE_COPY_BYTES = 1024 * 1024  # below this, staging copies run in the caller thread only


def step_dirname(step: int) -> str:
    """Directory name of the checkpoint at ``step`` (``step-`` + 12-digit zero-padded step)."""
    return f"step-{step:012d}"


# --------------------------------------------------------------------------------------------------
# Shared I/O threads
# --------------------------------------------------------------------------------------------------

_WORKERS = max(2, min(8, os.cpu_count() or 2))
_POOL: cf.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> cf.ThreadPoolExecutor:
    """Threads that write, hash, read and copy; hashlib, file I/O and torch copies release the GIL."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = cf.ThreadPoolExecutor(_WORKERS, thread_name_prefix="temporal-ml-ckpt-io")
        return _POOL


def _forget_pool() -> None:  # a forked child does not inherit the pool's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _run_all(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[Any]:
    """Run ``calls`` on the shared pool (in the given order of priority) and return their results."""
    futures = [_pool().submit(fn, *args) for fn, args in calls]
    cf.wait(futures)
    return [f.result() for f in futures]


# --------------------------------------------------------------------------------------------------
# Host bytes of the files to write
# --------------------------------------------------------------------------------------------------


@dataclass
class _Payload:
    """The bytes of one file as a list of buffers (header + tensor data), never concatenated."""

    chunks: list[memoryview]
    keepalive: list[Any] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(c.nbytes for c in self.chunks)


def _direct_payload(plan: _tree.FilePlan) -> _Payload:
    """Payload that reads CPU tensors in place (zero copy); others are copied to the host first."""
    uint8 = require("torch", "torch").uint8
    payload = _Payload([memoryview(plan.header)])
    for spec, tensor in plan.entries:
        if spec.nbytes:
            array = _contiguous_host(tensor).reshape(-1).view(uint8).numpy()
            payload.chunks.append(memoryview(array))
            payload.keepalive.append(array)
    return payload


def _contiguous_host(tensor: Any) -> Any:
    if tensor.device.type != "cpu":
        tensor = tensor.to("cpu")
    tensor = tensor.resolve_conj().resolve_neg()
    return tensor if tensor.is_contiguous() else tensor.contiguous()


class _Staging:
    """Host buffers that asynchronous saves copy tensors into, kept and reused between saves.

    One flat ``uint8`` buffer per file holds the data section exactly as it will be written, so the
    background writer issues one write per file. Reusing the buffers avoids paying page faults (or
    ``cudaHostAlloc`` for pinned memory) on every save.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def clear(self) -> None:
        self._buffers.clear()

    def stage(self, plans: Mapping[str, _tree.FilePlan]) -> dict[str, _Payload]:
        """Copy every tensor of ``plans`` into the staging buffers; returns when the copies are done."""
        torch = require("torch", "torch")
        cpu_jobs: list[tuple[Any, Any]] = []
        devices: set[Any] = set()
        payloads = {}
        with torch.no_grad():
            for name, plan in plans.items():
                buffer = self._buffer(name, plan)
                for spec, src in plan.entries:
                    if not spec.nbytes:
                        continue
                    dst = buffer[spec.begin : spec.end].view(src.dtype).view(src.shape)
                    src = src.resolve_conj().resolve_neg()
                    if src.device.type == "cpu":
                        cpu_jobs.extend(_split_copy(dst, src))
                    elif src.device.type == "cuda":
                        dst.copy_(src, non_blocking=True)
                        devices.add(src.device)
                    else:
                        dst.copy_(src)
                payloads[name] = _Payload([memoryview(plan.header), memoryview(buffer.numpy())])
            _copy_in_parallel(cpu_jobs)
            for device in devices:
                torch.cuda.synchronize(device)
        return payloads

    def _buffer(self, name: str, plan: _tree.FilePlan) -> Any:
        torch = require("torch", "torch")
        pin = any(t.device.type == "cuda" for _, t in plan.entries)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < plan.data_bytes or (pin and not buffer.is_pinned()):
            buffer = torch.empty(max(plan.data_bytes, 1), dtype=torch.uint8, pin_memory=pin)
            self._buffers[name] = buffer
        return buffer[: plan.data_bytes]


def _split_copy(dst: Any, src: Any) -> list[tuple[Any, Any]]:
    """Cut a large contiguous copy into pieces that threads can share."""
    nbytes = src.numel() * src.element_size()
    if nbytes <= _SPLIT_BYTES or not src.is_contiguous():
        return [(dst, src)]
    flat_dst, flat_src = dst.reshape(-1), src.reshape(-1)
    step = max(1, _SPLIT_BYTES // src.element_size())
    return [(flat_dst[i : i + step], flat_src[i : i + step]) for i in range(0, src.numel(), step)]


def _copy_in_parallel(jobs: list[tuple[Any, Any]]) -> None:
    """Run ``dst.copy_(src)`` jobs on up to ``workers`` threads, balanced by bytes."""
    sizes = [src.numel() * src.element_size() for _, src in jobs]
    workers = min(len(jobs), _WORKERS)
    if workers <= 1 or sum(sizes) < _INLINE_COPY_BYTES:
        _copy_jobs(jobs)
        return
    bins: list[list[tuple[Any, Any]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for size, job in sorted(zip(sizes, jobs, strict=True), key=lambda sj: -sj[0]):
        i = loads.index(min(loads))
        bins[i].append(job)
        loads[i] += size
    futures = [_pool().submit(_copy_jobs, b) for b in bins[1:]]
    _copy_jobs(bins[0])
    for f in futures:
        f.result()


def _copy_jobs(jobs: list[tuple[Any, Any]]) -> None:
    for dst, src in jobs:
        dst.copy_(src)


# --------------------------------------------------------------------------------------------------
# Writing and reading files
# --------------------------------------------------------------------------------------------------


def _hash_chunks(chunks: list[memoryview]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _write_chunks(fs: AbstractFileSystem, path: str, chunks: list[memoryview]) -> None:
    with fs.open(path, "wb") as f:
        for chunk in chunks:
            if chunk.nbytes:
                f.write(chunk)


def _write_files(
    fs: AbstractFileSystem, directory: str, payloads: Mapping[str, _Payload], suffix: str
) -> dict[str, dict[str, Any]]:
    """Write every payload to ``<name><suffix>`` while hashing it; returns ``{name: {sha256, bytes}}``.

    All writes and hashes run concurrently, the costliest first (sha256 is about three times slower
    than a page-cache write), so the wall time approaches the hash time of the largest file.
    """
    tasks = []
    for name, payload in payloads.items():
        path = _fs.join(directory, name) + suffix
        tasks.append((payload.size, name, _hash_chunks, (payload.chunks,)))
        tasks.append((payload.size * 0.4, None, _write_chunks, (fs, path, payload.chunks)))
    tasks.sort(key=lambda t: -t[0])
    try:
        results = _run_all([(fn, args) for _, _, fn, args in tasks])
    except BaseException:
        _remove_quietly(fs, [_fs.join(directory, n) + suffix for n in payloads])
        raise
    digests = {name: r for (_, name, _, _), r in zip(tasks, results, strict=True) if name}
    return {n: {"bytes": payloads[n].size, "sha256": digests[n]} for n in sorted(payloads)}


def _read_verified(fs: AbstractFileSystem, path: str, info: Mapping[str, Any]) -> bytearray:
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


def _verify_file(fs: AbstractFileSystem, path: str, info: Mapping[str, Any]) -> None:
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


def _remove_quietly(fs: AbstractFileSystem, paths: list[str]) -> None:
    for path in paths:
        try:
            fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - best-effort cleanup
            log.warning("could not remove %s", path, exc_info=True)


# --------------------------------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------------------------------


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("ascii")


def _dump_manifest(body: Mapping[str, Any]) -> bytes:
    """Canonical JSON with its own sha256, so any changed byte of the manifest is detected."""
    return _canonical({**body, "manifest_sha256": _fs.sha256_bytes(_canonical(body))})


def _parse_manifest(raw: bytes, path: str, run_id: str, step: int) -> dict[str, Any]:
    """Parse and validate a manifest; raises :class:`IntegrityError` naming ``path``."""
    try:
        manifest = json.loads(raw)
        body = dict(manifest)
        digest = body.pop("manifest_sha256")
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{path}: unparseable manifest ({exc})") from exc
    if _fs.sha256_bytes(_canonical(body)) != digest or _canonical(manifest) != raw:
        raise IntegrityError(f"{path}: manifest does not match its own sha256")
    problem = _manifest_problem(body, run_id, step)
    if problem:
        raise IntegrityError(f"{path}: {problem}")
    return body


def _manifest_problem(body: Mapping[str, Any], run_id: str, step: int) -> str | None:
    if body.get("format") != _FORMAT or body.get("version") != _VERSION:
        return f"not a version-{_VERSION} {_FORMAT} manifest"
    if body.get("run_id") != run_id or body.get("step") != step:
        return f"manifest is for run {body.get('run_id')!r} step {body.get('step')!r}"
    files = body.get("files")
    if not isinstance(files, dict) or set(files) != set(FILES):
        return f"manifest must list exactly {sorted(FILES)}"
    for info in files.values():
        ok = isinstance(info, dict) and isinstance(info.get("sha256"), str)
        if not ok or not _HEX64.match(info["sha256"]) or type(info.get("bytes")) is not int:
            return "malformed file entry in manifest"
    metrics = body.get("metrics")
    if not isinstance(metrics, dict) or not all(type(v) is float for v in metrics.values()):
        return "malformed metrics in manifest"
    return None


def _read_manifest(
    fs: AbstractFileSystem, directory: str, run_id: str, step: int
) -> dict[str, Any]:
    path = _fs.join(directory, MANIFEST)
    try:
        raw = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise NotFoundError(f"no committed checkpoint at {directory} ({MANIFEST} missing)") from exc
    return _parse_manifest(raw, path, run_id, step)


def _load_dir(
    fs: AbstractFileSystem,
    directory: str,
    manifest: Mapping[str, Any],
    map_location: Any,
) -> dict[str, Any]:
    """Read, verify and decode the checkpoint in ``directory`` described by ``manifest``."""
    files = manifest["files"]
    names = sorted(files, key=lambda n: -files[n]["bytes"])
    paths = {n: _fs.join(directory, n) for n in names}
    buffers = dict(
        zip(
            names,
            _run_all([(_read_verified, (fs, paths[n], files[n])) for n in names]),
            strict=True,
        )
    )
    tensors = {}
    for group, name in _TENSOR_FILES.items():
        try:
            tensors[group] = _tree.parse_file(buffers[name])
        except ValueError as exc:
            raise IntegrityError(f"{paths[name]}: {exc}") from exc
    try:
        return _tree.decode_state(
            _tree.loads_tree(buffers[_STATE]), tensors, tensor_hook=_mover(map_location)
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise IntegrityError(f"{paths[_STATE]}: {exc}") from exc


def _mover(map_location: Any) -> Callable[[Any], Any] | None:
    if map_location is None:
        return None
    device = require("torch", "torch").device(map_location)
    return None if device.type == "cpu" else (lambda t: t.to(device))


def load_checkpoint(
    ref: CheckpointRef,
    *,
    map_location: Any = "cpu",
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load the checkpoint ``ref`` points to, from its URI alone.

    Args:
        ref: a committed checkpoint (e.g. one recorded by a workflow).
        map_location: device for the tensors (``"cpu"`` by default; ``None`` keeps them on CPU).
        storage_options: fsspec options for the checkpoint's filesystem (credentials, ...).

    Returns:
        The state exactly as it was saved.

    Raises:
        NotFoundError: there is no committed checkpoint at ``ref.uri``.
        IntegrityError: a file is missing, truncated or does not match its sha256 (the message names
            it), or the checkpoint was overwritten with different weights since ``ref`` was taken.
    """
    fs, directory = fsspec.core.url_to_fs(ref.uri, **(storage_options or {}))
    directory = directory.rstrip("/")
    manifest = _read_manifest(fs, directory, ref.run_id, ref.step)
    if manifest["files"][_MODEL_FILE]["sha256"] != ref.model_sha256:
        raise IntegrityError(
            f"{ref.uri}: model.safetensors was overwritten since this reference was taken "
            f"(sha256 {manifest['files'][_MODEL_FILE]['sha256']}, expected {ref.model_sha256})"
        )
    return _load_dir(fs, directory, manifest, map_location)


# --------------------------------------------------------------------------------------------------
# The manager
# --------------------------------------------------------------------------------------------------


@dataclass
class _SaveJob:
    step: int
    metrics: dict[str, float]
    plans: dict[str, _tree.FilePlan]
    state_json: bytes


class CheckpointManager:
    """Saves, lists, verifies, loads and prunes the checkpoints of one training run.

    Args:
        root: fsspec URL of the checkpoint store (``/path``, ``file://...``, ``memory://...``,
            ``s3://...``); checkpoints go to ``<root>/<run_id>/step-<12 digits>/``.
        run_id: the run, a safe single path component (see :func:`temporal_ml._names.check_name`).
        keep_last: after each save keep the ``keep_last`` most recent checkpoints (``None``: keep
            every checkpoint and never delete anything, not even torn leftovers).
        keep_best: also keep the ``keep_best`` best checkpoints by ``best_metric``.
        best_metric: the metric (a key of ``metrics`` given to :meth:`save`) that ranks checkpoints.
        best_mode: ``"min"`` if lower is better, ``"max"`` if higher is better.
        storage_options: fsspec options for ``root`` (credentials, ...).

    Retention never deletes the checkpoint just written, nor any checkpoint of a *later* step (left by
    a previous attempt that got further); it deletes uncommitted (torn) step directories older than
    the one just written. Deletion removes the manifest first, so a half-deleted checkpoint is never
    seen as committed.

    Thread safety: the methods may be called from any thread; saves are serialized. Several managers
    (processes) must not save the same run concurrently.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        run_id: str,
        *,
        keep_last: int | None = 2,
        keep_best: int = 0,
        best_metric: str | None = None,
        best_mode: Literal["min", "max"] = "min",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        _check_retention(keep_last, keep_best, best_metric, best_mode)
        self.run_id = check_name(run_id, "run id")
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = _fs.open_root(os.fspath(root), self.storage_options)
        self.run_dir = _fs.join(self.root, self.run_id)
        self._lock = threading.RLock()
        self._staging = _Staging()
        self._executor: cf.ThreadPoolExecutor | None = None
        self._pending: cf.Future[CheckpointRef] | None = None

    def __repr__(self) -> str:
        return f"CheckpointManager({self.fs.unstrip_protocol(self.run_dir)!r})"

    # ---- saving -----------------------------------------------------------------------------

    def save(
        self, step: int, state: Mapping[str, Any], *, metrics: Mapping[str, float] | None = None
    ) -> CheckpointRef:
        """Write and commit a checkpoint of ``state`` at ``step``, then apply retention.

        Tensors are written straight from their memory (no serialized copy) while being hashed.
        A pending :meth:`save_async` is waited for first.

        Args:
            step: global step (an int >= 0); saving an existing step replaces it safely.
            state: the training state (see :mod:`temporal_ml.storage._tree` for what it may hold);
                tensors under ``"model"`` and ``"optimizer"`` go to their own files.
            metrics: numbers recorded in the manifest and the returned ref (used by best-k).

        Returns:
            The committed checkpoint.

        Raises:
            ConfigError: invalid step, metrics or state content (nothing is written).
            Exception: the error of a failed earlier :meth:`save_async`, if not yet surfaced.
        """
        with self._lock:
            self._drain()
            job = self._prepare(step, state, metrics)
            payloads = {name: _direct_payload(plan) for name, plan in job.plans.items()}
            payloads[_STATE] = _Payload([memoryview(job.state_json)])
            return self._commit(job, payloads)

    def save_async(
        self, step: int, state: Mapping[str, Any], *, metrics: Mapping[str, float] | None = None
    ) -> cf.Future[CheckpointRef]:
        """Like :meth:`save`, but return once the tensors are copied to host staging buffers.

        The caller is blocked only while the state is encoded and its tensors are copied into
        reusable host buffers (pinned memory and non-blocking copies for CUDA tensors); one
        background thread then writes, hashes, commits and applies retention. The state may be
        modified as soon as this returns. A second save (sync or async) waits for this one first.
        The staging buffers (one host copy of the state's tensors) are kept for the next save
        until :meth:`close`.

        Returns:
            A future of the committed checkpoint. If the background save fails, the error is raised
            by the future and again by the next :meth:`save`, :meth:`save_async` or :meth:`wait`.
        """
        with self._lock:
            self._drain()
            job = self._prepare(step, state, metrics)
            payloads: dict[str, _Payload] = dict(self._staging.stage(job.plans))
            payloads[_STATE] = _Payload([memoryview(job.state_json)])
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(1, thread_name_prefix="temporal-ml-ckpt")
            self._pending = self._executor.submit(self._commit, job, payloads)
            return self._pending

    def wait(self) -> CheckpointRef | None:
        """Wait for the pending asynchronous save, if any, and return its checkpoint.

        Raises:
            Exception: the error of the pending save, if it failed.
        """
        with self._lock:
            return self._drain()

    def close(self) -> None:
        """Wait for a pending save, stop the background thread and free the staging buffers."""
        with self._lock:
            try:
                self._drain()
            finally:
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                    self._executor = None
                self._staging.clear()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _drain(self) -> CheckpointRef | None:
        future, self._pending = self._pending, None
        return None if future is None else future.result()

    def _prepare(
        self, step: int, state: Mapping[str, Any], metrics: Mapping[str, float] | None
    ) -> _SaveJob:
        step = _check_step(step)
        clean_metrics = _check_metrics(metrics)
        if not isinstance(state, Mapping):
            raise ConfigError(f"a checkpoint state must be a mapping, got {type(state).__name__}")
        encoded = _tree.encode_state(state if type(state) in (dict, OrderedDict) else dict(state))
        plans = {_TENSOR_FILES[g]: _tree.plan_file(encoded.tensors[g]) for g in _tree.GROUPS}
        return _SaveJob(step, clean_metrics, plans, _tree.dumps_tree(encoded.tree))

    def _commit(self, job: _SaveJob, payloads: Mapping[str, _Payload]) -> CheckpointRef:
        directory = self._dir(job.step)
        self.fs.makedirs(directory, exist_ok=True)
        suffix = f"{_fs.TMP_MARKER}{uuid.uuid4().hex}"
        files = _write_files(self.fs, directory, payloads, suffix)
        body = {
            "format": _FORMAT,
            "version": _VERSION,
            "run_id": self.run_id,
            "step": job.step,
            "metrics": job.metrics,
            "files": files,
        }
        manifest = _dump_manifest(body)
        self._replace(directory, files, suffix, manifest)
        ref = self._ref(job.step, body)
        self._after_commit(job.step, directory)
        return ref

    def _replace(
        self, directory: str, files: Mapping[str, Any], suffix: str, manifest: bytes
    ) -> None:
        """Move the new files into place and commit them (un-committing a different old version)."""
        manifest_path = _fs.join(directory, MANIFEST)
        try:
            previous = self.fs.cat_file(manifest_path)
        except FileNotFoundError:
            previous = None
        try:
            if previous is not None and previous != manifest:
                self.fs.rm(manifest_path)
            for name in files:
                target = _fs.join(directory, name)
                self.fs.mv(target + suffix, target)
            if previous != manifest:
                _fs.atomic_write(self.fs, manifest_path, manifest)
        except BaseException:
            _remove_quietly(self.fs, [_fs.join(directory, n) + suffix for n in files])
            raise

    # ---- retention --------------------------------------------------------------------------

    def _after_commit(self, step: int, directory: str) -> None:
        """Remove leftovers and expired checkpoints; failures are logged, never raised."""
        try:
            entries = self.fs.ls(directory, detail=False)
            stale = [p for p in entries if _fs.TMP_MARKER in posixpath.basename(p)]
            _remove_quietly(self.fs, stale)
            if self.keep_last is None:
                return
            scan = self._scan()
            refs = [ref for _, _, ref in scan if ref is not None]
            torn = [path for s, path, ref in scan if ref is None and s < step]
            _remove_quietly(self.fs, torn)
            for ref in self._expired(step, refs):
                self._delete(ref.step)
        except Exception:  # noqa: BLE001 - the checkpoint is committed; pruning can wait
            log.warning("checkpoint retention failed in %s", self.run_dir, exc_info=True)

    def _expired(
        self, step: int, refs: builtins.list[CheckpointRef]
    ) -> builtins.list[CheckpointRef]:
        if self.keep_last is None:
            return []
        candidates = [r for r in refs if r.step <= step]
        keep = {step}
        if self.keep_last:
            keep.update(r.step for r in candidates[-self.keep_last :])
        if self.keep_best:
            keep.update(r.step for r in self._best(candidates))
        return [r for r in candidates if r.step not in keep]

    def _best(self, refs: builtins.list[CheckpointRef]) -> builtins.list[CheckpointRef]:
        metric = self.best_metric
        sign = 1.0 if self.best_mode == "min" else -1.0
        ranked = [r for r in refs if metric in r.metrics and not math.isnan(r.metrics[metric])]
        ranked.sort(key=lambda r: (sign * r.metrics[metric], -r.step))
        return ranked[: self.keep_best]

    def _delete(self, step: int) -> None:
        directory = self._dir(step)
        _remove_quietly(self.fs, [_fs.join(directory, MANIFEST)])
        _remove_quietly(self.fs, [directory])

    # ---- reading ----------------------------------------------------------------------------

    def list(self) -> builtins.list[CheckpointRef]:
        """Committed checkpoints (valid manifest; files not verified), ascending by step."""
        return [ref for _, _, ref in self._scan() if ref is not None]

    def latest(self, *, verify: bool = True) -> CheckpointRef | None:
        """The committed checkpoint with the highest step, or ``None``.

        Args:
            verify: also check the size and sha256 of every file, falling back to the previous
                checkpoint (with a warning naming the bad one) while the newest is corrupt.
        """
        for ref in reversed(self.list()):
            if not verify:
                return ref
            try:
                self._verify(ref)
            except IntegrityError as exc:
                log.warning("skipping corrupt checkpoint %s: %s", ref.uri, exc)
                continue
            return ref
        return None

    def load(
        self, ref: CheckpointRef | None = None, *, map_location: Any = "cpu"
    ) -> dict[str, Any]:
        """Load a checkpoint, verifying the sha256 of every file.

        Args:
            ref: the checkpoint to load; ``None`` loads the newest valid one.
            map_location: device for the tensors (``"cpu"`` by default).

        Raises:
            NotFoundError: ``ref`` is not committed, or (``ref=None``) there is no valid checkpoint.
            IntegrityError: a file is missing, truncated or corrupt (the message names it).
        """
        if ref is not None:
            return load_checkpoint(
                ref, map_location=map_location, storage_options=self.storage_options
            )
        found = self.load_latest_valid(map_location=map_location)
        if found is None:
            raise NotFoundError(f"no valid checkpoint in {self.fs.unstrip_protocol(self.run_dir)}")
        return found[1]

    def load_latest_valid(
        self, *, map_location: Any = "cpu"
    ) -> tuple[CheckpointRef, dict[str, Any]] | None:
        """Load the newest checkpoint that verifies, skipping (with a warning) corrupt ones.

        Returns:
            ``(ref, state)``, or ``None`` if the run has no valid checkpoint (start from scratch).
        """
        for ref in reversed(self.list()):
            try:
                return ref, self.load(ref, map_location=map_location)
            except (IntegrityError, NotFoundError) as exc:
                log.warning("skipping corrupt checkpoint %s: %s", ref.uri, exc)
        return None

    def _verify(self, ref: CheckpointRef) -> None:
        directory = self._dir(ref.step)
        manifest = _read_manifest(self.fs, directory, self.run_id, ref.step)
        files = manifest["files"]
        _run_all([(_verify_file, (self.fs, _fs.join(directory, n), files[n])) for n in files])

    def _scan(self) -> builtins.list[tuple[int, str, CheckpointRef | None]]:
        """``(step, directory, ref or None if uncommitted)`` for every step directory, ascending."""
        self.fs.invalidate_cache(self.run_dir)
        try:
            entries = self.fs.ls(self.run_dir, detail=False)
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            name = posixpath.basename(entry.rstrip("/"))
            match = _STEP_RE.match(name)
            if not match or name != step_dirname(int(match.group(1))):
                continue
            step = int(match.group(1))
            directory = _fs.join(self.run_dir, name)
            try:
                ref = self._ref(step, _read_manifest(self.fs, directory, self.run_id, step))
            except NotFoundError:
                ref = None  # torn, being written or being deleted
            except IntegrityError as exc:
                log.warning("ignoring checkpoint with a corrupt manifest: %s", exc)
                ref = None
            out.append((step, directory, ref))
        return sorted(out, key=lambda item: item[0])

    def _dir(self, step: int) -> str:
        return _fs.join(self.run_dir, step_dirname(step))

    def _ref(self, step: int, manifest: Mapping[str, Any]) -> CheckpointRef:
        return CheckpointRef(
            run_id=self.run_id,
            step=step,
            uri=self.fs.unstrip_protocol(self._dir(step)),
            model_sha256=manifest["files"][_MODEL_FILE]["sha256"],
            metrics=manifest["metrics"],
        )


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _check_retention(
    keep_last: int | None, keep_best: int, best_metric: str | None, best_mode: str
) -> None:
    if keep_last is not None and (type(keep_last) is not int or keep_last < 0):
        raise ConfigError(f"keep_last must be None or an int >= 0, got {keep_last!r}")
    if type(keep_best) is not int or keep_best < 0:
        raise ConfigError(f"keep_best must be an int >= 0, got {keep_best!r}")
    if keep_best and not best_metric:
        raise ConfigError("keep_best > 0 needs best_metric (the metric that ranks checkpoints)")
    if best_mode not in ("min", "max"):
        raise ConfigError(f"best_mode must be 'min' or 'max', got {best_mode!r}")


def _check_step(step: Any) -> int:
    try:
        value = operator.index(step)
    except TypeError:
        value = -1
    if isinstance(step, bool) or value < 0:
        raise ConfigError(f"checkpoint step must be an int >= 0, got {step!r}")
    return value


def _check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    out = {}
    for key, value in (metrics or {}).items():
        if type(key) is not str or isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"metrics must map str to numbers, got {key!r}: {value!r}")
        out[key] = float(value)
    return out
