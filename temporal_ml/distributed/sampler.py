"""The data order of a gang of ranks: one global :class:`ResumableSampler`, sliced per rank.

Every rank draws the same global batch (a pure function of seed, epoch and offset) and keeps its own
contiguous slice of it, so the global batch and the sample order do not depend on the world size, and
the position to checkpoint is the global sampler's (the same state as a single-process run's: a run
can resume at another world size and continue the same sample order).
"""

from __future__ import annotations

from typing import Any

from temporal_ml.training.sampler import ResumableSampler

__all__ = ["ShardedSampler", "shard"]


def shard(batch: list[int], rank: int, world_size: int) -> tuple[list[int], float]:
    """Rank ``rank``'s slice of a global batch and the weight of its loss.

    Slices are contiguous and as equal as possible (the first ``len % world_size`` ranks get one
    more). DDP averages gradients over the ranks; for that average to equal the gradient of the mean
    loss over the global batch, a rank's mean loss is weighted by ``world_size * len(slice) /
    len(batch)`` (exactly ``1.0`` when the batch divides evenly). A rank left without examples (a
    last batch of an epoch smaller than the world size) gets the batch's first example with weight 0.
    """
    n = len(batch)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    size = base + (1 if rank < extra else 0)
    if size == 0:
        return batch[:1], 0.0
    weight = 1.0 if extra == 0 else world_size * size / n
    return batch[start : start + size], weight


class ShardedSampler:
    """A rank's view of the global sampler (``batch_size`` is the global batch).

    Args:
        size: examples in the training split.
        batch_size: the global batch.
        seed: seed of the data order.
        rank: this rank.
        world_size: ranks in the gang.
    """

    def __init__(self, size: int, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        self.global_sampler = ResumableSampler(size, batch_size, seed)
        self.rank = rank
        self.world_size = world_size

    @property
    def epoch(self) -> int:
        return self.global_sampler.epoch

    def next_shard(self) -> tuple[list[int], float]:
        """This rank's slice of the next global batch and its loss weight (see :func:`shard`)."""
        return shard(self.global_sampler.next_batch(), self.rank, self.world_size)

    def state_dict(self) -> dict[str, Any]:
        """The global sampler's state (identical on every rank, and to a single-process run's)."""
        return self.global_sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_sampler.load_state_dict(state)
