"""Hardening of the training loop (issue 7): the final checkpoint is always a valid one, resume
picks the newest valid of (hint, store), the config hash covers only the trajectory."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.types import TrainConfig
from tests.trainables import MLPTrainable, blobs

DATA = blobs()


def _config(**overrides: object) -> TrainConfig:
    base = dict(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=10,
                log_every_steps=5, seed=3, device="cpu")
    return TrainConfig(**{**base, **overrides})


def _loop(root: Path, config: TrainConfig, run_id: str = "run") -> TrainingLoop:
    return TrainingLoop(MLPTrainable(), config, run_id=run_id, data=DATA,
                        checkpoints=CheckpointManager(str(root), run_id, keep_last=3))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("async_checkpoints", [False, True])
def test_corrupt_final_checkpoint_is_rewritten_not_returned(tmp_path: Path, async_checkpoints: bool) -> None:
    """Item 2: the newest checkpoint (the final one, step == max_steps) is corrupt. The rerun resumes
    from the previous one and must write a new final checkpoint, not return the corrupt one's ref."""
    config = _config(async_checkpoints=async_checkpoints)
    straight = _loop(tmp_path / "a", config).run()
    root = tmp_path / "b"
    first = _loop(root, config).run()
    assert first.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    _flip_last_byte(root / "run" / "step-000000000040" / "model.safetensors")

    again = _loop(root, config).run()
    assert again.resumed_from is not None and again.resumed_from.step == 30
    assert again.step == 40 and again.checkpoint.step == 40
    state = load_checkpoint(again.checkpoint)  # verifies every file's sha256 and the model digest
    assert state["counters"]["step"] == 40
    assert again.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    assert CheckpointManager(str(root), "run").latest() == again.checkpoint
