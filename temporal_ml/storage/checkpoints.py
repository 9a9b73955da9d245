"""Checkpoints of training runs: atomic, verified on load, retained, optionally written in the background.

Layout of one checkpoint (any fsspec URL as root)::

    <root>/<run_id>/step-000000001200/
        model.safetensors       tensors under state["model"]
        optimizer.safetensors   tensors under state["optimizer"]
        extra.safetensors       every other tensor (RNG states, grad scaler, ...) and numpy arrays
        state.json              everything that is not a tensor (see :mod:`temporal_ml.storage._tree`)
        manifest.json           written last: step, metrics, sha256 and size of every file
    <root>/<run_id>/resumes.json  how many times the run has resumed (see :meth:`CheckpointManager.record_resume`)

A run may start from a verified copy of another run's checkpoint (:meth:`CheckpointManager.copy_from`,
the warm start of population-based training); the copy records its source in ``state["meta"]["init_from"]``.

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
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from temporal_ml._names import check_name
from temporal_ml.errors import IntegrityError, NotFoundError
from temporal_ml.storage import (
    _ckpt_copy,
    _ckpt_io,
    _ckpt_manifest,
    _ckpt_retention,
    _ckpt_save,
    _ckpt_staging,
    _fs,
)
from temporal_ml.storage._ckpt_io import Payload
from temporal_ml.storage._ckpt_load import load_checkpoint
from temporal_ml.storage._ckpt_manifest import FILES, MANIFEST, MODEL_FILE, STATE, step_dirname
from temporal_ml.types import CheckpointRef

if TYPE_CHECKING:
    from temporal_ml.types import TrainConfig

__all__ = ["CheckpointManager", "load_checkpoint", "copy_checkpoint", "step_dirname", "MANIFEST", "FILES"]

log = logging.getLogger(__name__)

#: The run's resume counter, beside its step directories.
RESUMES_FILE = "resumes.json"


def checkpoint_meta(run_id: str, config_hash: str, snapshot_id: str | None) -> dict[str, Any]:
    """``state["meta"]`` of a training run's checkpoints: the run, its config hash and snapshot id
    (what a resume checks before it restores anything)."""
    return {"run_id": run_id, "config_hash": config_hash, "snapshot_id": snapshot_id}


def copy_checkpoint(
    source: CheckpointRef,
    *,
    root: str | os.PathLike[str],
    run_id: str,
    config: TrainConfig,
    snapshot_id: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> CheckpointRef:
    """Commit a verified copy of ``source`` as the checkpoint of run ``run_id`` (under ``root``) at
    the same step, stamped for ``config`` on snapshot ``snapshot_id``: a warm start that the run then
    continues from with ``config`` (see :meth:`CheckpointManager.copy_from`; idempotent).

    Raises:
        NotFoundError: ``source`` is not committed.
        IntegrityError: a source file is missing or corrupt; no checkpoint is committed.
    """
    manager = CheckpointManager(root, run_id, keep_last=None, storage_options=storage_options)
    meta = checkpoint_meta(manager.run_id, config.config_hash(), snapshot_id)
    return manager.copy_from(source, meta=meta)


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
        _ckpt_retention.check_retention(keep_last, keep_best, best_metric, best_mode)
        self.run_id = check_name(run_id, "run id")
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = _fs.open_root(os.fspath(root), self.storage_options)
        self.run_dir = _fs.join(self.root, self.run_id)
        self._lock = threading.RLock()
        self._staging = _ckpt_staging.Staging()
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
            job = _ckpt_save.prepare(step, state, metrics)
            payloads = {n: _ckpt_staging.direct_payload(p) for n, p in job.plans.items()}
            payloads[STATE] = Payload([memoryview(job.state_json)])
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
            job = _ckpt_save.prepare(step, state, metrics)
            payloads: dict[str, Payload] = dict(self._staging.stage(job.plans))
            payloads[STATE] = Payload([memoryview(job.state_json)])
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

    def _commit(self, job: _ckpt_save.SaveJob, payloads: Mapping[str, Payload]) -> CheckpointRef:
        directory = self._dir(job.step)
        with _fs.storage_errors(f"checkpoint {self.fs.unstrip_protocol(directory)}"):
            body = _ckpt_save.write_checkpoint(self.fs, directory, self.run_id, job, payloads)
        ref = self._ref(job.step, body)
        policy = _ckpt_retention.Retention(
            self.keep_last, self.keep_best, self.best_metric, self.best_mode
        )
        _ckpt_retention.prune(self.fs, self.run_dir, job.step, policy, self._scan)
        return ref

    def copy_from(
        self,
        source: CheckpointRef,
        *,
        meta: Mapping[str, Any],
        source_storage_options: dict[str, Any] | None = None,
    ) -> CheckpointRef:
        """Commit a verified copy of another run's checkpoint as this run's checkpoint at its step.

        The warm start of population-based training: the tensor files are copied byte for byte, each
        checked against the source manifest's sha256 as it streams (the copy's ``model_sha256`` is the
        source's); ``state.json`` is the source's with ``state["meta"]`` replaced by ``meta`` plus
        ``meta["init_from"]``: ``{run_id, step, uri, model_sha256, config_hash}`` of the source (its
        lineage); a new manifest commits the copy last, as every save does. Idempotent: copying again
        (say after a crash mid-copy, which leaves only an invisible torn directory) commits the same
        bytes. Nothing is pruned.

        Args:
            source: a committed checkpoint of any run, on any store.
            meta: this run's identity for the copy's ``state["meta"]`` (JSON values).
            source_storage_options: fsspec options of the source's store (default: this store's).

        Returns:
            The committed copy.

        Raises:
            NotFoundError: ``source`` is not committed.
            IntegrityError: a source file is missing or corrupt (the message names it), or the source
                was overwritten since ``source`` was taken; no checkpoint is committed.
        """
        options = self.storage_options if source_storage_options is None else source_storage_options
        with self._lock:
            self._drain()
            directory = self._dir(source.step)
            with _fs.storage_errors(f"checkpoint {self.fs.unstrip_protocol(directory)}"):
                body = _ckpt_copy.copy_checkpoint(
                    self.fs, self.run_dir, self.run_id, source, meta, options
                )
            return self._ref(source.step, body)

    def check(self) -> None:
        """Raise the error of a failed :meth:`save_async` now, without waiting for a running one.

        Cheap (no I/O, no lock wait): a training loop calls it every step, so a failed background
        save stops training at the next step instead of at the next checkpoint.

        Raises:
            Exception: the error of the pending save, if it has already failed.
        """
        future = self._pending
        if future is not None and future.done() and future.exception() is not None:
            with self._lock:
                if self._pending is future:
                    self._drain()

    # ---- resumes ----------------------------------------------------------------------------

    def recorded_resumes(self) -> int:
        """How many times the run has resumed from one of its checkpoints, as last recorded by
        :meth:`record_resume` (``0`` when nothing was recorded or the record is unreadable)."""
        path = _fs.join(self.run_dir, RESUMES_FILE)
        try:
            with self.fs.open(path, "rb") as f:
                return max(0, int(json.loads(f.read())["resumes"]))
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable resume record %s: %s", path, exc)
            return 0

    def record_resume(self, resumes: int) -> None:
        """Record, atomically and before training goes on, that the run has now resumed ``resumes``
        times. A start that restored a checkpoint and was killed before its next checkpoint still
        counts: the next start reads this record, not only the counter inside the checkpoint.
        ``0`` (a fresh start) removes the record.

        Example:
            >>> manager = CheckpointManager("memory://ckpt-doc", "run-a")
            >>> manager.record_resume(2); manager.recorded_resumes()
            2
        """
        path = _fs.join(self.run_dir, RESUMES_FILE)
        with _fs.storage_errors(f"resume record {self.fs.unstrip_protocol(path)}"):
            if resumes <= 0:
                if self.fs.exists(path):
                    self.fs.rm(path)
                return
            self.fs.makedirs(self.run_dir, exist_ok=True)
            _fs.atomic_write(self.fs, path, json.dumps({"resumes": int(resumes)}).encode())

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
        manifest = _ckpt_manifest.read_manifest(self.fs, directory, self.run_id, ref.step)
        files = manifest["files"]
        _ckpt_io.run_all(
            [(_ckpt_io.verify_file, (self.fs, _fs.join(directory, n), files[n])) for n in files]
        )

    def _scan(self) -> builtins.list[tuple[int, str, CheckpointRef | None]]:
        """``(step, directory, ref or None if uncommitted)`` for every step directory, ascending."""
        return [
            (step, directory, None if manifest is None else self._ref(step, manifest))
            for step, directory, manifest in _ckpt_manifest.scan(self.fs, self.run_dir, self.run_id)
        ]

    def _dir(self, step: int) -> str:
        return _fs.join(self.run_dir, step_dirname(step))

    def _ref(self, step: int, manifest: Mapping[str, Any]) -> CheckpointRef:
        return CheckpointRef(
            run_id=self.run_id,
            step=step,
            uri=self.fs.unstrip_protocol(self._dir(step)),
            model_sha256=manifest["files"][MODEL_FILE]["sha256"],
            metrics=manifest["metrics"],
        )
