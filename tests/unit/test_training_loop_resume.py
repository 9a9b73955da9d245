"""Hardening of the training loop (issue 7): the final checkpoint is always a valid one, resume
picks the newest valid of (hint, store), the config hash covers only the trajectory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from temporal_ml.errors import ConfigError
from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.types import CheckpointRef, TrainConfig
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


# -- item 4: resume from the newest valid of (hints, store); snapshot id; trajectory-only config hash --


def _stop_at(step: int) -> LoopControl:
    control = LoopControl()
    control._on_progress = lambda p: p.step >= step and control.request_stop("pause")  # type: ignore[assignment]
    return control


def _partial(root: Path, config: TrainConfig, step: int, **kw: object) -> CheckpointRef:
    loop = TrainingLoop(MLPTrainable(), config, run_id="run", data=DATA, control=_stop_at(step),
                        checkpoints=CheckpointManager(str(root), "run", keep_last=3), **kw)  # type: ignore[arg-type]
    return loop.run().checkpoint


def test_a_newer_hint_on_another_store_wins_over_an_older_local_checkpoint(tmp_path: Path) -> None:
    config = _config()
    straight = _loop(tmp_path / "a", config).run()
    _partial(tmp_path / "local", config, 10)
    newer = _partial(tmp_path / "elsewhere", config, 25)  # e.g. recorded by the workflow
    result = _loop(tmp_path / "local", config).run(resume_hint=[None, newer])
    assert result.resumed_from == newer
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_bad_hint_falls_back_to_the_store_or_to_scratch(tmp_path: Path, damage: str) -> None:
    config = _config()
    straight = _loop(tmp_path / "a", config).run()
    hint = _partial(tmp_path / "elsewhere", config, 25)
    step_dir = tmp_path / "elsewhere" / "run" / "step-000000000025"
    if damage == "missing":
        shutil.rmtree(step_dir)
    else:
        _flip_last_byte(step_dir / "model.safetensors")
    # empty store: the run starts from scratch instead of failing permanently
    fresh = _loop(tmp_path / "empty", config).run(resume_hint=hint)
    assert fresh.resumed_from is None
    assert fresh.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    # a store with an older valid checkpoint: resume from it
    _partial(tmp_path / "local", config, 10)
    result = _loop(tmp_path / "local", config).run(resume_hint=[hint])
    assert result.resumed_from is not None and result.resumed_from.step == 10
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256


def test_resume_against_another_snapshot_is_refused(tmp_path: Path) -> None:
    config = _config()
    _partial(tmp_path, config, 10, snapshot_id="a" * 64)
    state = CheckpointManager(str(tmp_path), "run").load()
    assert state["meta"]["snapshot_id"] == "a" * 64
    loop = TrainingLoop(MLPTrainable(), config, run_id="run", data=DATA, snapshot_id="b" * 64,
                        checkpoints=CheckpointManager(str(tmp_path), "run"))
    with pytest.raises(ConfigError, match="snapshot aaaaaaaaaaaa"):
        loop.run()


def test_operational_settings_may_change_on_resume(tmp_path: Path) -> None:
    config = _config()
    straight = _loop(tmp_path / "a", config).run()
    _partial(tmp_path / "b", config, 15)
    changed = config.model_copy(update={
        "checkpoint_every_steps": 7, "checkpoint_every_seconds": 60.0, "keep_last": 5,
        "log_every_steps": 3, "async_checkpoints": not config.async_checkpoints, "device": "auto",
        "eval_split": "dev",
    })
    assert changed.config_hash() == config.config_hash() != changed.full_hash()
    result = _loop(tmp_path / "b", changed).run()
    assert result.resumed_from is not None and result.resumed_from.step == 15
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256


@pytest.mark.parametrize("update", [{"seed": 4}, {"hparams": {"lr": 0.5}}, {"batch_size": 8},
                                    {"max_steps": 50}, {"deterministic": False}])
def test_trajectory_changes_are_refused_on_resume(tmp_path: Path, update: dict) -> None:
    config = _config()
    _partial(tmp_path, config, 10)
    changed = config.model_copy(update=update)
    assert changed.config_hash() != config.config_hash()
    with pytest.raises(ConfigError, match="different config"):
        _loop(tmp_path, changed).run()


def test_checkpoints_of_the_previous_version_still_resume(tmp_path: Path) -> None:
    """Checkpoints written before the trajectory-only hash recorded the full-config hash."""
    config = _config()
    straight = _loop(tmp_path / "a", config).run()
    manager = CheckpointManager(str(tmp_path / "b"), "run")
    _partial(tmp_path / "b", config, 15)
    ref = manager.latest()
    assert ref is not None
    state = manager.load(ref)
    state["meta"] = {"run_id": "run", "config_hash": config.full_hash()}  # the 0.1.0 meta
    manager.save(15, state)
    result = _loop(tmp_path / "b", config).run()
    assert result.resumed_from is not None and result.resumed_from.step == 15
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256


# -- item 6: a failed background save stops training at the next step, as a StorageError --


def test_failed_async_save_surfaces_at_the_next_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write fails as a full disk does (the tmpfs version is tests/integration/test_storage_faults.py)."""
    import errno
    import time as _time

    from temporal_ml.errors import StorageError
    from temporal_ml.storage import _ckpt_io

    real = _ckpt_io.write_files
    steps: list[int] = []

    def full_after_two(*args: object, **kwargs: object) -> object:
        if len(steps) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        steps.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_ckpt_io, "write_files", full_after_two)
    seen: list[int] = []
    control = LoopControl(on_progress=lambda p: seen.append(p.step))
    config = _config(async_checkpoints=True, log_every_steps=1, max_steps=60,
                     hparams={"step_delay": 0.01})
    loop = TrainingLoop(MLPTrainable(), config, run_id="run", data=DATA, control=control,
                        checkpoints=CheckpointManager(str(tmp_path), "run"))
    start = _time.monotonic()
    with pytest.raises(StorageError, match=r"step-000000000030: No space left on device \[ENOSPC\]"):
        loop.run()
    assert max(seen) <= 32  # the save of step 30 failed; training stopped at once, not at step 40
    assert [r.step for r in CheckpointManager(str(tmp_path), "run").list()] == [10, 20]
    assert _time.monotonic() - start < 30


# -- item 8: exact resume with RNG draws, a grad scaler and asynchronous checkpoints (in process) --


def test_rng_draws_and_grad_scaler_resume_exactly_with_async_saves(tmp_path: Path) -> None:
    from tests.trainables import NoisyScaledTrainable

    config = _config(trainable="noisy", async_checkpoints=True, max_steps=40, hparams={"dropout": 0.3})

    def loop(root: Path, control: LoopControl | None = None) -> TrainingLoop:
        return TrainingLoop(NoisyScaledTrainable(), config, run_id="run", data=DATA, control=control,
                            checkpoints=CheckpointManager(str(root), "run", keep_last=3))

    straight = loop(tmp_path / "a").run()
    for stop in (13, 27):  # progress (and so the stop) comes every 5 steps: stops at 15, 30
        loop(tmp_path / "b", _stop_at(stop)).run()
    resumed = loop(tmp_path / "b").run()
    assert resumed.resumed_from is not None and resumed.resumed_from.step == 30
    assert resumed.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    state = load_checkpoint(resumed.checkpoint)
    assert state["scaler"]["scale"] != 2.0**8  # the scaler's state moved and was restored
    assert state["counters"]["resumes"] == 2  # the count survives in the checkpoints
