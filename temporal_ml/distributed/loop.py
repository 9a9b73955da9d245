"""``DistributedTrainingLoop``: the :class:`TrainingLoop` of one rank of a data-parallel gang.

Every rank builds the same model (same seed), wraps it in ``DistributedDataParallel`` and trains on
its slice of each global batch (:class:`ShardedSampler`); DDP averages the gradients, so each step is
the step of one process on the global batch, up to the order of floating-point reductions. What has
to agree across ranks is decided collectively:

* the resume point: rank 0 picks it (the newest valid checkpoint) and broadcasts it;
* stopping and time-based checkpoints: rank 0's flags travel in a small asynchronous all-reduce
  started at one step boundary and read at the next (its latency hides behind a step), so every
  rank stops or checkpoints at the same step;
* checkpoints: every rank contributes its RNG states (an all-gather), rank 0 writes them all.

The logged loss is the mean over the global batch (an all-reduce every ``log_every_steps``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from temporal_ml.distributed.sampler import ShardedSampler
from temporal_ml.storage.checkpoints import load_checkpoint
from temporal_ml.training.control import StopReason
from temporal_ml.training.loop import TrainingLoop, resolve_device
from temporal_ml.training.rng import capture_rng_state, restore_rng_state, seed_everything
from temporal_ml.training.trainable import TrainSetup
from temporal_ml.types import CheckpointRef

__all__ = ["DistributedTrainingLoop", "rank_seed"]

_REASONS: tuple[StopReason, ...] = ("pause", "stop", "cancel")


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """The seed of rank ``rank``'s own random stream (dropout, augmentation), from ``step`` on."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


class DistributedTrainingLoop(TrainingLoop):
    """A rank's training loop (``torch.distributed`` must be initialized).

    Args:
        *args: as for :class:`TrainingLoop`.
        rank: this rank; rank 0 writes checkpoints and metrics and evaluates.
        world_size: ranks in the gang.
        local_rank: this rank's index on its machine (its GPU under ``nccl``).
        stop_file: a file whose appearance (content: ``pause``, ``stop`` or ``cancel``) asks the gang
            to checkpoint and stop at the next step boundary; read by the first rank of each node.
        **kwargs: as for :class:`TrainingLoop`.
    """

    def __init__(self, *args: Any, rank: int, world_size: int, local_rank: int = 0,
                 stop_file: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.stop_file = stop_file
        self.writes_checkpoints = rank == 0
        self._module: torch.nn.Module | None = None
        self._flags: torch.Tensor | None = None
        self._pending: Any = None
        self._agreed = (0, 0)
        self._time_requests = self._time_handled = 0
        self._last_ckpt_time = time.monotonic()

    # -- set-up ------------------------------------------------------------------------------------

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", self.local_rank)
        else:
            device = resolve_device(self.config.device)
            if device.type == "cuda" and device.index is None:
                device = torch.device("cuda", self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self._flag_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
        return device

    def _prepare(self, setup: TrainSetup) -> ShardedSampler:
        from torch.nn.parallel import DistributedDataParallel

        # The model was built from the run's seed on every rank (identical weights; DDP checks it).
        # From here on each rank draws from its own stream: dropout, augmentation.
        if self.rank:
            seed_everything(rank_seed(self.config.seed, self.rank))
        self._module = setup.model
        device = next(setup.model.parameters()).device
        if self.world_size > 1:  # alone, a rank trains exactly like the single-process loop
            setup.model = DistributedDataParallel(
                setup.model, device_ids=[device.index] if device.type == "cuda" else None)
        return ShardedSampler(setup.train_size, self.config.batch_size, self.config.seed,
                              self.rank, self.world_size)

    def _unwrapped(self, setup: TrainSetup) -> TrainSetup:
        """``setup`` with the bare module (state dicts without DDP's ``module.`` prefix)."""
        assert self._module is not None
        return TrainSetup(**{**setup.__dict__, "model": self._module})

    # -- state -------------------------------------------------------------------------------------

    def _state(self, setup: TrainSetup, sampler: Any, step: int) -> dict[str, Any]:
        rngs: list[Any] = [None] * self.world_size
        dist.all_gather_object(rngs, capture_rng_state())
        windows: list[Any] = [None] * self.world_size
        dist.all_gather_object(windows, self._window_state())
        if not self.writes_checkpoints:
            return {}
        state = super()._state(self._unwrapped(setup), sampler, step)
        state["ranks"] = {"world_size": self.world_size, "rng": rngs, "loss_window": windows}
        return state

    def _restore(self, setup: TrainSetup, sampler: Any, state: dict[str, Any]) -> int:
        step = super()._restore(self._unwrapped(setup), sampler, state)  # rank 0's RNG states
        ranks = state.get("ranks") or {}
        windows = ranks.get("loss_window") or []
        same_gang = int(ranks.get("world_size", 1)) == self.world_size and len(windows) == self.world_size
        self._window_restored = self._window_of(windows[self.rank]) if same_gang else None
        if self.rank:
            saved = ranks.get("rng") or []
            if self.rank < len(saved):
                restore_rng_state(saved[self.rank])
            else:  # a checkpoint of a smaller gang: a fresh stream for this rank
                seed_everything(rank_seed(self.config.seed, self.rank, step))
        return step

    def _find_resume_point(
        self, hints: Sequence[CheckpointRef]
    ) -> tuple[CheckpointRef, dict[str, Any]] | None:
        found = super()._find_resume_point(hints) if self.rank == 0 else None
        chosen = [found[0] if found is not None else None]
        dist.broadcast_object_list(chosen, src=0)
        if self.rank == 0 or chosen[0] is None:
            return found
        return chosen[0], load_checkpoint(chosen[0])

    # -- steps -------------------------------------------------------------------------------------

    def _step(self, setup: TrainSetup, sampler: Any) -> torch.Tensor:
        indices, weight = sampler.next_shard()
        loss = self.trainable.train_step(setup, setup.make_batch(indices))
        if weight != 1.0:
            loss = loss * weight
        self._optimizer_step(setup, loss)
        return loss

    def _local_flags(self) -> list[int]:
        if self.local_rank != 0:
            return [0, 0]
        # the first rank of every node reads its supervisor's stop file
        control = self.control
        if not control.should_stop() and self.stop_file is not None and self.stop_file.exists():
            reason = self.stop_file.read_text().strip()
            control.request_stop(reason if reason in _REASONS else "stop")  # type: ignore[arg-type]
        stop = _REASONS.index(control.reason) + 1 if control.should_stop() and control.reason else 0
        if self.rank != 0:
            return [stop, 0]
        if (self._time_requests == self._time_handled
                and super()._checkpoint_due_by_time(self._last_ckpt_time)):
            self._time_requests += 1
        return [stop, self._time_requests]

    def _exchange_flags(self) -> None:
        """Read the flags agreed at the previous boundary and send this boundary's."""
        if self._pending is None:  # the first boundary: agree synchronously (stop_at_start)
            first = torch.tensor(self._local_flags(), dtype=torch.int64, device=self._flag_device)
            dist.all_reduce(first, op=dist.ReduceOp.MAX)
            self._agreed = (int(first[0]), int(first[1]))
        else:
            self._pending.wait()
            assert self._flags is not None
            self._agreed = (int(self._flags[0]), int(self._flags[1]))
        self._flags = torch.tensor(self._local_flags(), dtype=torch.int64, device=self._flag_device)
        self._pending = dist.all_reduce(self._flags, op=dist.ReduceOp.MAX, async_op=True)

    def _stop_requested(self) -> bool:
        self._exchange_flags()
        code = self._agreed[0]
        if code and not self.control.should_stop():
            self.control.request_stop(_REASONS[code - 1])
        return code > 0

    def _checkpoint_due_by_time(self, last_ckpt_time: float) -> bool:
        self._last_ckpt_time = last_ckpt_time
        if self._agreed[1] > self._time_handled:
            self._time_handled = self._agreed[1]
            self._last_ckpt_time = time.monotonic()
            return True
        return False

    def _mean_loss(self, loss_sum: torch.Tensor, window: int) -> float:
        total = (loss_sum / window).detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return float(total.item()) / self.world_size

    def _final_checkpoint(
        self, step: int, known: CheckpointRef | None, save: Any
    ) -> CheckpointRef | None:
        if self._pending is not None:
            self._pending.wait()
            self._pending = None
        needed = [known is None or known.step != step]
        dist.broadcast_object_list(needed, src=0)
        ref = save(step, final=True) if needed[0] else known
        final = [ref]
        dist.broadcast_object_list(final, src=0)
        return final[0]

    def _evaluate(self, setup: TrainSetup) -> dict[str, float]:
        if self.rank != 0:
            return {}
        return super()._evaluate(self._unwrapped(setup))
