"""``temporal-ml worker`` as a real process against the dev server: one worker per role on its own
task queue, trainings limited per resource (``--max-concurrent-trainings 1``: two runs started
together train one after the other), evaluation on the eval queue, graceful exit on SIGINT."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.types import DatasetSource, TrainConfig, TrainResult
from temporal_ml.workflows.evaluation import EvalInput
from temporal_ml.workflows.training import TrainingInput
from tests.integration._training_workflows import MLPEval, MLPTraining

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(
    trainable="mlp", max_steps=30, batch_size=16, seed=3, checkpoint_every_steps=10,
    log_every_steps=5, async_checkpoints=False, hparams={"hidden": 16, "step_delay": 0.02},
)
DATASET = DatasetSource(generator="blobs", params={"n_train": 256, "n_dev": 64, "seed": 2})


class WorkerProcess:
    """``python -m temporal_ml.cli worker`` with all three roles on queues unique to this test."""

    def __init__(self, store: Path, env: dict[str, str]) -> None:
        tag = uuid.uuid4().hex[:8]
        self.store = store
        self.queues = {"orchestration": f"cli-{tag}", "train": f"cli-train-{tag}", "eval": f"cli-eval-{tag}"}
        self.log = store.parent / "worker.log"
        args = [sys.executable, "-m", "temporal_ml.cli", "worker",
                "--role", "orchestration", "--role", "train", "--role", "eval",
                "--workflows", "tests.integration._training_workflows:MLPTraining",
                "--workflows", "tests.integration._training_workflows:MLPEval",
                "--trainable", "mlp=tests.trainables:MLPTrainable",
                "--generator", "blobs=tests.trainables:blobs",
                "--store", str(store), "--max-concurrent-trainings", "1"]
        for role, queue in self.queues.items():
            args += ["--task-queue", f"{role}={queue}"]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float = 60.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            ready = [line for line in self.output().splitlines() if line.startswith("worker ready:")]
            if len(ready) == 3:
                return ready
            time.sleep(0.1)
        raise AssertionError(f"worker not ready (exit {self.proc.poll()}):\n{self.output()[-3000:]}")

    def events(self, run_id: str) -> dict[str, float]:
        path = self.store / "metrics" / run_id / "metrics.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return {r["event"]: r["time"] for r in records if r["event"] in ("start", "end")}


@pytest.fixture
def worker(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[WorkerProcess]:
    w = WorkerProcess(tmp_path / "store", subprocess_env)
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
        w.proc.wait()


async def _train_two_together(worker: WorkerProcess) -> list[tuple[str, TrainResult]]:
    client = await connect()
    run_ids = [f"cli-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    handles = [
        await client.start_workflow(
            MLPTraining.run,
            TrainingInput(config=CONFIG, dataset=DATASET, run_id=run_id, task_queue=worker.queues["train"],
                          heartbeat_timeout_seconds=10, progress_every_seconds=0.5),
            id=run_id, task_queue=worker.queues["orchestration"],
        )
        for run_id in run_ids
    ]
    results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=40)
    return list(zip(run_ids, results, strict=True))


async def test_worker_cli_runs_roles_limits_trainings_and_exits_cleanly(worker: WorkerProcess) -> None:
    ready = worker.wait_ready()
    q = worker.queues
    assert ready == [
        f"worker ready: role=orchestration queue={q['orchestration']} workflows=[MLPTraining,MLPEval,"
        "TmlTraining,TmlEval,TmlSweep,TmlLadder] generators=[blobs,synthetic-sentiment] max_concurrent=default",
        f"worker ready: role=train queue={q['train']} trainables=[mlp] max_concurrent=1",
        f"worker ready: role=eval queue={q['eval']} trainables=[mlp] max_concurrent=1",
    ]

    runs = await _train_two_together(worker)
    for run_id, result in runs:
        assert result.steps == CONFIG.max_steps and not result.stopped_early and result.resumes == 0
        assert (worker.store / "checkpoints" / run_id).is_dir()
    assert (worker.store / "snapshots").is_dir()
    (a_start, a_end), (b_start, b_end) = sorted(
        (e["start"], e["end"]) for e in (worker.events(run_id) for run_id, _ in runs)
    )
    assert a_end <= b_start, f"trainings overlapped: {a_start}-{a_end} and {b_start}-{b_end}"

    client = await connect()
    evaluated = await client.execute_workflow(
        MLPEval.run, EvalInput.from_result(CONFIG, runs[0][1], task_queue=q["eval"]),
        id=f"cli-eval-{uuid.uuid4().hex[:8]}", task_queue=q["orchestration"],
    )
    assert evaluated.examples == 64 and evaluated.accuracy is not None

    worker.proc.send_signal(signal.SIGINT)
    assert worker.proc.wait(timeout=30) == 0, worker.output()[-3000:]
    assert worker.output().rstrip().endswith("stopped")
