"""The BERT examples end to end (tiny model, synthetic data): self-contained ``--embedded`` runs, and
the checkpointing walk-through against a real server with a worker process that is SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from examples.bert_checkpointing.workflows import BertCheckpointingWorkflow
from temporal_ml.client import connect
from temporal_ml.types import PredictionResult, TrainResult
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def _run_starter(module: str, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def _env(tmp_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    return {**(base or os.environ), "TEMPORAL_ML_STORE": str(tmp_path / "store")}


@pytest.mark.parametrize("module", ["examples.bert_checkpointing.starter", "examples.bert_finetune.starter"])
def test_starter_help(module: str) -> None:
    out = _run_starter(module, "--help").stdout
    assert "--embedded" in out and "--json" in out and "--model" in out


def test_checkpointing_example_embedded_json(tmp_path: Path) -> None:
    proc = _run_starter("examples.bert_checkpointing.starter", "--embedded", "--json", "--steps", "200",
                        "--checkpoint-every", "50", env=_env(tmp_path))
    result = TrainResult.model_validate_json(proc.stdout)  # stdout is only the typed result
    assert result.steps == 200 and result.resumes == 0 and not result.stopped_early
    assert result.metrics["eval_accuracy"] > 0.6
    assert Path(result.checkpoint.uri.removeprefix("file://"), "model.safetensors").is_file()
    assert "embedded Temporal server" in proc.stderr


def test_finetune_example_embedded_predicts(tmp_path: Path) -> None:
    proc = _run_starter("examples.bert_finetune.starter", "--embedded", "--json", "--steps", "250",
                        "--predict", "very good", "not good", env=_env(tmp_path))
    out = json.loads(proc.stdout)
    predictions = PredictionResult.model_validate(out["predictions"])
    assert predictions.checkpoint == TrainResult.model_validate(out["training"]).checkpoint
    assert len(predictions.labels) == 2 and all(0.5 <= c <= 1 for c in predictions.confidences)
    assert predictions.labels == [1, 0]


async def test_checkpointing_walkthrough_crash_and_resume(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    env = _env(tmp_path, subprocess_env)

    def start_worker(n: int) -> subprocess.Popen[bytes]:
        log = tmp_path / f"worker-{n}.log"
        proc = subprocess.Popen([sys.executable, "-m", "examples.bert_checkpointing.worker"],
                                cwd=REPO_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        for _ in range(300):
            if "worker polling" in log.read_text():
                return proc
            time.sleep(0.1)
        raise AssertionError(log.read_text())

    worker = start_worker(0)
    starter = subprocess.Popen(
        [sys.executable, "-m", "examples.bert_checkpointing.starter", "--run-id", "walkthrough",
         "--json", "--steps", "600", "--checkpoint-every", "50"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        client = await connect()
        handle = client.get_workflow_handle("walkthrough")
        for _ in range(600):
            try:
                progress = await handle.query(BertCheckpointingWorkflow.progress)
            except Exception:  # not started yet
                progress = None
            if progress and progress.latest_checkpoint and progress.latest_checkpoint.step >= 100:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no checkpoint at step >= 100 observed")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        worker = start_worker(1)
        out, err = starter.communicate(timeout=300)
    finally:
        for proc in (worker, starter):
            if proc.poll() is None:
                proc.kill()
    assert starter.returncode == 0, err[-3000:]
    result = TrainResult.model_validate_json(out)
    assert result.steps == 600 and result.resumes == 1
    assert result.metrics["eval_accuracy"] > 0.8
