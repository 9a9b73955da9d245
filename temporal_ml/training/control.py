"""The thread-safe channel between a training thread and whatever supervises it (the training
activity, a test, a notebook): stop requests in, progress and committed checkpoints out."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

from temporal_ml.types import CheckpointRef, TrainProgress

__all__ = ["LoopControl", "StopReason"]

StopReason = Literal["pause", "stop", "cancel"]


class LoopControl:
    """Requests a stop and receives progress.

    The training thread calls :meth:`should_stop` once per step (a lock-free ``Event`` check) and
    reports through the callbacks, which must be quick and thread-safe.

    Args:
        on_progress: called with a :class:`TrainProgress` every ``log_every_steps``.
        on_checkpoint: called with each committed :class:`CheckpointRef` (possibly from the
            checkpoint writer thread).
        on_start: called once training is set up, with the starting step and the checkpoint it
            resumed from (``None`` for a fresh start).
        on_eval_rows: called with a ``RowProgress`` as the evaluation at the end of training
            (``TrainConfig.eval_split``) goes.
    """

    def __init__(
        self,
        on_progress: Callable[[TrainProgress], None] | None = None,
        on_checkpoint: Callable[[CheckpointRef], None] | None = None,
        on_start: Callable[[int, CheckpointRef | None], None] | None = None,
        on_eval_rows: Callable[[Any], None] | None = None,
    ) -> None:
        self._stop = threading.Event()
        self.recorded_resumes = 0
        #: the step of the checkpoint this start was asked to continue from (a pause ended, the
        #: workflow continued as new): restoring it, or a newer one, is no resume. ``None``: any
        #: restore is a resume (a retried attempt after a lost worker, a rerun of the run id).
        self.continues_from: int | None = None
        self.reason: StopReason | None = None
        self._on_progress = on_progress
        self._on_checkpoint = on_checkpoint
        self._on_start = on_start
        self._on_eval_rows = on_eval_rows

    def request_stop(self, reason: StopReason) -> None:
        """Ask the loop to checkpoint and return at the next step boundary."""
        if not self._stop.is_set():
            self.reason = reason
            self._stop.set()

    def should_stop(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def progress(self, progress: TrainProgress) -> None:
        """Report progress (called by the loop)."""
        if self._on_progress is not None:
            self._on_progress(progress)

    def eval_rows(self, rows: Any) -> None:
        """Report how far the evaluation at the end of training is (a ``RowProgress``)."""
        if self._on_eval_rows is not None:
            self._on_eval_rows(rows)

    def checkpoint_committed(self, ref: CheckpointRef) -> None:
        """Report a committed checkpoint (called by the loop or its writer thread)."""
        if self._on_checkpoint is not None:
            self._on_checkpoint(ref)

    def started(self, step: int, resumed_from: CheckpointRef | None, resumes: int = 0) -> None:
        """Report where training starts (called by the loop), and how many times the run has
        resumed according to its checkpoints (then available as :attr:`recorded_resumes`)."""
        self.recorded_resumes = resumes
        if self._on_start is not None:
            self._on_start(step, resumed_from)
