"""Non-finite numbers are data (issue 18, item 1): NaN and the infinities survive every payload, query,
result and table with one encoding (``temporal_ml.converter``), and nothing that carries a metric
fails to decode."""

from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any

import pytest
from pydantic import BaseModel

import temporal_ml
from temporal_ml.converter import data_converter, decode_nonfinite
from temporal_ml.types import (
    CheckpointRef,
    EvalResult,
    ExperimentStatus,
    SnapshotRef,
    TrainProgress,
    TrainResult,
)

NONFINITE = [math.nan, math.inf, -math.inf]


def _library_models() -> list[type[BaseModel]]:
    for info in pkgutil.walk_packages(temporal_ml.__path__, "temporal_ml."):
        if "._examples" in info.name:
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
    seen: list[type[BaseModel]] = []
    stack = list(BaseModel.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("temporal_ml.") and cls not in seen and "[" not in cls.__name__:
            seen.append(cls)
    return seen


def _round_trip(value: Any, type_hint: Any) -> Any:
    converter = data_converter.payload_converter
    [payload] = converter.to_payloads([value])
    assert b"NaN" in payload.data or b"Infinity" in payload.data, payload.data
    [back] = converter.from_payloads([payload], [type_hint])
    return back


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


def test_every_library_model_writes_nonfinite_numbers_as_strings() -> None:
    models = _library_models()
    assert len(models) > 25, [m.__name__ for m in models]
    wrong = [f"{m.__module__}.{m.__qualname__}" for m in models
             if m.model_config.get("ser_json_inf_nan") != "strings"]
    assert not wrong, f"models without ser_json_inf_nan='strings': {wrong}"


@pytest.mark.parametrize("value", NONFINITE)
def test_results_progress_and_statuses_survive_a_payload(value: float) -> None:
    snapshot = SnapshotRef(id="a" * 64, root="memory://s", splits={"train": 1})
    ckpt = CheckpointRef(run_id="r", step=1, uri="memory://c", model_sha256="b" * 64,
                         metrics={"loss": value})
    train = TrainResult(run_id="r", snapshot=snapshot, checkpoint=ckpt, steps=1,
                        metrics={"loss": value, "eval_accuracy": 0.5})
    back = _round_trip(train, TrainResult)
    assert _same(back.metrics["loss"], value) and _same(back.checkpoint.metrics["loss"], value)
    evaluation = EvalResult(checkpoint=ckpt, snapshot=snapshot, split="dev", examples=3, loss=value,
                            metrics={"loss": value})
    back_eval = _round_trip(evaluation, EvalResult)
    assert _same(back_eval.loss, value) and _same(back_eval.metrics["loss"], value)
    progress = _round_trip(TrainProgress(state="training", step=3, loss=value), TrainProgress)
    assert _same(progress.loss, value)
    status = _round_trip(ExperimentStatus(name="e", loss=value), ExperimentStatus)
    assert _same(status.loss, value)


def test_plain_values_use_the_same_encoding() -> None:
    rows = [{"name": "t0000", "value": math.nan, "metrics": {"loss": math.inf}}]
    back = _round_trip(rows, list[dict[str, Any]])
    assert back == [{"name": "t0000", "value": "NaN", "metrics": {"loss": "Infinity"}}]
    decoded = decode_nonfinite(back)
    assert math.isnan(decoded[0]["value"]) and decoded[0]["metrics"]["loss"] == math.inf
    assert _round_trip([-math.inf], list[float]) == [-math.inf]


def test_a_diverged_loss_stops_the_run_at_once_without_a_checkpoint(tmp_path: Any) -> None:
    from temporal_ml.errors import DivergedError
    from tests.unit.test_training_loop import _config, _loop

    diverging = _config(hparams={"lr": 1e6, "hidden": 8}, max_steps=200, checkpoint_every_steps=2,
                        log_every_steps=50)
    metrics = tmp_path / "metrics.jsonl"
    with pytest.raises(DivergedError, match=r"^diverged: loss (nan|inf|-inf) at step \d+$") as info:
        _loop(str(tmp_path / "ckpt"), diverging, metrics=metrics).run()
    step = int(str(info.value).rsplit(" ", 1)[1])
    assert step < 50, "caught at its step on CPU, not at the next log step"
    import json

    events = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert events[-1]["event"] == "diverged" and events[-1]["step"] == step
    from temporal_ml.storage.checkpoints import CheckpointManager

    saved = [r.step for r in CheckpointManager(str(tmp_path / "ckpt"), "run").list()]
    assert saved and max(saved) < step  # the diverged weights were never written


def test_stop_on_nonfinite_loss_is_operational_and_off_the_wire_by_default() -> None:
    from temporal_ml.types import TrainConfig

    on = TrainConfig(trainable="mlp", max_steps=10)
    off = on.model_copy(update={"stop_on_nonfinite_loss": False})
    assert "stop_on_nonfinite_loss" not in on.model_dump_json()  # payloads of earlier versions
    assert on.config_hash() == off.config_hash() and on.full_hash() != off.full_hash()
    assert TrainConfig.model_validate_json(off.model_dump_json()).stop_on_nonfinite_loss is False


def test_a_run_told_to_go_on_reports_its_nonfinite_loss(tmp_path: Any) -> None:
    from tests.unit.test_training_loop import _config, _loop

    config = _config(hparams={"lr": 1e6, "hidden": 8}, max_steps=20, stop_on_nonfinite_loss=False)
    result = _loop(str(tmp_path), config).run()
    assert not math.isfinite(result.metrics["loss"])
    back = _round_trip({"loss": result.metrics["loss"]}, dict[str, float])
    assert _same(back["loss"], result.metrics["loss"])
