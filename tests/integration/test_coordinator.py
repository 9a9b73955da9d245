"""CoordinatorWorkflow against a real dev server with separate orchestration, training and evaluation
worker processes: max_concurrency holds, a SIGKILLed training worker costs nothing but time, and a
bad config fails alone with a clear message."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from temporal_ml.client import connect
from temporal_ml.types import DatasetSource, ExperimentSpec, TrainConfig
from temporal_ml.workflows.coordinator import CoordinatorInput
from tests.integration._procs import start_worker_process
from tests.integration._training_workflows import MLPCoordinator

pytestmark = pytest.mark.integration

BASE = TrainConfig(trainable="mlp", max_steps=150, batch_size=16, checkpoint_every_steps=20,
                   log_every_steps=5, async_checkpoints=False, hparams={"step_delay": 0.02})


def _spec(name: str, **hparams: object) -> ExperimentSpec:
    return ExperimentSpec(name=name, config=BASE.model_copy(
        update={"hparams": {**BASE.hparams, **hparams}}))


def _start(role: str, queue: str, root: Path, env: dict[str, str], n: int) -> subprocess.Popen[bytes]:
    return start_worker_process("tests.integration.training_worker", [queue, str(root), role],
                                root / f"{role}-{n}.log", env)


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


async def test_coordinator_with_separate_workers_survives_a_kill(tmp_path: Path,
                                                                subprocess_env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    queues = {role: f"{role}-{tag}" for role in ("orchestration", "train", "eval")}
    procs = {role: _start(role, q, tmp_path, subprocess_env, 0) for role, q in queues.items()}
    experiments = [_spec("a"), _spec("a-twin"), _spec("b", lr=3e-3), _spec("c", hidden=16),
                   _spec("bad", fail="config")]
    inp = CoordinatorInput(
        experiments=experiments, dataset=DatasetSource(generator="blobs", params={"seed": 2}),
        run_id=f"coord-{tag}", max_concurrency=2, train_task_queue=queues["train"],
        eval_task_queue=queues["eval"], heartbeat_timeout_seconds=3, progress_every_seconds=0.2,
    )
    try:
        client = await connect()
        handle = await client.start_workflow(MLPCoordinator.run, inp, id=inp.run_id,
                                             task_queue=queues["orchestration"])
        peak_training, killed = 0, False
        while True:
            status = await handle.query(MLPCoordinator.status)
            peak_training = max(peak_training, sum(s.state == "training" for s in status))
            if not killed and any(s.step >= 60 for s in status):
                procs["train"].send_signal(signal.SIGKILL)
                procs["train"].wait()
                procs["train"] = _start("train", queues["train"], tmp_path, subprocess_env, 1)
                killed = True
            if all(s.state in ("done", "failed") for s in status):
                break
            await asyncio.sleep(0.1)
        result = await handle.result()
    finally:
        for proc in procs.values():
            proc.kill()

    assert killed and peak_training <= 2
    by_name = {r.name: r for r in result.experiments}
    assert [r.name for r in result.experiments] == ["a", "a-twin", "b", "c", "bad"]
    bad = by_name.pop("bad")
    assert bad.status == "failed" and "deliberately bad config" in (bad.error or "") and bad.train is None
    for r in by_name.values():
        assert r.status == "done" and r.train is not None and r.eval is not None, r
        assert r.train.steps == 150 and r.eval.examples == 128 and r.eval.accuracy is not None
        assert r.eval.accuracy > 0.8 and r.eval.snapshot == result.snapshot
        assert r.eval.checkpoint == r.train.checkpoint
        assert r.lineage.checkpoint_sha256 == r.train.checkpoint.model_sha256
        assert r.lineage.snapshot_id == result.snapshot.id and r.lineage.config_hash
        assert r.train_workflow_id == f"{inp.run_id}--{r.name}--train"
    assert sum(r.train.resumes for r in by_name.values()) >= 1  # the kill hit a running training
    # Identical configs: identical weights, whether or not the kill interrupted one of them.
    assert by_name["a"].train.checkpoint.model_sha256 == by_name["a-twin"].train.checkpoint.model_sha256
    assert [e.name for e in result.leaderboard] == sorted(
        by_name, key=lambda n: (-by_name[n].eval.accuracy, list(by_name).index(n)))

    # Independent evidence from the training workers' own logs: never more than 2 runs at once.
    intervals = []
    for metrics in (tmp_path / "metrics").glob(f"{inp.run_id}--*--train/metrics.jsonl"):
        events = [json.loads(line) for line in metrics.read_text().splitlines()]
        intervals.append((events[0]["time"], events[-1]["time"]))
    assert len(intervals) == 4 and _max_overlap(intervals) <= 2


async def test_eval_workflow_verifies_its_checkpoint(tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    from temporalio.client import WorkflowFailureError

    from temporal_ml.workflows.evaluation import EvalInput
    from temporal_ml.workflows.training import TrainingInput
    from tests.integration._training_workflows import MLPEval, MLPTraining

    queue = f"all-{uuid.uuid4().hex[:6]}"
    worker = _start("all", queue, tmp_path, subprocess_env, 0)
    try:
        client = await connect()
        config = BASE.model_copy(update={"max_steps": 40, "hparams": {}})
        trained = await client.execute_workflow(
            MLPTraining.run, TrainingInput(config=config, dataset=DatasetSource(generator="blobs")),
            id=f"eval-src-{uuid.uuid4().hex[:6]}", task_queue=queue)
        ok = await client.execute_workflow(MLPEval.run, EvalInput.from_result(config, trained, "dev"),
                                           id=f"eval-ok-{uuid.uuid4().hex[:6]}", task_queue=queue)
        assert ok.checkpoint == trained.checkpoint and ok.snapshot == trained.snapshot and ok.split == "dev"
        assert ok.examples == 128 and ok.accuracy is not None and ok.loss is not None
        assert ok.metrics["accuracy"] == ok.accuracy

        missing = trained.checkpoint.model_copy(update={"uri": trained.checkpoint.uri + "-gone"})
        tampered = trained.checkpoint.model_copy(update={"model_sha256": "0" * 64})
        for ref, error in ((missing, "NotFoundError"), (tampered, "IntegrityError")):
            started = time.monotonic()
            with pytest.raises(WorkflowFailureError) as info:
                await client.execute_workflow(
                    MLPEval.run, EvalInput(config=config, snapshot=trained.snapshot, checkpoint=ref),
                    id=f"eval-bad-{uuid.uuid4().hex[:6]}", task_queue=queue)
            cause = info.value.cause.cause  # type: ignore[union-attr]
            assert cause.type == error and cause.non_retryable, cause  # type: ignore[union-attr]
            assert time.monotonic() - started < 10  # failed at once, not after retries
    finally:
        worker.kill()
