"""Rebuilding a trained model from a checkpoint, for evaluation and inference."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporal_ml.storage.checkpoints import load_checkpoint
from temporal_ml.training.loop import resolve_device
from temporal_ml.training.rng import RngStream, seed_everything
from temporal_ml.training.setup_cache import SetupCache
from temporal_ml.training.trainable import Trainable, TrainContext, TrainSetup
from temporal_ml.types import CheckpointRef, TrainConfig

__all__ = ["setup_from_checkpoint"]


def setup_from_checkpoint(
    trainable: Trainable,
    config: TrainConfig,
    data: Mapping[str, Any],
    checkpoint: CheckpointRef,
    *,
    storage_options: dict[str, Any] | None = None,
    snapshot_id: str | None = None,
    cache: SetupCache | None = None,
) -> TrainSetup:
    """The trainable's setup for ``config`` with the model weights of ``checkpoint``, in eval mode.

    The checkpoint is verified (every file's sha256, and the model digest against the reference)
    before anything is built. ``snapshot_id`` and ``cache`` reach the trainable as
    ``TrainContext.snapshot_id`` and ``TrainContext.cache`` (what it derives from the data alone is
    then built once per worker).

    Raises:
        NotFoundError: no committed checkpoint at ``checkpoint.uri``.
        IntegrityError: a file does not match its digest.
    """
    state = load_checkpoint(checkpoint, storage_options=storage_options)
    ctx = TrainContext(
        run_id=checkpoint.run_id, hparams=config.hparams, seed=config.seed, data=data,
        device=resolve_device(config.device), batch_size=config.batch_size, total_steps=config.total_steps,
        snapshot_id=snapshot_id, cache=cache,
    )
    stream = RngStream()  # never disturb the RNGs of a run training in this process
    try:
        with stream.active():
            seed_everything(config.seed)
            setup = trainable.setup(ctx)
    finally:
        stream.close()
    setup.model.load_state_dict(state["model"])
    setup.model.eval()
    return setup
