"""The ``temporal-ml`` inspection and control commands against a real dev server, as real processes:
``runs`` (filters), ``status`` (and ``--follow``), ``results`` in every format, ``pause``/``resume``/
``stop`` (and a refused request), ``replay``, ``setup``, ``--version``, and the Python API
``temporal_ml.results``, on a coordinator (running, then finished) and a training run driven by a real
worker process. Errors are one line on stderr."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig, TrainResult
from temporal_ml.workflows.coordinator import CoordinatorInput
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import REPO_ROOT, free_port
from tests.integration._procs import start_worker_process
from tests.integration._training_workflows import MLPCoordinator, MLPTraining

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=10,
                   log_every_steps=5, async_checkpoints=False, hparams={"step_delay": 0.01})
WORKFLOWS = "tests.integration._training_workflows"


async def cli(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str, str]:
    """Run ``temporal-ml ARGS`` as a process (the event loop stays free for the test)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "temporal_ml.cli", *args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("temporal-ml: error: "), err
    return lines[0]


def _worker(queue: str, root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start_worker_process("tests.integration.training_worker", [queue, str(root)],
                                root / "worker.log", env)


async def _wait_for(predicate, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_cli_inspects_and_steers_runs(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    env = subprocess_env
    tag = uuid.uuid4().hex[:6]
    queue = f"cli-{tag}"
    worker = _worker(queue, tmp_path, env)
    client = await connect()
    coord_id, long_id = f"grid-{tag}", f"long-{tag}"
    experiments = [ExperimentSpec(name=f"lr{lr:g}", config=BASE.model_copy(
        update={"hparams": {**BASE.hparams, "lr": lr}})) for lr in (1e-2, 3e-2)]
    try:
        coordinator = await client.start_workflow(MLPCoordinator.run, CoordinatorInput(
            experiments=experiments, dataset=DatasetSource(generator="blobs", params={"seed": 3}),
            run_id=coord_id, max_concurrency=2, progress_every_seconds=0.2), id=coord_id, task_queue=queue)
        long_config = BASE.model_copy(update={"max_steps": 100_000, "hparams": {"step_delay": 0.02}})
        await client.start_workflow(MLPTraining.run, TrainingInput(
            config=long_config, dataset=DatasetSource(generator="blobs", params={"seed": 3}),
            run_id=long_id, progress_every_seconds=0.2, heartbeat_timeout_seconds=2),
            id=long_id, task_queue=queue)

        async def long_has_checkpoint() -> bool:
            progress = await client.get_workflow_handle(long_id).query(MLPTraining.progress)
            return progress.latest_checkpoint is not None

        await _wait_for(long_has_checkpoint)

        # -- runs: filters by kind, state, experiment, snapshot, config hash ----------------------------
        code, out, _ = await cli("runs", "--kind", "training", "--state", "running", "--format", "json", env=env)
        assert code == 0
        listed = {r["id"]: r for r in json.loads(out)}
        assert long_id in listed and listed[long_id]["kind"] == "train"
        assert listed[long_id]["config_hash"] == long_config.config_hash()
        code, out, _ = await cli("runs", "--config-hash", long_config.config_hash()[:10], env=env)
        assert code == 0 and long_id in out and coord_id not in out
        assert out.splitlines()[0].split()[:3] == ["ID", "KIND", "STATUS"]

        # -- status of a running training; pause / resume / stop --------------------------------------
        code, out, _ = await cli("status", long_id, env=env)
        assert code == 0 and f"run {long_id}" in out and "running" in out and "training" in out
        code, out, err = await cli("pause", long_id, env=env)
        assert code == 0, err
        assert out.startswith(f"{long_id}: paused at step ") and "checkpoint @" in out
        code, out, _ = await cli("status", long_id, "--format", "json", env=env)
        assert json.loads(out)["rows"][0]["state"] == "paused"
        code, out, err = await cli("resume", long_id, env=env)
        assert code == 0 and "resuming from step" in out, err
        code, out, err = await cli("resume", long_id, env=env)  # refused: not paused; the run goes on
        assert code == 1 and out == ""
        assert "cannot resume" in err and "not paused" in err and len(err.strip().splitlines()) == 1
        # -- a lost worker is named as such (its activity waits for another one) ---------------------
        worker.kill()
        worker.wait()
        for _ in range(40):
            code, out, _ = await cli("status", long_id, "--format", "json", env=env)
            note = json.loads(out)["rows"][0].get("note") or ""
            if note:
                break
            await asyncio.sleep(0.5)
        assert note.startswith("worker lost (no heartbeat from its worker); resuming from "), note
        assert note.endswith("when another worker picks it up")
        worker = _worker(queue, tmp_path, env)
        code, out, err = await cli("stop", long_id, env=env)
        assert code == 0 and f"{long_id}: done at step" in out, err
        long_result = await client.get_workflow_handle(long_id, result_type=TrainResult).result()
        assert long_result.stopped_early and long_result.steps < 100_000

        # -- the coordinator: follow it to the end, then its results in every format --------------------
        code, out, err = await cli("status", coord_id, "--follow", "--interval", "0.5", env=env, timeout=300)
        assert code == 0, err
        assert out.splitlines()[0].startswith(f"run {coord_id}  kind coordinator")
        assert out.strip().splitlines()[-1].startswith(f"run {coord_id} completed after")
        # each experiment in the library's progress view: a line per change of state (not a terminal)
        assert any(line.startswith("lr0.01: [done] step 40/40  loss ") and "accuracy" in line
                   for line in out.splitlines()), out
        final = await coordinator.result()
        snapshot = final.snapshot.id

        code, out, _ = await cli("runs", "--experiment", coord_id, "--snapshot", snapshot[:12], env=env)
        ids = {line.split()[0] for line in out.splitlines()[1:]}
        assert ids == {coord_id, *(f"{coord_id}--lr{lr:g}--{k}" for lr in (1e-2, 3e-2) for k in ("train", "eval"))}

        code, table, _ = await cli("results", coord_id, env=env)
        assert code == 0
        header, *rows = table.splitlines()
        assert header.split()[:2] == ["NAME", "STATUS"] and "EVAL.ACCURACY" in header and len(rows) == 2
        code, out, _ = await cli("results", coord_id, "--format", "json", env=env)
        records = {r["name"]: r for r in json.loads(out)}
        by_name = {e.name: e for e in final.experiments}
        for name, record in records.items():
            assert record["status"] == "done" and record["params.lr"] == by_name[name].lineage.config.hparams["lr"]
            assert record["eval.accuracy"] == by_name[name].eval.metrics["accuracy"]
            assert record["checkpoint_sha256"] == by_name[name].lineage.checkpoint_sha256
            assert record["snapshot_id"] == snapshot and record["step"] == 40
            assert record["train_s"] > 0 and record["eval_s"] > 0 and record["rank"] in (1, 2)
        code, out, _ = await cli("results", coord_id, "--format", "csv", env=env)
        assert [r["name"] for r in csv.DictReader(io.StringIO(out))] == ["lr0.01", "lr0.03"]
        parquet = tmp_path / "results.parquet"
        code, _, err = await cli("results", coord_id, "--format", "parquet", "-o", str(parquet), env=env)
        assert code == 0 and "wrote 2 rows" in err
        import pyarrow.parquet as pq

        assert pq.read_table(parquet).column("name").to_pylist() == ["lr0.01", "lr0.03"]
        code, _, err = await cli("results", coord_id, "--format", "parquet", env=env)
        assert code == 2 and "-o FILE.parquet" in one_line(err)

        # -- the Python API: the same rows as a DataFrame --------------------------------------------
        import temporal_ml

        frame = await temporal_ml.results(client, coord_id)
        assert list(frame["name"]) == ["lr0.01", "lr0.03"] and (frame["status"] == "done").all()
        assert set(frame.columns) >= {"params.lr", "eval.accuracy", "train.loss", "config_hash", "error"}
        training = await temporal_ml.results(client, long_id)
        assert len(training) == 1 and bool(training.loc[0, "stopped_early"])
        from temporal_ml.results import learning_curves

        curves = learning_curves(tmp_path / "metrics", [f"{coord_id}--lr0.01--train"])
        assert {"step", "loss"} <= set(curves.columns) and curves["step"].max() == 40

        # -- replay against the installed code ---------------------------------------------------------
        code, out, err = await cli("replay", coord_id, "--workflows", f"{WORKFLOWS}:MLPCoordinator", env=env)
        assert code == 0 and f"{coord_id}: replayed" in out and "deterministic" in out, err
        code, out, err = await cli("replay", "--query", f"TmlExperiment = '{coord_id}'", "--workflows",
                                   f"{WORKFLOWS}:MLPCoordinator", "--workflows", f"{WORKFLOWS}:MLPTraining",
                                   "--workflows", f"{WORKFLOWS}:MLPEval", env=env)
        assert code == 0 and out.count("deterministic") == 5, out + err
        code, out, err = await cli("replay", long_id, "--workflows", f"{WORKFLOWS}:MLPCoordinator", env=env)
        assert code == 1 and "is a MLPTraining run" in err and "Traceback" not in err
    finally:
        worker.kill()
        worker.wait()


async def test_setup_registers_search_attributes_on_a_namespace(temporal_address: str) -> None:
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest

    client = await connect()
    namespace = f"tml-setup-{uuid.uuid4().hex[:6]}"
    await client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)))
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_address}
    for _ in range(50):  # a new namespace takes a moment to be served
        code, out, err = await cli("setup", "--namespace", namespace, env=env)
        if code == 0:
            break
        await asyncio.sleep(0.2)
    assert code == 0 and "registered TmlKind, TmlRunId" in out, err
    code, out, err = await cli("setup", "--namespace", namespace, env=env)
    assert code == 0 and "already registered" in out and "TmlMetric" in out, err
    code, out, _ = await cli("setup", "--cloud", "--namespace", "ns.acct", env=env)
    from temporal_ml.devserver import SEARCH_ATTRIBUTES

    assert out.count("tcld namespace search-attributes add --namespace ns.acct") == len(SEARCH_ATTRIBUTES)
    assert code == 0


async def test_cli_errors_are_one_line(temporal_address: str) -> None:
    env = {**os.environ, "TEMPORAL_ADDRESS": temporal_address}
    code, out, _ = await cli("--version", env=env)
    assert code == 0 and out.startswith("temporal-ml ")
    code, _, err = await cli("status", "no-such-run", env=env)
    assert code == 2 and "no run with id 'no-such-run'" in one_line(err)
    code, _, err = await cli("pause", "no-such-run", env=env)
    assert code == 2 and "no run with id" in one_line(err)
    code, _, err = await cli("runs", "--state", "sleeping", env=env)
    assert code == 2 and "--state sleeping: unknown state" in one_line(err)
    code, _, err = await cli("bogus", env=env)
    assert code == 2 and "invalid choice: 'bogus'" in one_line(err)
    code, _, err = await cli("replay", "x", env=env)
    assert code == 2 and "--workflows MODULE:CLASS is required" in one_line(err)
    port = free_port()
    for command in (["runs"], ["status", "x"], ["results", "x"], ["stop", "x"], ["setup"]):
        code, _, err = await cli(*command, "--address", f"127.0.0.1:{port}", env=env)
        line = one_line(err)
        assert code == 1 and f"no Temporal server at 127.0.0.1:{port}" in line and "temporal-ml server" in line
    code, _, err = await cli("status", "no-such-run", "--verbose", env=env)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("temporal-ml: error:")


async def test_runs_on_a_bare_server_points_to_setup(tmp_path: Path) -> None:
    """A server without our search attributes (a cluster not yet set up): `runs` says to run `setup`;
    after `setup`, `runs` works."""
    import inspect

    from temporal_ml.devserver import DevServer

    if "search_attributes" not in inspect.signature(DevServer).parameters:
        pytest.skip("DevServer cannot start a bare server in this version")
    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path, search_attributes=False)
    await asyncio.to_thread(server.start, 120)
    try:
        env = {**os.environ, "TEMPORAL_ADDRESS": server.address}
        code, _, err = await cli("runs", env=env)
        assert code == 2 and "run `temporal-ml setup` once" in one_line(err)
        code, out, err = await cli("setup", env=env)
        assert code == 0 and out.startswith("registered TmlKind"), err
        code, _, err = await cli("runs", env=env)
        assert code == 0 and "no runs" in err
    finally:
        server.stop()
