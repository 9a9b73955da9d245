"""A warm start against a real dev server: a training run given ``init_from`` (another run's
checkpoint) copies it, continues from it as planned, and — its worker SIGKILLed on the way — ends
with the weights of the source's uninterrupted run (same hparams); with a new learning rate it ends
elsewhere, its optimizer set up with the new rate."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
from temporal_ml.types import CheckpointRef, DatasetSource, TrainConfig, TrainResult
from temporal_ml.workflows.training import TrainingInput
from tests.integration._procs import start_worker_process
from tests.integration._training_workflows import MLPTraining

CONFIG = TrainConfig(
    trainable="mlp", max_steps=120, batch_size=16, seed=7, checkpoint_every_steps=20, keep_last=10,
    log_every_steps=1, async_checkpoints=False,
    hparams={"hidden": 32, "dropout": 0.2, "step_delay": 0.03},
)
DATASET = DatasetSource(generator="blobs", params={"n_train": 512, "n_dev": 128, "seed": 1})
STEP = 40

pytestmark = pytest.mark.integration


class Workers:
    """Worker processes of one task queue sharing the store root ``root``."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.queue = f"warm-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.procs.append(start_worker_process(
            "tests.integration.training_worker", [self.queue, str(self.root)],
            self.root / f"worker-{len(self.procs)}.log", self.env))

    def kill_last(self) -> None:
        self.procs[-1].send_signal(signal.SIGKILL)
        self.procs[-1].wait()


@pytest.fixture
def workers(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Workers]:
    w = Workers(tmp_path, subprocess_env)
    w.start()
    yield w
    for proc in w.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


async def _train(queue: str, run_id: str, config: TrainConfig = CONFIG,
                 init_from: CheckpointRef | None = None) -> TrainResult:
    client = await connect()
    inp = TrainingInput(config=config, dataset=DATASET, run_id=run_id, task_queue=queue,
                        heartbeat_timeout_seconds=3, progress_every_seconds=0.2, init_from=init_from)
    return await client.execute_workflow(MLPTraining.run, inp, id=run_id, task_queue=queue)


def _events(root: Path, run_id: str) -> list[str]:
    lines = (root / "metrics" / run_id / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["event"] for line in lines if line.endswith("}")]


async def test_a_warm_started_run_continues_exactly_and_survives_a_kill(
        tmp_path: Path, workers: Workers) -> None:
    queue = workers.queue
    source_run = f"b-{uuid.uuid4().hex[:8]}"
    straight = await _train(queue, source_run)
    checkpoints = tmp_path / "checkpoints"
    source = next(r for r in CheckpointManager(str(checkpoints), source_run).list() if r.step == STEP)

    # the same hparams from the source's step 40, its worker killed after the copy: the source's weights
    run_id = f"a-{uuid.uuid4().hex[:8]}"
    client = await connect()
    handle = await client.start_workflow(
        MLPTraining.run, TrainingInput(config=CONFIG, dataset=DATASET, run_id=run_id, task_queue=queue,
                                       heartbeat_timeout_seconds=3, progress_every_seconds=0.2,
                                       init_from=source),
        id=run_id, task_queue=queue)
    for _ in range(1200):
        progress = await handle.query(MLPTraining.progress)
        if progress.step >= 70 and progress.state == "training":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the warm-started run never reached step 70")
    workers.kill_last()
    workers.start()
    result = await handle.result()
    assert result.checkpoint.model_sha256 == straight.checkpoint.model_sha256
    assert result.steps == CONFIG.max_steps and result.resumes == 1
    events = _events(tmp_path, run_id)
    assert [e for e in events if e in ("start", "continue", "resume")] == ["continue", "resume"]
    copy = CheckpointManager(str(checkpoints), run_id).list()[0]
    assert copy.step == STEP and copy.model_sha256 == source.model_sha256
    lineage = load_checkpoint(copy)["meta"]["init_from"]
    assert (lineage["run_id"], lineage["step"], lineage["model_sha256"]) == (source_run, STEP, source.model_sha256)

    # a new learning rate: another trajectory, the optimizer set up with the new rate
    changed = await _train(queue, f"c-{uuid.uuid4().hex[:8]}",
                           CONFIG.model_copy(update={"hparams": {**CONFIG.hparams, "lr": 0.05}}), source)
    assert changed.resumes == 0 and changed.steps == CONFIG.max_steps
    assert changed.checkpoint.model_sha256 != straight.checkpoint.model_sha256
    assert load_checkpoint(changed.checkpoint)["scheduler"]["base_lrs"] == [0.05]
