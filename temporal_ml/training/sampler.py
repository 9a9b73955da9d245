"""A seeded, resumable sampler: the data order is a pure function of (seed, epoch), and the position
is two integers, so a resumed run continues with exactly the batches it would have seen.

It draws from its own generator and never touches the global RNGs, so sampling does not perturb
dropout or any other randomness of the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from temporal_ml.errors import ConfigError

__all__ = ["ResumableSampler"]


class ResumableSampler:
    """Shuffled mini-batches of indices ``0..size-1``, epoch after epoch.

    Each epoch is a fresh permutation from ``numpy.random.default_rng([seed, epoch])``; the last
    batch of an epoch may be smaller. The position is ``(epoch, offset)``.

    Args:
        size: number of examples.
        batch_size: indices per batch.
        seed: seed of the data order.
    """

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < 1:
            raise ConfigError("the training split is empty")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.size = size
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.offset = 0
        self._order: np.ndarray | None = None

    def _permutation(self) -> np.ndarray:
        if self._order is None:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return self._order

    def next_batch(self) -> list[int]:
        """The next batch of indices (advancing the position)."""
        if self.offset >= self.size:
            self.epoch += 1
            self.offset = 0
            self._order = None
        order = self._permutation()
        batch = order[self.offset : self.offset + self.batch_size].tolist()
        self.offset += len(batch)
        return batch

    def state_dict(self) -> dict[str, Any]:
        """The position and identity of the sampler (JSON values)."""
        return {"size": self.size, "batch_size": self.batch_size, "seed": self.seed,
                "epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by :meth:`state_dict`.

        Raises:
            ConfigError: the saved sampler drew from different data or a different batch size.
        """
        for key in ("size", "batch_size", "seed"):
            if state[key] != getattr(self, key):
                raise ConfigError(
                    f"checkpoint sampler {key}={state[key]} does not match this run's {getattr(self, key)}"
                )
        self.epoch = int(state["epoch"])
        self.offset = int(state["offset"])
        self._order = None
