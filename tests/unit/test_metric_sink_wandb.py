"""The W&B metric sink with the real ``wandb`` in offline mode (no network): a training writes an
offline W&B run whose id is derived from the run, with every metric against ``step``; its resume and an
evaluation of its checkpoint log into the same W&B run; a missing package or login fails in one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from temporal_ml.failures import one_line
from temporal_ml.metric_sinks import log_evaluation, resolve_metric_sinks
from temporal_ml.storage.checkpoints import CheckpointManager
from temporal_ml.training.control import LoopControl
from temporal_ml.training.loop import TrainingLoop
from temporal_ml.types import TrainConfig
from tests.conftest import REPO_ROOT
from tests.trainables import MLPTrainable, blobs

DATA = blobs(n_train=128, n_dev=32)


def _config(**overrides: object) -> TrainConfig:
    base = dict(trainable="mlp", max_steps=12, batch_size=16, checkpoint_every_steps=4,
                log_every_steps=2, seed=1, eval_split="dev", async_checkpoints=False,
                metric_sinks=["wandb"], hparams={"hidden": 16, "lr": 0.01})
    return TrainConfig(**{**base, **overrides})


def _run(tmp_path: Path, config: TrainConfig, *, stop_at: int | None = None) -> None:
    control = LoopControl()
    if stop_at is not None:
        control._on_progress = lambda p: p.step >= stop_at and control.request_stop("pause")  # type: ignore[assignment]
    TrainingLoop(MLPTrainable(), config, run_id="run", data=DATA,
                 checkpoints=CheckpointManager(str(tmp_path / "ckpt"), "run", keep_last=2),
                 metrics_path=tmp_path / "metrics" / "run" / "metrics.jsonl", control=control).run()


def _records(path: Path) -> Iterator[Any]:
    """The protobuf records of a ``.wandb`` file (W&B's LevelDB-style log: a 7-byte header, then
    32 KiB blocks of chunks, each ``crc32 | length | type`` and its bytes; type 1 = whole, 2-4 = the
    first, middle and last piece of one record)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1)
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _offline_runs(wandb_dir: Path) -> list[dict[str, Any]]:
    """Each offline run under ``wandb_dir`` (oldest first): its id, name, project, config and history.

    W&B's service writes the files after ``finish()`` returns: under load a file was read before its
    run record was in it (a CI check with a benchmark beside it). Its teardown waits for every write."""
    import wandb

    wandb.teardown()
    runs = []
    for path in wandb_dir.glob("wandb/offline-run-*/run-*.wandb"):
        run: dict[str, Any] = {"history": [], "config": {}}
        for record in _records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.update(id=record.run.run_id, name=record.run.display_name,
                           project=record.run.project, start=record.run.start_time.ToNanoseconds())
            elif kind == "history":
                run["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                       for item in record.history.item})
            elif kind == "config":
                run["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        runs.append(run)
    return sorted(runs, key=lambda r: r["start"])


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """W&B offline in ``tmp_path``; a server address where nothing listens, in case it ever tried."""
    wandb = pytest.importorskip("wandb")
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    for name, value in {"WANDB_MODE": "offline", "WANDB_DIR": str(wandb_dir),
                        "WANDB_PROJECT": "sinks-test", "WANDB_BASE_URL": "http://127.0.0.1:9",
                        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
                        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
                        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
                        "WANDB_ERROR_REPORTING": "false"}.items():
        monkeypatch.setenv(name, value)
    wandb.teardown()  # W&B reads its environment once per process: start from this one
    try:
        yield wandb_dir
    finally:
        wandb.teardown()


def test_wandb_sink_one_offline_run_keyed_by_step_resumed_into_the_same_run(
        tmp_path: Path, wandb_offline: Path) -> None:
    from temporal_ml._sink_wandb import wandb_run_id

    config = _config()
    digest = hashlib.sha256(f"run\n{config.config_hash()}".encode()).hexdigest()[:16]
    expected = f"run-{digest}"
    assert wandb_run_id("run", config) == expected
    assert wandb_run_id("run", _config(seed=2)) != expected  # the run id reused for another config
    assert wandb_run_id("run", _config(checkpoint_every_steps=2)) == expected  # operational: same run
    long_id = wandb_run_id("Sweep/Trial:7 " + "x" * 100, config)
    assert len(long_id) <= 64 and long_id.startswith("sweep-trial-7-x")

    _run(tmp_path, config, stop_at=10)
    # as if the worker died after logging step 10 but before its checkpoint: the run resumes from 8
    shutil.rmtree(tmp_path / "ckpt" / "run" / "step-000000000010")
    _run(tmp_path, config)
    log_evaluation(tmp_path / "metrics", "run", config, 8, {"accuracy": 0.75, "examples": 32})

    first, resumed, evaluation = _offline_runs(wandb_offline)  # one offline directory per session
    for run in (first, resumed, evaluation):
        assert (run["id"], run["name"], run["project"]) == (expected, "run", "sinks-test")
    assert first["config"]["hparams"] == {"hidden": 16, "lr": 0.01}
    assert first["config"]["max_steps"] == 12 and "metric_sinks" not in first["config"]
    assert first["config"]["temporal_ml"] == {"run_id": "run", "config_hash": config.config_hash()}

    jsonl = [json.loads(line) for line in
             (tmp_path / "metrics" / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in jsonl if r["event"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10, 10, 12]
    losses = [(row["step"], row["loss"]) for run in (first, resumed) for row in run["history"] if "loss" in row]
    assert losses == [(r["step"], r["loss"]) for r in train]  # each record, at its step, exact
    # W&B's own _step only grows within each session; the resumed step 10 is kept, not dropped
    for run in (first, resumed):
        assert [row["_step"] for row in run["history"]] == list(range(len(run["history"])))
    final = resumed["history"][-1]
    assert final["step"] == 12 and {"eval_accuracy", "eval_loss", "eval_examples"} <= set(final)
    assert "loss" not in final  # the loss of step 12 went out with its train record
    assert [{k: v for k, v in row.items() if not k.startswith("_")} for row in evaluation["history"]] == [
        {"step": 8, "eval_accuracy": 0.75, "eval_examples": 32.0}]  # an earlier step, still recorded


def test_missing_wandb_fails_in_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'temporal-ml\[wandb\]'") as info:
        resolve_metric_sinks(["wandb"])
    assert "\n" not in one_line(info.value)


def test_wandb_online_without_a_login_is_a_config_error_in_one_line(tmp_path: Path) -> None:
    """Not retried: no attempt fixes a missing API key. In a child process (W&B reads its environment
    once per process), with no key anywhere and a server address where nothing listens."""
    pytest.importorskip("wandb")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), NETRC=str(home / "netrc"), WANDB_MODE="online",
               WANDB_BASE_URL="http://127.0.0.1:9", WANDB_DIR=str(tmp_path),
               WANDB_CONFIG_DIR=str(home / "wandb"), WANDB_ERROR_REPORTING="false",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    code = (
        "import sys; from pathlib import Path\n"
        "from temporal_ml.errors import ConfigError\n"
        "from temporal_ml.metric_sinks import SinkContext\n"
        "from temporal_ml._sink_wandb import WandbSink\n"
        "from temporal_ml.types import TrainConfig\n"
        "config = TrainConfig(trainable='mlp', max_steps=2, checkpoint_every_steps=1, metric_sinks=['wandb'])\n"
        "try:\n"
        "    WandbSink(SinkContext('run', config, Path(sys.argv[1]), 0))\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ConfigError: metric sink 'wandb': "), done.stdout
    assert "API key" in lines[0] and "WANDB_MODE=offline" in lines[0]
