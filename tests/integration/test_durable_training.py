"""Promise 1 against a real dev server: a training run whose worker process is SIGKILLed (twice, at
random steps), paused and resumed, or whose latest checkpoint is corrupted, finishes with weights
bitwise identical to an uninterrupted run, redoing at most one checkpoint interval per kill."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from temporalio.client import WorkflowFailureError, WorkflowHandle

from temporal_ml.client import connect
from temporal_ml.storage.checkpoints import load_checkpoint
from temporal_ml.types import DatasetSource, TrainConfig, TrainResult
from temporal_ml.workflows.inference import InferenceInput
from temporal_ml.workflows.training import TrainingInput
from tests.integration._procs import start_worker_process
from tests.integration._training_workflows import MLPInference, MLPTraining

INTERVAL = 20
CONFIG = TrainConfig(
    trainable="mlp", max_steps=300, batch_size=16, seed=7, checkpoint_every_steps=INTERVAL,
    log_every_steps=1, async_checkpoints=False, eval_split="dev",
    hparams={"hidden": 32, "dropout": 0.2, "step_delay": 0.025},
)
DATASET = DatasetSource(generator="blobs", params={"n_train": 512, "n_dev": 128, "seed": 1})

pytestmark = pytest.mark.integration


class Workers:
    """Starts and kills worker processes of one task queue sharing one store root."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.queue = f"train-{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        proc = start_worker_process("tests.integration.training_worker", [self.queue, str(self.root)],
                                    self.root / f"worker-{len(self.procs)}.log", self.env)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)

    def events(self, run_id: str) -> list[dict]:
        path = self.root / "metrics" / run_id / "metrics.jsonl"
        events = []
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a worker SIGKILLed while writing it
                pass
        return events


@pytest.fixture
def workers(tmp_path: Path, subprocess_env: dict[str, str]) -> Iterator[Workers]:
    w = Workers(tmp_path, subprocess_env)
    yield w
    w.stop_all()


def _input(run_id: str, queue: str, config: TrainConfig = CONFIG) -> TrainingInput:
    return TrainingInput(config=config, dataset=DATASET, run_id=run_id, task_queue=queue,
                         heartbeat_timeout_seconds=3, progress_every_seconds=0.2)


async def _start(workers: Workers, run_id: str, config: TrainConfig = CONFIG) -> WorkflowHandle:
    client = await connect()
    return await client.start_workflow(MLPTraining.run, _input(run_id, workers.queue, config),
                                       id=run_id, task_queue=workers.queue)


async def _wait_for_step(handle: WorkflowHandle, step: int) -> int:
    for _ in range(1200):
        progress = await handle.query(MLPTraining.progress)
        if progress.state in ("done", "failed"):
            raise AssertionError(f"run ended ({progress.state}) before step {step} was observed")
        if progress.step >= step and progress.state == "training":
            return progress.step
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached step {step}")


def _weights(result: TrainResult) -> dict[str, torch.Tensor]:
    return load_checkpoint(result.checkpoint)["model"]


def _assert_bitwise_equal(a: TrainResult, b: TrainResult) -> None:
    assert a.checkpoint.model_sha256 == b.checkpoint.model_sha256
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics == b.metrics


_STRAIGHT: dict[str, TrainResult] = {}


async def _straight(workers: Workers) -> TrainResult:
    """The undisturbed run of ``CONFIG``, trained once per module and shared by its tests (its
    checkpoint stays in the first test's tmp directory, which outlives the module)."""
    if "result" not in _STRAIGHT:
        handle = await _start(workers, f"straight-{uuid.uuid4().hex[:8]}")
        result = await handle.result()
        assert result.resumes == 0 and not result.stopped_early and result.steps == CONFIG.max_steps
        _STRAIGHT["result"] = result
    return _STRAIGHT["result"]


async def test_sigkilled_workers_resume_exactly(workers: Workers, random_seed: int) -> None:
    worker = workers.start()
    straight = await _straight(workers)
    assert straight.metrics["eval_accuracy"] > 0.8

    run_id = f"crash-{uuid.uuid4().hex[:8]}"
    handle = await _start(workers, run_id)
    rng = random.Random(random_seed)
    last_logged: list[int] = []
    for low, high in ((30, 110), (150, 230)):
        await _wait_for_step(handle, rng.randint(low, high))
        workers.kill(worker)
        last_logged.append(max(e["step"] for e in workers.events(run_id) if e["event"] == "train"))
        worker = workers.start()
    result = await handle.result()

    _assert_bitwise_equal(result, straight)
    assert result.resumes == 2, f"seed {random_seed}"
    resumed_at = [e["step"] for e in workers.events(run_id) if e["event"] == "resume"]
    assert len(resumed_at) == 2, f"seed {random_seed}"
    for killed, resumed in zip(last_logged, resumed_at, strict=True):
        assert 0 <= killed - resumed <= INTERVAL, f"seed {random_seed}: killed at {killed}, resumed at {resumed}"


async def test_corrupt_latest_checkpoint_falls_back_on_resume(workers: Workers) -> None:
    worker = workers.start()
    straight = await _straight(workers)
    run_id = f"corrupt-{uuid.uuid4().hex[:8]}"
    handle = await _start(workers, run_id)
    await _wait_for_step(handle, 110)
    workers.kill(worker)
    # the committed checkpoints: the kill may leave a newer one torn (no manifest yet), which a resume
    # never sees (CI saw it under load: a step directory without its model file)
    steps = sorted(p for p in (workers.root / "checkpoints" / run_id).glob("step-*") if (p / "manifest.json").exists())
    newest, previous = steps[-1], steps[-2]
    model = newest / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-1] + b"\x00")  # one flipped byte (last one is padding-free data)
    workers.start()
    result = await handle.result()
    _assert_bitwise_equal(result, straight)
    resumed_at = [e["step"] for e in workers.events(run_id) if e["event"] == "resume"]
    assert resumed_at == [int(previous.name.split("-")[1])]


async def test_pause_and_resume_is_exact(workers: Workers) -> None:
    workers.start()
    straight = await _straight(workers)
    handle = await _start(workers, f"pause-{uuid.uuid4().hex[:8]}")
    await _wait_for_step(handle, 70)
    paused = await handle.execute_update(MLPTraining.pause)
    assert paused.state == "paused" and paused.latest_checkpoint is not None
    await asyncio.sleep(1.0)
    still = await handle.query(MLPTraining.progress)
    assert still.state == "paused" and still.latest_checkpoint == paused.latest_checkpoint
    assert paused.latest_checkpoint.step % INTERVAL != 0 or paused.latest_checkpoint.step >= 70
    await handle.execute_update(MLPTraining.resume)
    result = await handle.result()
    _assert_bitwise_equal(result, straight)
    # a pause is counted as a pause, not as a recovery from a failure
    assert result.pauses == 1 and result.resumes == 0 and not result.stopped_early


async def test_stop_early_returns_the_latest_checkpoint(workers: Workers) -> None:
    workers.start()
    handle = await _start(workers, f"stop-{uuid.uuid4().hex[:8]}")
    reached = await _wait_for_step(handle, 50)
    progress = await handle.execute_update(MLPTraining.stop_early)
    result = await handle.result()
    assert result.stopped_early
    assert reached <= result.steps < CONFIG.max_steps
    assert result.checkpoint == progress.latest_checkpoint == await handle.query(MLPTraining.latest_checkpoint)
    state = load_checkpoint(result.checkpoint)  # committed and verified
    assert state["counters"]["step"] == result.steps


async def test_config_error_fails_fast_and_inference_works(workers: Workers) -> None:
    workers.start()
    client = await connect()
    bad = CONFIG.model_copy(update={"hparams": {"fail": "config"}})
    with pytest.raises(WorkflowFailureError) as info:
        await client.execute_workflow(MLPTraining.run, _input("bad-" + uuid.uuid4().hex[:8], workers.queue, bad),
                                      id=f"bad-{uuid.uuid4()}", task_queue=workers.queue)
    assert "deliberately bad config" in str(info.value.cause.cause)  # type: ignore[union-attr]
    # a metric sink the training worker does not know (the client never checked: model_copy)
    unknown = CONFIG.model_copy(update={"metric_sinks": ["not-on-this-worker"]})
    with pytest.raises(WorkflowFailureError) as info:
        await client.execute_workflow(MLPTraining.run, _input("sink-" + uuid.uuid4().hex[:8], workers.queue, unknown),
                                      id=f"sink-{uuid.uuid4()}", task_queue=workers.queue)
    assert "unknown metric sink 'not-on-this-worker'" in str(info.value.cause.cause)  # type: ignore[union-attr]

    tensorboard = importlib.util.find_spec("tensorboard") is not None
    short = CONFIG.model_copy(update={"max_steps": 60, "hparams": {"step_delay": 0},
                                      "metric_sinks": ["tensorboard"] if tensorboard else []})
    run_id = f"infer-{uuid.uuid4().hex[:8]}"
    result = await (await _start(workers, run_id, short)).result()
    if tensorboard:  # the worker wrote the run's event files beside its metrics.jsonl
        assert list((workers.root / "metrics" / run_id).glob("events.out.tfevents.*"))
    rows = [[2.0] * 8, [-1.0] * 8]
    prediction = await client.execute_workflow(
        MLPInference.run, InferenceInput.from_result(short, result, rows),
        id=f"predict-{uuid.uuid4()}", task_queue=workers.queue,
    )
    assert prediction.labels == [1, 0]
    assert all(0.5 <= c <= 1 for c in prediction.confidences)


async def test_long_history_continues_as_new_and_stays_exact(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    """A chatty run on a server that suggests continue-as-new after a few dozen events rolls over to
    new runs (checkpointing like a pause) and still ends bitwise equal to an undisturbed run."""
    from temporal_ml.devserver import DevServer
    from tests.conftest import free_port

    server = DevServer(port=free_port(), headless=True, data_dir=tmp_path / "server",
                       dynamic_config={"limit.historyCount.suggestContinueAsNew": 25})
    server.start(timeout=120)
    try:
        env = {**subprocess_env, "TEMPORAL_ADDRESS": server.address}
        workers = Workers(tmp_path, env)
        workers.start()
        client = await connect(server.address)
        if "result" not in _STRAIGHT:  # this test alone: train the undisturbed run here
            _STRAIGHT["result"] = await client.execute_workflow(
                MLPTraining.run, TrainingInput(config=CONFIG, dataset=DATASET, run_id="quiet",
                                               task_queue=workers.queue, progress_every_seconds=30),
                id="quiet", task_queue=workers.queue)
        quiet = _STRAIGHT["result"]
        chatty_input = TrainingInput(config=CONFIG, dataset=DATASET, run_id="chatty",
                                     task_queue=workers.queue, progress_every_seconds=0.05)
        handle = await client.start_workflow(MLPTraining.run, chatty_input, id="chatty",
                                             task_queue=workers.queue)
        chatty = await handle.result()
        for _ in range(50):  # visibility is eventually consistent
            runs = [wf async for wf in client.list_workflows('WorkflowId = "chatty"')]
            if len(runs) >= 2:
                break
            await asyncio.sleep(0.1)
        workers.stop_all()
    finally:
        server.stop()
    assert len(runs) >= 2, "the server never suggested continue-as-new"
    assert chatty.checkpoint.model_sha256 == quiet.checkpoint.model_sha256
    # it went on from its checkpoint in each new run: no recovery from a failure, no pause
    assert chatty.steps == 300 and chatty.resumes == 0 and chatty.pauses == 0 and not chatty.stopped_early
