"""Clients that outlive the server (issue 7, item 7): the dev server is SIGKILLed and restarted on
its data directory while the example starter waits for its run. The starter reconnects and prints
the correct result; a second starter with the same run id, started while the run is going, attaches
to it and prints the same result; ``temporal-ml status --follow`` keeps following through it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from examples.bert_checkpointing.workflows import BertCheckpointingWorkflow
from temporal_ml.client import connect, wait_result
from temporal_ml.devserver import DevServer
from temporal_ml.storage.checkpoints import load_checkpoint
from temporal_ml.types import TrainResult
from tests.conftest import REPO_ROOT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STARTER = [sys.executable, "-m", "examples.bert_checkpointing.starter", "--run-id", "outlive",
           "--json", "--steps", "600", "--checkpoint-every", "50"]


def _kill(server: DevServer) -> None:
    """SIGKILL the server's whole process group (a crash, not a clean stop)."""
    assert server._process is not None
    os.killpg(server._process.pid, signal.SIGKILL)
    server._process.wait()
    server._process = None


async def test_starters_wait_through_a_server_restart(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "server"
    server = DevServer(port=port, headless=True, data_dir=data).start(timeout=120)
    env = {**os.environ, "TEMPORAL_ADDRESS": server.address, "TEMPORAL_ML_STORE": str(tmp_path / "store"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "examples.bert_checkpointing.worker"], cwd=REPO_ROOT,
                              env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    procs = [worker]
    try:
        for _ in range(600):
            if "worker polling" in log.read_text():
                break
            time.sleep(0.1)
        first_err = tmp_path / "first.err"
        first = subprocess.Popen(STARTER, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=first_err.open("w"), text=True)
        procs.append(first)
        client = await connect(server.address)
        handle = client.get_workflow_handle("outlive")
        follower, follow_out, follow_err = None, tmp_path / "follow.out", tmp_path / "follow.err"
        for _ in range(1200):
            try:
                progress = await handle.query(BertCheckpointingWorkflow.progress)
            except Exception:  # noqa: BLE001 - not started yet
                progress = None
            if progress is not None and follower is None:  # the run exists: follow it
                follower = subprocess.Popen(
                    [sys.executable, "-m", "temporal_ml.cli", "status", "outlive", "--follow",
                     "--interval", "0.5"], cwd=REPO_ROOT, env=env,
                    stdout=follow_out.open("w"), stderr=follow_err.open("w"), text=True)
                procs.append(follower)
            following = follow_out.exists() and "outlive" in follow_out.read_text()
            if progress is not None and progress.step >= 60 and following:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the run never reached step 60 with a follower")
        assert progress.step < 600, "the run finished before the server could be killed"

        _kill(server)
        # the server stays down until the starter has noticed (past the client's own retries)
        deadline = time.monotonic() + 120
        while "lost the Temporal server" not in first_err.read_text():
            assert first.poll() is None, f"the starter exited: {first_err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the starter never noticed the lost server"
            await asyncio.sleep(0.1)
        server.start(timeout=120)  # same port, same data directory

        second = subprocess.Popen(STARTER, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        procs.append(second)
        out1, _ = first.communicate(timeout=240)
        err1 = first_err.read_text()
        out2, err2 = second.communicate(timeout=120)
        follower.wait(timeout=120)
        out3, err3 = follow_out.read_text(), follow_err.read_text()
        actual = await wait_result(client.get_workflow_handle_for(BertCheckpointingWorkflow.run, "outlive"))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        server.stop()

    assert first.returncode == 0, err1[-3000:]
    assert "lost the Temporal server" in err1 and "reconnected" in err1, err1[-3000:]
    assert second.returncode == 0, err2[-3000:]
    assert "already running with this config: following it" in err2, err2[-3000:]
    r1, r2 = TrainResult.model_validate_json(out1), TrainResult.model_validate_json(out2)
    assert r1 == r2 == actual
    assert r1.steps == 600 and not r1.stopped_early
    assert load_checkpoint(r1.checkpoint)["counters"]["step"] == 600  # the files are that result
    # the follower kept following through the outage (the SDK's own retries or ours) to the end
    assert follower is not None and follower.returncode == 0, err3[-3000:]
    assert out3.strip().splitlines()[-1].startswith("run outlive completed after"), out3[-2000:]
