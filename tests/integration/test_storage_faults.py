"""Storage errors (issue 7, item 6) against a real dev server and a real full (or read-only) disk: a
small tmpfs holds the checkpoint store. A save that fails for lack of space stops training at the next
step; the run fails at once (no retries redoing the same steps) with a short one-line message; nothing
torn is left behind; once space is freed the same run id resumes from its last committed checkpoint.
Needs root (to mount tmpfs); skipped otherwise."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError

from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.storage.checkpoints import CheckpointManager, load_checkpoint
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.training import TrainingInput
from tests.integration._training_workflows import MLPTraining
from tests.trainables import MLPTrainable, blobs

pytestmark = pytest.mark.integration

DATASET = DatasetSource(generator="blobs", params={"n_train": 256, "n_dev": 64, "seed": 3})


def _config(**overrides: object) -> TrainConfig:
    base = dict(trainable="mlp", max_steps=150, batch_size=16, seed=9, checkpoint_every_steps=10,
                log_every_steps=1, async_checkpoints=True, device="cpu",
                hparams={"hidden": 32, "step_delay": 0.02})
    return TrainConfig(**{**base, **overrides})


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
async def worker(tmp_path: Path, tiny_disk: Path, temporal_address: str) -> AsyncIterator[tuple[Client, str]]:
    client = await connect()
    queue = f"storage-{uuid.uuid4().hex[:6]}"
    store = SnapshotStore(str(tmp_path / "snapshots"))
    train = TrainingActivities(trainables={"mlp": MLPTrainable()}, snapshot_store=store,
                               checkpoint_root=str(tiny_disk), metrics_dir=tmp_path / "metrics",
                               heartbeat_every_seconds=0.2)
    snap = SnapshotActivities(store, generators={"blobs": blobs})
    async with create_worker(client, task_queue=queue, workflows=[MLPTraining],
                             activities=[*train.activities(), *snap.activities()]):
        yield client, queue


def _fill(disk: Path) -> Path:
    """Fill the disk up to the last byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


async def _start(client: Client, queue: str, run_id: str, config: TrainConfig) -> WorkflowHandle:
    inp = TrainingInput(config=config, dataset=DATASET, run_id=run_id, task_queue=queue,
                        heartbeat_timeout_seconds=5, progress_every_seconds=0.2)
    return await client.start_workflow(MLPTraining.run, inp, id=f"{run_id}-{uuid.uuid4().hex[:4]}",
                                       task_queue=queue)


async def _reach(handle: WorkflowHandle, step: int) -> None:
    for _ in range(600):
        if (await handle.query(MLPTraining.progress)).step >= step:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached step {step}")


async def _fails_once(handle: WorkflowHandle, within: float) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as info:
        await asyncio.wait_for(handle.result(), timeout=within)
    cause = info.value.cause.cause  # type: ignore[union-attr]  # workflow <- activity <- this
    assert isinstance(cause, ApplicationError) and cause.type == "StorageError", info.value
    assert cause.non_retryable and "\n" not in cause.message and len(cause.message) < 600, cause.message
    failed = [e async for e in handle.fetch_history_events()
              if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    assert len(failed) == 1  # no retry redoing the same steps
    return cause


def _nothing_torn(disk: Path, run_id: str) -> list[int]:
    manager = CheckpointManager(str(disk), run_id)
    steps = []
    for ref in manager.list():
        assert load_checkpoint(ref)["counters"]["step"] == ref.step  # verifies every file
        steps.append(ref.step)
    assert manager.latest() is not None and manager.latest().step == max(steps)  # type: ignore[union-attr]
    return steps


def _train_steps(tmp_path: Path, run_id: str) -> list[int]:
    path = tmp_path / "metrics" / run_id / "metrics.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e["step"] for e in events if e["event"] == "train"]


async def test_full_disk_fails_fast_at_the_next_step_and_resumes_after(
    worker: tuple[Client, str], tiny_disk: Path, tmp_path: Path
) -> None:
    client, queue = worker
    config = _config()
    run_id = "full"
    handle = await _start(client, queue, run_id, config)
    await _reach(handle, 35)
    filler = _fill(tiny_disk)
    cause = await _fails_once(handle, within=20)
    assert "No space left on device [ENOSPC]" in cause.message and "checkpoint" in cause.message
    failed_step = int(cause.message.split("step-")[1][:12])
    committed = _nothing_torn(tiny_disk, run_id)
    assert max(committed) < failed_step
    # the failed background save surfaced at the next step (or the one after: the write races the step)
    assert max(_train_steps(tmp_path, run_id)) <= failed_step + 2

    filler.unlink()  # space again: the same run id resumes from its last committed checkpoint
    resumed = await (await _start(client, queue, run_id, config)).result()
    assert resumed.resumes == 1 and resumed.steps == config.max_steps
    straight = await (await _start(client, queue, "straight", config)).result()
    assert resumed.checkpoint.model_sha256 == straight.checkpoint.model_sha256


async def test_read_only_store_fails_fast_with_a_clear_message(
    worker: tuple[Client, str], tiny_disk: Path
) -> None:
    client, queue = worker
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    handle = await _start(client, queue, "readonly", _config(async_checkpoints=False, max_steps=30))
    cause = await _fails_once(handle, within=20)
    assert "Read-only file system [EROFS]" in cause.message
