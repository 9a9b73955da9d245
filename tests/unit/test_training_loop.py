"""TrainingLoop: exact resume in-process, cadence, stop protocol, corrupt-checkpoint fallback."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import torch

from temporal_ml.errors import ConfigError
from temporal_ml.storage.checkpoints import CheckpointManager
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.types import TrainConfig
from tests.trainables import MLPTrainable, blobs

DATA = blobs()


def _config(**overrides: object) -> TrainConfig:
    base = dict(trainable="mlp", max_steps=60, batch_size=16, checkpoint_every_steps=10,
                log_every_steps=5, seed=3, eval_split="dev")
    return TrainConfig(**{**base, **overrides})


def _loop(root: str, config: TrainConfig, control: LoopControl | None = None,
          metrics: Path | None = None) -> TrainingLoop:
    return TrainingLoop(MLPTrainable(), config, run_id="run", data=DATA,
                        checkpoints=CheckpointManager(root, "run", keep_last=3),
                        metrics_path=metrics, control=control)


def _weights(root: str) -> dict[str, torch.Tensor]:
    return CheckpointManager(root, "run").load()["model"]


def _stop_at(step: int) -> LoopControl:
    control = LoopControl()
    control._on_progress = lambda p: p.step >= step and control.request_stop("pause")  # type: ignore[assignment]
    return control


@pytest.mark.parametrize("async_checkpoints", [False, True])
def test_interrupted_runs_match_uninterrupted_bitwise(tmp_path: Path, async_checkpoints: bool) -> None:
    config = _config(async_checkpoints=async_checkpoints)
    straight = _loop(str(tmp_path / "a"), config).run()
    assert straight.step == 60 and straight.resumed_from is None and straight.stopped is None

    root = str(tmp_path / "b")
    for stop_step in (15, 35):  # stops between checkpoints: 15 -> saved at 15; 35 -> saved at 35
        partial = _loop(root, config, control=_stop_at(stop_step)).run()
        assert partial.stopped == "pause" and partial.step == stop_step
        assert partial.checkpoint.step == stop_step
    resumed = _loop(root, config, metrics=tmp_path / "m.jsonl").run()
    assert resumed.resumed_from is not None and resumed.resumed_from.step == 35
    assert resumed.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    a, b = _weights(str(tmp_path / "a")), _weights(root)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["eval_accuracy"] == straight.metrics["eval_accuracy"] > 0.8
    events = [line for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert '"event": "resume"' in events[0] and '"event": "end"' in events[-1]


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path: Path) -> None:
    config = _config()
    straight = _loop(str(tmp_path / "a"), config).run()
    root = tmp_path / "b"
    _loop(str(root), config, control=_stop_at(40)).run()
    model_file = root / "run" / "step-000000000040" / "model.safetensors"
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0xFF
    model_file.write_bytes(bytes(data))
    resumed = _loop(str(root), config).run()
    assert resumed.resumed_from is not None and resumed.resumed_from.step == 30
    assert resumed.checkpoint.model_sha256 == straight.checkpoint.model_sha256


def test_resume_with_changed_config_is_a_config_error(tmp_path: Path) -> None:
    _loop(str(tmp_path), _config(), control=_stop_at(10)).run()
    with pytest.raises(ConfigError, match="different config"):
        _loop(str(tmp_path), _config(seed=4)).run()


def test_time_cadence_and_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    committed: list[int] = []
    control = LoopControl(on_progress=lambda p: seen.append(p.step),
                          on_checkpoint=lambda r: committed.append(r.step))
    config = _config(checkpoint_every_steps=None, checkpoint_every_seconds=0.01,
                     hparams={"step_delay": 0.004}, max_steps=20, async_checkpoints=False)
    result = _loop(f"memory://{uuid.uuid4()}", config, control=control).run()
    assert seen == [5, 10, 15, 20]
    assert len(committed) >= 4 and committed[-1] == 20 == result.checkpoint.step


def test_concurrent_runs_in_one_process_are_each_reproducible(tmp_path: Path) -> None:
    """Two runs training at once in threads of one process (as on a worker with several training
    slots) keep private RNG streams: each equals the same run trained alone, bitwise."""
    import threading

    config = _config(hparams={"dropout": 0.3})
    alone = _loop(str(tmp_path / "alone"), config).run()
    results: dict[str, object] = {}

    def train(name: str, cfg: TrainConfig) -> None:
        results[name] = _loop(str(tmp_path / name), cfg).run()

    other = _config(seed=11, hparams={"dropout": 0.5})
    threads = [threading.Thread(target=train, args=("twin", config)),
               threading.Thread(target=train, args=("other", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["twin"].checkpoint.model_sha256 == alone.checkpoint.model_sha256  # type: ignore[attr-defined]
    assert results["other"].checkpoint.model_sha256 == _loop(str(tmp_path / "o2"), other).run().checkpoint.model_sha256  # type: ignore[attr-defined]


@pytest.mark.parametrize("stop_at", [13, 58])
def test_a_resume_inside_a_logging_window_logs_and_reports_the_losses_of_a_straight_run(
    tmp_path: Path, stop_at: int
) -> None:
    """Stopped at a step that is no multiple of ``log_every_steps`` (a pause, a kill): the logging
    window the checkpoint was taken in goes on after the resume, so every logged loss and the final
    one equal the uninterrupted run's, bitwise (the window was restarted at the resume before)."""
    import json

    config = _config(log_every_steps=5, checkpoint_every_steps=100)

    def losses(path: Path) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in map(json.loads, path.read_text().splitlines())
                if e["event"] == "train"}

    straight = _loop(str(tmp_path / "a"), config, metrics=tmp_path / "a.jsonl").run()
    control = LoopControl()
    control._on_progress = lambda p: None  # type: ignore[assignment]
    steps = iter(range(10**6))
    control.should_stop = lambda: next(steps) >= stop_at  # type: ignore[method-assign]
    first = _loop(str(tmp_path / "b"), config, control=control, metrics=tmp_path / "b.jsonl").run()
    assert first.step == stop_at
    resumed = _loop(str(tmp_path / "b"), config, metrics=tmp_path / "b.jsonl").run()
    assert resumed.resumed_from is not None and resumed.resumed_from.step == stop_at
    assert resumed.metrics == straight.metrics  # the final loss too
    assert losses(tmp_path / "b.jsonl") == losses(tmp_path / "a.jsonl")
