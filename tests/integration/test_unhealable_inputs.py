"""Fail fast on what cannot heal (issue 18, item 4), on a real dev server with the bert_checkpointing
example's worker: a model name no filesystem can hold and a model folder whose weights are a pickle
that ``weights_only`` loading refuses fail the run at once (the first attempt, no retries), in
seconds, with one line naming the problem."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import torch
from temporalio.client import WorkflowFailureError

from examples._shared import SYNTHETIC, TRAINABLE
from examples.bert_checkpointing.workflows import TASK_QUEUE, BertCheckpointingWorkflow
from temporal_ml.client import connect
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.workflows.training import TrainingInput
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


class _NotATensor:
    """An object in a checkpoint: what a ``weights_only`` load refuses."""


def _pickled_model_dir(root: Path) -> Path:
    from temporal_ml.hf.loading import TINY_BERT_CONFIG, build_tiny_tokenizer

    directory = root / "pickled-model"
    tokenizer = build_tiny_tokenizer(["good movie", "bad movie"])
    tokenizer.save_pretrained(directory)
    import transformers

    config = transformers.BertConfig(vocab_size=len(tokenizer), **TINY_BERT_CONFIG, num_labels=2)
    config.save_pretrained(directory)
    torch.save({"weights": torch.zeros(2), "extra": _NotATensor()}, directory / "pytorch_model.bin")
    return directory


async def test_a_huge_model_name_and_a_pickled_model_fail_at_once(
    tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    log = tmp_path / "worker.log"
    env = {**subprocess_env, "TEMPORAL_ML_STORE": str(tmp_path / "store")}
    worker = subprocess.Popen([sys.executable, "-m", "examples.bert_checkpointing.worker"], cwd=REPO_ROOT,
                              env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "worker polling" not in log.read_text():
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        client = await connect()
        cases = {"a 200 kB model name": ("m" * 200_000, "too long"),
                 "pickled weights": (str(_pickled_model_dir(tmp_path)), "pickled weights")}
        for what, (model, expected) in cases.items():
            config = TrainConfig(trainable=TRAINABLE, max_steps=20, batch_size=8, hparams={"model": model})
            run_id = f"heal-{uuid.uuid4().hex[:8]}"
            inp = TrainingInput(config=config, run_id=run_id, task_queue=TASK_QUEUE,
                                dataset=DatasetSource(generator=SYNTHETIC, params={"n_train": 64, "n_dev": 16}))
            started = time.monotonic()
            with pytest.raises(WorkflowFailureError) as info:
                await client.execute_workflow(BertCheckpointingWorkflow.run, inp, id=run_id,
                                              task_queue=TASK_QUEUE)
            took = time.monotonic() - started
            message = str(info.value.cause.cause)  # type: ignore[union-attr]
            print(f"\n{what}: failed in {took:.1f} s: {message[:200]}")
            assert expected in message.lower() and "\n" not in message and len(message) < 1000, message
            assert took < 10, f"{what}: {took:.1f} s"
            history = client.get_workflow_handle(run_id)
            attempts = [e.activity_task_started_event_attributes.attempt
                        async for e in history.fetch_history_events()
                        if e.HasField("activity_task_started_event_attributes")]
            assert attempts and max(attempts) == 1, f"{what} was retried: {attempts}"
    finally:
        worker.kill()
        worker.wait()
