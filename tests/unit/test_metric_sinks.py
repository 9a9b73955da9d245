"""Metric sinks: the JSONL log is unchanged by them, TensorBoard and MLflow receive a run's metrics
(resumed runs included), unknown names fail in one line before anything starts, users add their own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError

from temporal_ml.errors import ConfigError
from temporal_ml.failures import one_line
from temporal_ml.metric_sinks import (
    MetricSink,
    SinkContext,
    check_metric_sinks,
    metric_sink_names,
    register_metric_sink,
    resolve_metric_sinks,
)
from temporal_ml.storage.checkpoints import CheckpointManager
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.types import TrainConfig
from tests.trainables import MLPTrainable, blobs

DATA = blobs(n_train=128, n_dev=32)


class ListSink:
    """A user sink: keeps what it receives (and says whether it was closed)."""

    received: list[tuple[str, int, dict[str, float]]] = []
    opened: list[int] = []

    def __init__(self, ctx: SinkContext) -> None:
        self.run_id = ctx.run_id
        ListSink.opened.append(ctx.start_step)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        ListSink.received.append((self.run_id, step, dict(metrics)))

    def close(self) -> None:
        ListSink.received.append((self.run_id, -1, {}))


register_metric_sink("test-list", ListSink, replace=True)


def _config(**overrides: object) -> TrainConfig:
    base = dict(trainable="mlp", max_steps=12, batch_size=16, checkpoint_every_steps=4,
                log_every_steps=2, seed=1, eval_split="dev", async_checkpoints=False)
    return TrainConfig(**{**base, **overrides})


def _run(tmp_path: Path, config: TrainConfig, *, stop_at: int | None = None, run_id: str = "run") -> Path:
    control = LoopControl()
    if stop_at is not None:
        control._on_progress = lambda p: p.step >= stop_at and control.request_stop("pause")  # type: ignore[assignment]
    metrics = tmp_path / "metrics" / run_id / "metrics.jsonl"
    TrainingLoop(MLPTrainable(), config, run_id=run_id, data=DATA,
                 checkpoints=CheckpointManager(str(tmp_path / "ckpt"), run_id, keep_last=2),
                 metrics_path=metrics, control=control).run()
    return metrics


def _records(path: Path) -> list[dict[str, object]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        record.pop("time")
        record.pop("samples_per_second", None)  # a timing
        record.pop("checkpoint", None)  # under each test run's own root
    return records


def test_jsonl_log_is_the_same_with_or_without_sinks(tmp_path: Path) -> None:
    ListSink.received.clear()
    plain = _records(_run(tmp_path / "a", _config()))
    with_sink = _records(_run(tmp_path / "b", _config(metric_sinks=["test-list"])))
    assert plain == with_sink
    assert [r["event"] for r in plain] == ["start", *["train"] * 6, "end"]
    # the sink got the train records' numbers at their steps, then the final metrics, then close
    steps = [step for _, step, _ in ListSink.received]
    assert steps == [2, 4, 6, 8, 10, 12, 12, -1]  # at 12: the evaluation (the loss went with train)
    assert set(ListSink.received[0][2]) == {"loss", "epoch", "samples_per_second"}
    assert ListSink.received[0][2]["loss"] == plain[1]["loss"]
    assert set(ListSink.received[-2][2]) == {"eval_accuracy", "eval_loss", "eval_examples"}


def test_sink_names_are_checked_in_one_line_before_anything_starts() -> None:
    with pytest.raises(ValidationError) as info:
        _config(metric_sinks=["tensorbord"])
    message = info.value.errors()[0]["msg"]
    assert "unknown metric sink 'tensorbord'" in message and "mlflow, tensorboard" in message
    assert "\n" not in message
    assert one_line(info.value).startswith("invalid TrainConfig: metric_sinks: unknown metric sink 'tensorbord'")
    with pytest.raises(ValidationError, match="listed twice"):
        _config(metric_sinks=["tensorboard", "tensorboard"])
    # decoded from a payload (a worker resolves it) or named by reference: syntax only
    payload = _config().model_dump(mode="json") | {"metric_sinks": ["registered-elsewhere"]}
    assert TrainConfig.model_validate_json(json.dumps(payload)).metric_sinks == ["registered-elsewhere"]
    assert _config(metric_sinks=["tests.unit.test_metric_sinks:ListSink"]).metric_sinks
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve_metric_sinks(["tests.unit.no_such_module:Sink"])
    with pytest.raises(ConfigError, match="unknown metric sink"):
        check_metric_sinks(["registered-elsewhere"])
    assert {"tensorboard", "mlflow", "test-list"} <= set(metric_sink_names())
    assert isinstance(ListSink(SinkContext("r", _config(), Path("."), 0)), MetricSink)


def test_default_sinks_leave_payloads_and_hashes_as_before() -> None:
    config = _config()
    assert "metric_sinks" not in config.model_dump(mode="json")
    with_sinks = _config(metric_sinks=["tensorboard"])
    assert with_sinks.model_dump(mode="json")["metric_sinks"] == ["tensorboard"]
    assert with_sinks.config_hash() == config.config_hash()
    assert with_sinks.full_hash() == config.full_hash()


def test_tensorboard_sink_event_files_read_back_and_resume_purges(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = _config(metric_sinks=["tensorboard"])
    _run(tmp_path, config, stop_at=10)
    # as if the worker died after logging step 10 but before its checkpoint: the run resumes from 8
    shutil.rmtree(tmp_path / "ckpt" / "run" / "step-000000000010")
    _run(tmp_path, config)
    acc = EventAccumulator(str(tmp_path / "metrics" / "run"))
    acc.Reload()
    assert {"loss", "epoch", "samples_per_second", "eval_accuracy"} <= set(acc.Tags()["scalars"])
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == [2, 4, 6, 8, 10, 12]  # one value a step across the resume
    records = _records(tmp_path / "metrics" / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if r["event"] == "train"] == [2, 4, 6, 8, 10, 10, 12]
    logged = {r["step"]: r["loss"] for r in records if r["event"] == "train"}  # the last of a step
    assert [round(e.value, 5) for e in loss] == [round(float(logged[s]), 5) for s in range(2, 13, 2)]


def test_mlflow_sink_one_run_per_training_run_also_when_resumed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file:{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the file store on request
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "sinks-test")
    config = _config(metric_sinks=["mlflow"], hparams={"hidden": 16, "lr": 0.01})
    _run(tmp_path, config, stop_at=6)
    _run(tmp_path, config)
    client = MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    experiment = client.get_experiment_by_name("sinks-test")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["hparams.lr"] == "0.01" and run.data.params["max_steps"] == "12"
    assert run.data.tags["temporal_ml.config_hash"] == config.config_hash()
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert sorted(set(steps)) == [2, 4, 6, 8, 10, 12]
    assert "eval_accuracy" in run.data.metrics


def test_missing_extra_fails_in_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'temporal-ml\[tensorboard\]'"):
        resolve_metric_sinks(["tensorboard"])


def test_an_evaluation_reaches_the_runs_sinks(tmp_path: Path) -> None:
    """The evaluation activity's metrics of a checkpoint go to its run's sinks as eval_<name> at the
    checkpoint's step; without a metrics dir, or with a sink this worker lacks, nothing fails."""
    from temporal_ml.metric_sinks import log_evaluation

    ListSink.received.clear()
    config = _config(metric_sinks=["test-list"])
    log_evaluation(tmp_path, "run", config, 8, {"accuracy": 0.75, "examples": 32, "note": "x"})
    assert ListSink.received == [("run", 8, {"eval_accuracy": 0.75, "eval_examples": 32.0}), ("run", -1, {})]
    log_evaluation(None, "run", config, 8, {"accuracy": 0.75})
    unknown = _config().model_copy(update={"metric_sinks": ["not-on-this-worker"]})
    log_evaluation(tmp_path, "run", unknown, 8, {"accuracy": 0.75})  # logged, not raised
    assert len(ListSink.received) == 2
