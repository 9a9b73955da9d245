"""The library's helpers for programs that run work, against real servers and processes: an embedded
run with one in-process worker (``connect_or_embed``, ``build_worker``) followed to its result
(``follow_training``), and a worker process's main (``run_workers``) started, polling, stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from temporal_ml.embedded import connect_or_embed
from temporal_ml.failures import ServerUnreachable
from temporal_ml.follow import follow_training
from temporal_ml.roles import Role, WorkerSpec, build_worker
from temporal_ml.starting import start_or_attach
from temporal_ml.types import DatasetSource, TrainConfig, TrainResult
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import REPO_ROOT, free_port
from tests.integration._training_workflows import MLPTraining
from tests.trainables import MLPTrainable, blobs

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(trainable="mlp", max_steps=40, batch_size=16, seed=5, checkpoint_every_steps=10,
                     async_checkpoints=False, hparams={"hidden": 16, "step_delay": 0.02})
DATASET = DatasetSource(generator="blobs", params={"n_train": 256, "n_dev": 64, "seed": 2})


async def test_an_embedded_run_with_one_worker_is_followed_to_its_result(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = WorkerSpec(roles=list(Role), store=str(tmp_path / "store"), workflows=[MLPTraining],
                      generators={"blobs": blobs}, trainables={"mlp": MLPTrainable()})
    said: list[str] = []
    async with connect_or_embed(lambda client: [build_worker(client, spec, task_queue="one")], embedded=True,
                                store=spec.store, say=said.append) as client:
        inp = TrainingInput(config=CONFIG, dataset=DATASET, run_id="followed", progress_every_seconds=0.2)
        handle = await start_or_attach(client, MLPTraining.run, inp, id="followed", task_queue="one",
                                       say=said.append)
        result = await follow_training(handle, MLPTraining.progress, every=0.2)
    assert isinstance(result, TrainResult) and result.steps == 40 and not result.stopped_early
    assert result.checkpoint.uri.startswith(f"file://{tmp_path / 'store' / 'checkpoints'}/followed/")
    assert said[0].startswith("embedded Temporal server at 127.0.0.1:")
    assert said[1] == (f"storage in {tmp_path / 'store'} (snapshots, checkpoints, metrics; "
                       "set TEMPORAL_ML_STORE or TEMPORAL_ML_HOME to change)")
    lines = capsys.readouterr().err.splitlines()  # not a terminal: a line per change of state
    assert lines[-1].startswith("followed: [done] step 40/40  loss "), lines
    assert "checkpoint @ 40" in lines[-1] and len(lines) < 10, lines


async def test_without_embedded_and_without_a_server_it_says_how_to_get_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
    with pytest.raises(ServerUnreachable, match=r"connection refused.*temporal-ml server.*--embedded"):
        async with connect_or_embed(lambda client: [], embedded=False):
            pass


MAIN = """
import sys
from temporal_ml.roles import Role, WorkerSpec, build_worker
from temporal_ml.worker import run_workers
spec = WorkerSpec(roles=[Role.ORCHESTRATION], store=sys.argv[1])
run_workers(lambda client: [build_worker(client, spec, task_queue="served")], prog="my worker",
            store=spec.store)  # ends the process
"""


def test_a_worker_process_polls_until_sigterm_then_stops(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    log = tmp_path / "worker.log"
    proc = subprocess.Popen([sys.executable, "-c", MAIN, str(tmp_path / "store")], cwd=REPO_ROOT,
                            env=subprocess_env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "worker polling" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.read_text().splitlines()[0] == (
            f"worker polling 'served' at {subprocess_env['TEMPORAL_ADDRESS']}; storage in {tmp_path / 'store'}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().splitlines()[1:] == ["shutting down workers ...", "stopped"]


def test_a_worker_process_without_a_server_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", MAIN, str(tmp_path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"my worker: error: no Temporal server at {env['TEMPORAL_ADDRESS']} (connection refused): "
        "start one with `temporal-ml server` (or set TEMPORAL_ADDRESS to yours)"], proc.stderr
