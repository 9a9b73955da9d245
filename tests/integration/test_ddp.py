"""Data-parallel runs against a real dev server (issue 10, durability): a 2-rank gloo run whose rank
is SIGKILLed, or whose whole worker is, resumes every rank from the last committed checkpoint and ends
bitwise equal to an uninterrupted 2-rank run; a killed worker leaves no rank process behind; bad gang
settings fail the run at once with one line."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from temporal_ml.client import connect
from temporal_ml.types import TrainConfig, TrainProgress, TrainResult
from tests.integration._training_workflows import MLPTraining
from tests.integration.test_durable_training import (
    Workers,
    _assert_bitwise_equal,
    _input,
    _wait_for_step,
)

pytestmark = pytest.mark.integration

# Every source of randomness on every rank (the "noisy" trainable draws from Python's, NumPy's and
# torch's RNGs each step, has dropout and a GradScaler), checkpoints every 20 steps.
CONFIG = TrainConfig(
    trainable="noisy", max_steps=80, batch_size=16, seed=11, checkpoint_every_steps=20,
    log_every_steps=5, async_checkpoints=False, eval_split="dev", world_size=2, threads_per_rank=1,
    hparams={"hidden": 16, "dropout": 0.2, "step_delay": 0.04},
)


@pytest.fixture
def workers(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Workers]:
    gangs = tmp_path / "gangs"  # the workers' temp dir: where the gangs keep their pid files
    gangs.mkdir()
    w = Workers(tmp_path, {**subprocess_env, "TMPDIR": str(gangs)})
    yield w
    w.stop_all()


def _rank_pids(workers: Workers, run_id: str) -> dict[int, int]:
    pids = {}
    for path in (workers.root / "gangs").glob(f"tml-gang-{run_id}-*/rank-*.pid"):
        try:
            pids[int(path.stem.split("-")[1])] = int(path.read_text())
        except ValueError:  # being written
            pass
    return pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


async def _run(workers: Workers, run_id: str, config: TrainConfig = CONFIG):  # type: ignore[no-untyped-def]
    client = await connect()
    return await client.start_workflow(MLPTraining.run, _input(run_id, workers.queue, config),
                                       id=run_id, task_queue=workers.queue)


async def test_two_ranks_resume_exactly_after_rank_and_worker_kills(workers: Workers) -> None:
    worker = workers.start()
    # the uninterrupted run trains beside the one whose rank is killed (the steps mostly sleep)
    straight_handle = await _run(workers, f"ddp-straight-{uuid.uuid4().hex[:6]}")

    # pause: the gang checkpoints and stops at a step boundary; resume continues it exactly
    paused_handle = await _run(workers, f"ddp-pause-{uuid.uuid4().hex[:6]}")
    # SIGKILL one rank: the attempt fails, the retry resumes both ranks from the last checkpoint
    run_id = f"ddp-rank-{uuid.uuid4().hex[:6]}"
    handle = await _run(workers, run_id)

    async def pause() -> TrainProgress:
        await _wait_for_step(paused_handle, 25)
        return await paused_handle.execute_update(MLPTraining.pause)

    async def kill_rank() -> None:
        await _wait_for_step(handle, 30)
        os.kill(_rank_pids(workers, run_id)[1], signal.SIGKILL)

    paused, _ = await asyncio.gather(pause(), kill_rank())
    assert paused.state == "paused" and paused.latest_checkpoint is not None
    assert paused.latest_checkpoint.step >= 25  # checkpointed where it stopped, not at step 20
    await paused_handle.execute_update(MLPTraining.resume)

    straight: TrainResult = await straight_handle.result()
    assert straight.steps == CONFIG.max_steps and straight.resumes == 0
    assert straight.metrics["eval_accuracy"] > 0.7
    killed, paused_result = await handle.result(), await paused_handle.result()
    for resumed in (killed, paused_result):
        _assert_bitwise_equal(resumed, straight)
        assert not resumed.stopped_early
    assert (killed.resumes, killed.pauses) == (1, 0)  # a recovery from the killed rank
    assert (paused_result.resumes, paused_result.pauses) == (0, 1)  # a pause is not a recovery

    # SIGKILL the worker: its ranks die with it (no orphans); a new worker resumes the run exactly
    run_id = f"ddp-worker-{uuid.uuid4().hex[:6]}"
    handle = await _run(workers, run_id)
    await _wait_for_step(handle, 30)
    ranks = _rank_pids(workers, run_id)
    assert len(ranks) == 2 and all(_alive(p) for p in ranks.values())
    workers.kill(worker)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in ranks.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in ranks.values() if _alive(p)], "rank processes outlived their worker"
    assert list((workers.root / "gangs").glob(f"tml-gang-{run_id}-*")), "the killed gang left its directory"
    workers.start()
    result = await handle.result()
    _assert_bitwise_equal(result, straight)
    assert result.resumes == 1
    # the new worker's gang swept the killed one's directory; every gang removed its own, with
    # torchelastic's log directory inside it
    left = sorted(p.name for p in (workers.root / "gangs").iterdir())
    assert not [n for n in left if n.startswith(("tml-gang-", "torchelastic_"))], left


async def test_bad_gang_settings_fail_the_run_at_once(workers: Workers) -> None:
    workers.start()
    bad = CONFIG.model_copy(update={"dist_backend": "nccl"})
    handle = await _run(workers, f"ddp-bad-{uuid.uuid4().hex[:6]}", bad)
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    assert "nccl' needs CUDA" in str(cause) and "\n" not in str(cause)
