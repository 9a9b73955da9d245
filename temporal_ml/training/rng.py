"""Seeding and capture/restore of every RNG a training step may draw from: Python, NumPy, torch CPU
and every CUDA device. Captured states are tensors, arrays and JSON values (no pickle)."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["seed_everything", "capture_rng_state", "restore_rng_state", "RngStream"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def capture_rng_state() -> dict[str, Any]:
    """The state of every global RNG, for a checkpoint."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(tuple(state["numpy"]))  # type: ignore[arg-type]
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


class RngStream:
    """A private random stream for one training run in a process that may run several at once.

    Python's, NumPy's and torch's RNGs are process-global, so two runs training in threads of one
    worker would draw from (and checkpoint) each other's randomness, and neither would be
    reproducible. Every RNG-touching phase of a run executes inside :meth:`active`: a process-wide
    lock that, when ownership changes, saves the previous owner's global RNG state and installs
    this stream's. With a single run per process this costs one uncontended lock per step.
    """

    _lock = threading.RLock()
    _owner: RngStream | None = None

    def __init__(self) -> None:
        self._state: dict[str, Any] | None = None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make this stream's state the global RNG state for the duration of the block."""
        with RngStream._lock:
            owner = RngStream._owner
            if owner is not self:
                if owner is not None:
                    owner._state = capture_rng_state()
                if self._state is not None:
                    restore_rng_state(self._state)
                RngStream._owner = self
            yield

    def close(self) -> None:
        """Give up ownership (the run is over)."""
        with RngStream._lock:
            if RngStream._owner is self:
                RngStream._owner = None
