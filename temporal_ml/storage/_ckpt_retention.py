"""Retention of checkpoints: which to keep after a save (keep-last, keep-best) and how to delete.

After each commit, :func:`prune` removes the temporary leftovers in the new step directory and, unless
``keep_last`` is ``None``, the torn step directories older than the new one and every checkpoint the
:class:`Retention` policy no longer keeps. It never deletes the checkpoint just written, nor any
checkpoint of a later step. :func:`delete` removes the manifest first, so a half-deleted checkpoint is
never seen as committed.
"""

from __future__ import annotations

import logging
import math
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from fsspec import AbstractFileSystem

from temporal_ml.errors import ConfigError
from temporal_ml.storage import _ckpt_io, _fs
from temporal_ml.storage._ckpt_manifest import MANIFEST, step_dirname
from temporal_ml.types import CheckpointRef

__all__ = ["check_retention", "Retention", "prune", "delete"]

log = logging.getLogger("temporal_ml.storage.checkpoints")

Scan = Callable[[], list[tuple[int, str, CheckpointRef | None]]]


def check_retention(
    keep_last: int | None, keep_best: int, best_metric: str | None, best_mode: str
) -> None:
    """Raise :class:`ConfigError` unless the arguments make a valid :class:`Retention`."""
    if keep_last is not None and (type(keep_last) is not int or keep_last < 0):
        raise ConfigError(f"keep_last must be None or an int >= 0, got {keep_last!r}")
    if type(keep_best) is not int or keep_best < 0:
        raise ConfigError(f"keep_best must be an int >= 0, got {keep_best!r}")
    if keep_best and not best_metric:
        raise ConfigError("keep_best > 0 needs best_metric (the metric that ranks checkpoints)")
    if best_mode not in ("min", "max"):
        raise ConfigError(f"best_mode must be 'min' or 'max', got {best_mode!r}")


@dataclass(frozen=True)
class Retention:
    """The checkpoints to keep (see :class:`~temporal_ml.storage.checkpoints.CheckpointManager`)."""

    keep_last: int | None
    keep_best: int
    best_metric: str | None
    best_mode: str

    def expired(self, step: int, refs: list[CheckpointRef]) -> list[CheckpointRef]:
        """The checkpoints of ``refs`` to delete now that ``step`` is committed."""
        if self.keep_last is None:
            return []
        candidates = [r for r in refs if r.step <= step]
        keep = {step}
        if self.keep_last:
            keep.update(r.step for r in candidates[-self.keep_last :])
        if self.keep_best:
            keep.update(r.step for r in self._best(candidates))
        return [r for r in candidates if r.step not in keep]

    def _best(self, refs: list[CheckpointRef]) -> list[CheckpointRef]:
        metric = cast(str, self.best_metric)  # set whenever keep_best > 0 (check_retention)
        sign = 1.0 if self.best_mode == "min" else -1.0
        ranked = [r for r in refs if metric in r.metrics and not math.isnan(r.metrics[metric])]
        ranked.sort(key=lambda r: (sign * r.metrics[metric], -r.step))
        return ranked[: self.keep_best]


def prune(fs: AbstractFileSystem, run_dir: str, step: int, policy: Retention, scan: Scan) -> None:
    """Remove leftovers and expired checkpoints after ``step`` was committed in ``run_dir``.

    ``scan`` lists ``(step, directory, ref or None if uncommitted)`` for every step directory in
    ascending order. Failures are logged, never raised: the checkpoint is committed, pruning can wait.
    """
    try:
        entries = fs.ls(_fs.join(run_dir, step_dirname(step)), detail=False)
        stale = [p for p in entries if _fs.TMP_MARKER in posixpath.basename(p)]
        _ckpt_io.remove_quietly(fs, stale)
        if policy.keep_last is None:
            return
        found = scan()
        refs = [ref for _, _, ref in found if ref is not None]
        torn = [path for s, path, ref in found if ref is None and s < step]
        _ckpt_io.remove_quietly(fs, torn)
        for ref in policy.expired(step, refs):
            delete(fs, _fs.join(run_dir, step_dirname(ref.step)))
    except Exception:  # noqa: BLE001 - the checkpoint is committed; pruning can wait
        log.warning("checkpoint retention failed in %s", run_dir, exc_info=True)


def delete(fs: AbstractFileSystem, directory: str) -> None:
    """Delete the checkpoint in ``directory``: its manifest first, then the rest."""
    _ckpt_io.remove_quietly(fs, [_fs.join(directory, MANIFEST)])
    _ckpt_io.remove_quietly(fs, [directory])
