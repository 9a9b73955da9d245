"""A corrupt newest checkpoint (issue 7, item 2) against a real dev server: a run whose final
checkpoint was corrupted after it finished is run again under its run id; the rerun falls back to
the previous checkpoint, writes a new final one, and its result evaluates (before the fix it returned
the corrupt checkpoint's digest and the evaluation failed with an IntegrityError)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from temporal_ml.activities.evaluation import EvalActivities
from temporal_ml.activities.snapshot import SnapshotActivities
from temporal_ml.activities.training import TrainingActivities
from temporal_ml.client import connect
from temporal_ml.storage.checkpoints import load_checkpoint
from temporal_ml.storage.snapshots import SnapshotStore
from temporal_ml.types import DatasetSource, TrainConfig
from temporal_ml.worker import create_worker
from temporal_ml.workflows.evaluation import EvalInput
from temporal_ml.workflows.training import TrainingInput
from tests.integration._training_workflows import MLPEval, MLPTraining
from tests.trainables import MLPTrainable, blobs

pytestmark = pytest.mark.integration

CONFIG = TrainConfig(trainable="mlp", max_steps=40, batch_size=16, checkpoint_every_steps=10,
                     log_every_steps=5, async_checkpoints=False, device="cpu")


async def test_a_corrupt_final_checkpoint_is_never_the_result(tmp_path: Path, temporal_address: str) -> None:
    client = await connect()
    queue = f"resume-{uuid.uuid4().hex[:6]}"
    store = SnapshotStore(str(tmp_path / "snapshots"))
    trainables = {"mlp": MLPTrainable()}
    activities = [
        *TrainingActivities(trainables=trainables, snapshot_store=store,
                            checkpoint_root=str(tmp_path / "checkpoints")).activities(),
        *SnapshotActivities(store, generators={"blobs": blobs}).activities(),
        *EvalActivities(trainables=trainables, snapshot_store=store).activities(),
    ]
    inp = TrainingInput(config=CONFIG, dataset=DatasetSource(generator="blobs"), run_id="corrupt-final",
                        task_queue=queue)
    async with create_worker(client, task_queue=queue, workflows=[MLPTraining, MLPEval],
                             activities=activities):
        first = await client.execute_workflow(MLPTraining.run, inp, id=f"first-{uuid.uuid4()}",
                                              task_queue=queue)
        model = Path(first.checkpoint.uri.removeprefix("file://")) / "model.safetensors"
        data = bytearray(model.read_bytes())
        data[-1] ^= 0xFF  # the committed final checkpoint is now corrupt
        model.write_bytes(bytes(data))

        again = await client.execute_workflow(MLPTraining.run, inp, id=f"again-{uuid.uuid4()}",
                                              task_queue=queue)
        assert again.steps == CONFIG.max_steps and again.resumes == 1
        assert again.checkpoint.model_sha256 == first.checkpoint.model_sha256  # the same weights...
        assert load_checkpoint(again.checkpoint)["counters"]["step"] == 40  # ...now intact on disk
        evaluation = await client.execute_workflow(MLPEval.run, EvalInput.from_result(CONFIG, again, "dev"),
                                                   id=f"eval-{uuid.uuid4()}", task_queue=queue)
    assert evaluation.checkpoint == again.checkpoint and evaluation.accuracy is not None
